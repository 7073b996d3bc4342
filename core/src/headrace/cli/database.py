"""Run one action on the server database from a CLI command, with every failure as one line.

The ``server database``, ``server api-key`` and ``server encryption`` commands work on the database
directly (no server needs to run), and all of them must answer a wrong URL, an unreachable server or a
failed migration with one clear line on stderr, never a traceback.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from headrace.cli.output import fail

if TYPE_CHECKING:
    from headrace.server.db import Database

__all__ = ["one_line", "run_on_database"]

T = TypeVar("T")


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (driver errors often carry several)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def run_on_database(
    action: Callable[[Database], Awaitable[T]],
    *,
    migrate: bool = True,
    expected: tuple[type[Exception], ...] = (),
    os_error: str = "cannot reach the database {url}",
) -> tuple[T, str]:
    """Run ``action`` on the configured database; return its result and the database's display URL.

    ``migrate`` first brings the database up to date, as the server does on start. Exceptions of the
    ``expected`` types are user-facing already: their message is printed as it is. ``os_error`` words
    an :class:`OSError` (``{url}`` is the database's display URL).
    """
    import asyncio

    from sqlalchemy.exc import SQLAlchemyError

    from headrace.server.db import Database, DatabaseConfigError, MigrationError
    from headrace.server.db.migrate import migrate_on_start
    from headrace.settings import SettingsError, get_settings

    try:
        settings = get_settings()
        database = Database.from_settings(settings)
    except (SettingsError, DatabaseConfigError) as exc:
        fail(str(exc))

    async def go() -> T:
        async with database:
            if migrate:
                await migrate_on_start(database, settings)
            return await action(database)

    url = database.display_url
    try:
        return asyncio.run(go()), url
    except expected as exc:
        fail(str(exc))
    except (MigrationError, DatabaseConfigError) as exc:
        fail(f"{url}: {exc}")
    except SQLAlchemyError as exc:
        fail(f"{url}: {one_line(getattr(exc, 'orig', None) or exc)}")
    except OSError as exc:
        fail(f"{os_error.format(url=url)}: {one_line(exc)}")
