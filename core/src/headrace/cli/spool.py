"""``headrace spool``: the run records waiting under ``HEADRACE_HOME/spool/`` (see docs/client.md).

- ``headrace spool status`` lists the processes with records in the spool: alive or not, where their
  records go, and how many task-run records and log lines wait.
- ``headrace spool flush`` sends the records left by processes that are gone, to the server the
  current settings point at (``HEADRACE_API_URL``, or the embedded database), and removes them once
  acknowledged. Records meant for another server are left alone; records of running processes are
  theirs to send.

Only typer is imported at module level; the client and the spool load when a command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from headrace.cli.output import fail, print_json

app = typer.Typer(help="Run records waiting to be sent to the server.", no_args_is_help=True)


@app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show what waits in the spool, per process."""
    from headrace.client import client_target
    from headrace.records.spool import spool_directory, spool_status
    from headrace.settings import SettingsError, get_settings

    try:
        settings = get_settings()
    except SettingsError as exc:
        fail(str(exc))
    directory = spool_directory(settings.home)
    target = client_target(settings)
    owners = spool_status(directory)
    rejected = _rejected_count(directory)
    if as_json:
        print_json(
            {
                "spool": str(directory),
                "target": target,
                "owners": [
                    {
                        "owner": owner.owner,
                        "pid": owner.pid,
                        "alive": owner.alive,
                        "target": owner.target,
                        "task_runs": owner.pending.get("task_runs", 0),
                        "logs": owner.pending.get("logs", 0),
                        "bytes": owner.bytes,
                    }
                    for owner in owners
                ],
                "rejected": rejected,
            }
        )
        return
    typer.echo(f"Spool: {directory}")
    typer.echo(f"Records go to: {target}")
    if not owners:
        typer.echo("Nothing waits in the spool.")
    for owner in owners:
        state = "running" if owner.alive else "exited"
        where = "" if owner.target == target else f", for {owner.target}"
        typer.echo(
            f"  process {owner.pid} ({state}{where}): {owner.pending.get('task_runs', 0)} task-run record(s), "
            f"{owner.pending.get('logs', 0)} log line(s), {owner.bytes:,} bytes  [{owner.owner}]"
        )
    if rejected:
        typer.echo(f"{rejected} record(s) refused by the server are kept in {directory / 'rejected'}.")


@app.command("flush")
def flush(
    timeout: Annotated[
        float, typer.Option("--timeout", min=0, help="Seconds to keep trying while the server cannot be reached.")
    ] = 30.0,
) -> None:
    """Send the records left by exited processes to the server, and remove them from the spool."""
    from headrace.client import client_target
    from headrace.records.shipper import replay
    from headrace.records.spool import spool_directory, spool_status
    from headrace.settings import SettingsError, get_settings

    try:
        settings = get_settings()
    except SettingsError as exc:
        fail(str(exc))
    target = client_target(settings)
    sent, left = replay(settings, timeout)
    typer.echo(f"Sent {sent} run record(s) to {target}.")
    others = [owner for owner in spool_status(spool_directory(settings.home)) if owner.pending]
    running = sum(sum(o.pending.values()) for o in others if o.alive)
    foreign = [o for o in others if not o.alive and o.target != target]
    if running:
        typer.echo(f"{running} record(s) belong to running processes, which send them themselves.")
    for owner in foreign:
        typer.echo(
            f"{sum(owner.pending.values())} record(s) of process {owner.pid} are for {owner.target}; "
            "flush with settings that point there to send them."
        )
    if left:
        fail(f"{left} record(s) could not be sent to {target} within {timeout:g} s; they stay in the spool")


def _rejected_count(directory: Path) -> int:
    total = 0
    for path in (directory / "rejected").glob("*.jsonl"):
        with path.open("rb") as handle:
            total += sum(1 for _ in handle)
    return total
