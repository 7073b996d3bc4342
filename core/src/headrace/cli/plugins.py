"""``headrace plugins``: list, check and scaffold plugins."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from headrace.cli.output import console, fail, print_json

if TYPE_CHECKING:
    from headrace.plugins.manager import HeadracePluginManager

app = typer.Typer(help="List, check and create plugins.", no_args_is_help=True)

STATUS_STYLE = {"active": "green", "disabled": "dim", "failed": "red", "incompatible": "yellow"}


def _manager() -> HeadracePluginManager:
    """A manager for inspection: never strict, so that every problem can be listed side by side."""
    from headrace.plugins.manager import build_plugin_manager
    from headrace.settings import SettingsError, get_settings

    try:
        settings = get_settings()
    except SettingsError as exc:
        fail(str(exc))
    return build_plugin_manager(strict=False, disabled=settings.plugins_disabled)


@app.command("list")
def list_plugins(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show every installed plugin: version, status, what it provides, and why it failed."""
    manager = _manager()
    records = manager.collect_all()
    conflicts = manager.conflicts()
    if as_json:
        print_json(
            {
                "plugins": [record.as_dict() for record in records],
                "conflicts": [conflict.as_dict() for conflict in conflicts],
            }
        )
        return
    from rich.table import Table

    table = Table(title="headrace plugins", title_justify="left")
    for column in ("name", "distribution", "version", "status", "provides / error"):
        table.add_column(column)
    for record in records:
        # Plugins with only event or CLI hooks provide no registration: name the hooks instead.
        detail = record.error or ", ".join(record.provides) or ", ".join(record.hooks) or "-"
        style = STATUS_STYLE.get(record.status.value, "")
        table.add_row(
            record.name,
            record.distribution or "-",
            record.version or "-",
            f"[{style}]{record.status.value}[/]",
            detail,
        )
    console.print(table)
    for conflict in conflicts:
        console.print(f"[red]conflict:[/] {conflict.message()}")


@app.command("check")
def check_plugins() -> None:
    """Exit non-zero if any plugin failed, is incompatible or conflicts with another (for CI)."""
    manager = _manager()
    records = manager.collect_all()
    problems = [
        f"{record.label()} is {record.status.value}: {record.error}"
        for record in records
        if record.status.value in ("failed", "incompatible")
    ]
    problems += [f"conflict: {conflict.message()}" for conflict in manager.conflicts()]
    if problems:
        fail("\n".join(problems))
    active = sum(1 for record in records if record.status.value == "active")
    console.print(f"[green]ok[/]: {active} active plugin(s), no failures or conflicts")


@app.command("new")
def new_plugin(
    name: Annotated[str, typer.Argument(help="The plugin's name, such as 'sftp' or 'my-alerts'.")],
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Where to create it (default: ./headrace-NAME).")
    ] = None,
) -> None:
    """Create a ready-to-test plugin distribution from the template shipped with headrace."""
    from headrace.plugins.scaffold import ScaffoldError, create_plugin

    try:
        target = create_plugin(name, directory)
    except ScaffoldError as exc:
        fail(str(exc))
    console.print(f"created plugin [bold]{name}[/] in {target}")
    console.print(f"next: cd {target} && pip install -e '.[test]' && pytest")
