"""``headrace server api-key create|ls|revoke``: manage API keys on the server database directly.

These commands do not go through the API: they open the database the settings point to (as the
server does, migrating it first unless ``HEADRACE_SERVER_MIGRATE_ON_START`` is off). That is how the
first admin key is made, and how access is regained when every admin key is lost. A running server
notices a new or revoked key within ``KEY_CACHE_SECONDS`` (10 s).

Only typer is imported at module level, so that ``headrace --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from headrace.cli.database import run_on_database
from headrace.cli.output import console, fail, note, print_json

if TYPE_CHECKING:
    from headrace.schemas.auth import Scope
    from headrace.server.db import Database

app = typer.Typer(help="Manage the server's API keys (directly on its database).", no_args_is_help=True)

T = TypeVar("T")


def _with_database(action: Callable[[Database], Awaitable[T]]) -> T:
    """Run ``action`` on the configured database, migrated as on server start; failures become one line."""
    from headrace.server.errors import Problem

    return run_on_database(action, expected=(Problem,))[0]


def _scope(value: str) -> Scope:
    from headrace.schemas.auth import Scope

    try:
        return Scope(value.lower())
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not one of: read, write, admin") from None


@app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", "-n", help="A unique name, such as 'ci' or 'worker-eu'.")],
    scope: Annotated[
        str, typer.Option("--scope", "-s", help="read, write (includes read) or admin (includes write).")
    ] = "read",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (with the key) instead of text.")] = False,
) -> None:
    """Create an API key and print it, once: the server keeps only its hash.

    The key alone goes to standard output (so ``KEY=$(headrace server api-key create ...)`` works); the
    rest goes to standard error.
    """
    from headrace.server.operations.api_keys import create_api_key

    chosen = _scope(scope)
    name = name.strip()
    if not name or len(name) > 200:
        fail("the name must have 1 to 200 characters")
    created = _with_database(lambda database: create_api_key(database, name, chosen))
    if as_json:
        print_json(created.model_dump(mode="json"))
    else:
        typer.echo(created.key)
    note(
        f"created API key {created.name!r} (scope {created.scope.value}, id {created.id}). "
        "Store the key now: it cannot be shown again."
    )


@app.command("ls")
def list_keys(as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False) -> None:
    """List API keys (names, scopes, dates; never the keys)."""
    from headrace.server.operations.api_keys import list_api_keys

    keys = _with_database(list_api_keys)
    if as_json:
        print_json([key.model_dump(mode="json") for key in keys])
        return
    if not keys:
        console.print("no API keys: the server accepts requests without one (unless HEADRACE_SERVER_AUTH_REQUIRED)")
        return
    rows = [("NAME", "SCOPE", "STATUS", "CREATED", "LAST USED", "ID")]
    rows += [
        (
            key.name,
            key.scope.value,
            "revoked" if key.revoked else "active",
            f"{key.created:%Y-%m-%d %H:%M}",
            f"{key.last_used:%Y-%m-%d %H:%M}" if key.last_used else "never",
            str(key.id),
        )
        for key in keys
    ]
    # Plain columns, never truncated (a table squeezed to the terminal would cut the ids).
    widths = [max(len(row[index]) for row in rows) for index in range(len(rows[0]) - 1)]
    for row in rows:
        typer.echo("  ".join([*(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)), row[-1]]))


@app.command("revoke")
def revoke(name_or_id: Annotated[str, typer.Argument(metavar="NAME_OR_ID", help="The key's name or id.")]) -> None:
    """Revoke an API key: requests with it are refused (by a running server within 10 s)."""
    from headrace.server.operations.api_keys import revoke_api_key

    key, was_active = _with_database(lambda database: revoke_api_key(database, name_or_id))
    if was_active:
        console.print(f"revoked API key {key.name!r} ({key.id})", markup=False)
    else:
        console.print(f"API key {key.name!r} ({key.id}) was already revoked", markup=False)
