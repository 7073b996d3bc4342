"""``headrace server``: the server and its database (``headrace server database upgrade|downgrade|reset``).

Only typer is imported at module level: the server, SQLAlchemy and Alembic load when a command runs,
so that ``headrace --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Annotated

import typer

from headrace.cli import api_keys, encryption
from headrace.cli.database import run_on_database
from headrace.cli.output import fail

if TYPE_CHECKING:
    from headrace.server.db import Database

app = typer.Typer(help="Run and manage the headrace server.", no_args_is_help=True)
database_app = typer.Typer(help="Manage the server database: migrations and reset.", no_args_is_help=True)
app.add_typer(database_app, name="database")
app.add_typer(api_keys.app, name="api-key")
app.add_typer(encryption.app, name="encryption")


def _run(action: Callable[[Database], Awaitable[str | None]]) -> tuple[str, str | None]:
    """Run ``action`` (a migration step) on the configured database; any failure becomes one line on stderr."""
    revision, url = run_on_database(action, migrate=False)
    return url, revision


def _describe(revision: str | None) -> str:
    from headrace.server.db.migrate import head_revision

    if revision is None:
        return "base (no headrace tables)"
    return f"revision {revision} (head)" if revision == head_revision() else f"revision {revision}"


@database_app.command("upgrade")
def upgrade(
    revision: Annotated[str, typer.Option("--revision", "-r", help="Target revision.")] = "head",
) -> None:
    """Apply migrations up to a revision (the newest by default)."""
    from headrace.server.db import migrate

    url, now = _run(lambda database: migrate.upgrade(database, revision))
    typer.echo(f"Database {url} is at {_describe(now)}.")


@database_app.command("downgrade")
def downgrade(
    revision: Annotated[
        str, typer.Option("--revision", "-r", help="Target revision: -1 for one step back, base for none.")
    ] = "-1",
) -> None:
    """Undo migrations down to a revision (one step by default; ``base`` removes every table)."""
    from headrace.server.db import migrate

    url, now = _run(lambda database: migrate.downgrade(database, revision))
    typer.echo(f"Database {url} is at {_describe(now)}.")


@database_app.command("reset")
def reset(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete everything in the server database and recreate the newest schema."""
    from headrace.server.db import DatabaseConfigError, database_url
    from headrace.server.db.engine import render_url
    from headrace.server.db.migrate import reset as reset_database
    from headrace.settings import SettingsError, get_settings

    if not yes:
        try:
            shown = render_url(database_url(get_settings()))
        except (SettingsError, DatabaseConfigError) as exc:
            fail(str(exc))
        if not sys.stdin.isatty():
            fail(f"refusing to reset {shown} without confirmation: not a terminal; pass --yes to confirm")
        typer.confirm(
            f"Reset {shown}? Every flow, run, log, artifact, variable, concurrency limit and API key in it "
            "will be deleted",
            abort=True,
        )
    url, now = _run(reset_database)
    typer.echo(f"Database {url} was reset and is at {_describe(now)}.")


@contextlib.contextmanager
def _gc_paused_until_started() -> Iterator[None]:
    """The garbage collector off until ``headrace.server.serve.tune_gc`` switches it on (the app has started).

    Why: start-up builds a few hundred thousand long-lived objects (modules, classes, schemas, routes)
    and little garbage, yet with the collector on, the imports trigger collections that scan everything
    built so far, again and again: about an eighth of the start-up CPU. Whatever happens (a bad setting,
    a port in use), the collector is on again when the block ends (unless it was off when it began).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@app.command("start")
def start(
    host: Annotated[str | None, typer.Option("--host", help="Address to listen on (HEADRACE_SERVER_API_HOST).")] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="Port to listen on (HEADRACE_SERVER_API_PORT).", min=0, max=65535)
    ] = None,
) -> None:
    """Run the API server in the foreground until SIGINT or SIGTERM (then it shuts down gracefully)."""
    with _gc_paused_until_started():  # a no-op when ``headrace.cli.main.run`` has paused it already
        _start(host, port)


def _start(host: str | None, port: int | None) -> None:
    from headrace.server.db import DatabaseConfigError, database_url
    from headrace.server.db.engine import render_url
    from headrace.settings import SettingsError, get_settings

    try:
        settings = get_settings()
        shown = render_url(database_url(settings))
    except (SettingsError, DatabaseConfigError) as exc:
        fail(str(exc))
    from headrace.server.serve import serve

    typer.echo(f"Starting the headrace server on {shown}")
    try:
        serve(settings, host=host or settings.server_api_host, port=settings.server_api_port if port is None else port)
    except SystemExit as exc:
        if exc.code:
            fail("the server could not start; the lines above say why (is the port already in use?)")
