"""Checking a pooled PostgreSQL connection before it is used, without a round trip for one just returned.

Why not SQLAlchemy's ``pool_pre_ping``: on asyncpg it costs three round trips on every checkout (``BEGIN``,
``;``, ``ROLLBACK``: the transaction is there for PgBouncer's transaction mode). On the server's busiest
routes that was a third of everything the server sent to PostgreSQL, and as much CPU on both sides.

What this does instead, on every checkout of a connection that was used before:

- returned to the pool less than :data:`RECENTLY_USED` seconds ago, and its socket still open as far as the
  event loop knows (asyncpg's ``is_closed()``: the loop notices a server that hung up, or a backend that was
  terminated, as soon as it sends its EOF): used as it is, no round trip. HikariCP's "alive bypass window"
  makes the same bet for the same reason;
- closed: replaced at once;
- otherwise pinged as ``pool_pre_ping`` pings.

A connection found closed or failing its ping makes the pool replace it, and every connection older than
it, before the caller sees anything (SQLAlchemy's own ``InvalidatePoolError`` path, as for pre-ping).

What is given up: a connection whose network path died silently (no FIN, no RST) within the last second is
not detected before use; the statement then fails as it would have if the path had died a moment later.

Usage::

    engine = create_async_engine(url, pool_pre_ping=False)
    check_connections_on_checkout(engine)
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

__all__ = ["RECENTLY_USED", "check_connections_on_checkout"]

RECENTLY_USED = 1.0
"""Seconds after its return during which a pooled connection with an open socket is used without a ping."""

_RETURNED = "headrace_returned_at"


def check_connections_on_checkout(engine: AsyncEngine, recently_used: float = RECENTLY_USED) -> None:
    """Make ``engine``'s pool check each connection it hands out again (see the module docstring)."""
    pool = engine.sync_engine.pool
    event.listen(pool, "checkin", _note_return)
    event.listen(pool, "checkout", partial(_check, engine.sync_engine.dialect, recently_used))


def _note_return(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    if dbapi_connection is not None:
        record.info[_RETURNED] = time.monotonic()


def _check(
    dialect: Dialect,
    recently_used: float,
    dbapi_connection: Any,
    record: ConnectionPoolEntry,
    proxy: PoolProxiedConnection,
) -> None:
    returned = record.info.get(_RETURNED)
    if returned is None:
        return  # never returned: connected for this checkout (the pool clears ``info`` when it reconnects)
    driver = record.driver_connection
    if driver is not None and driver.is_closed():
        raise exc.InvalidatePoolError("a pooled connection was closed by the database or the network")
    if time.monotonic() - returned < recently_used:
        return
    try:
        dialect.do_ping(dbapi_connection)
    except dialect.loaded_dbapi.Error as error:
        if dialect.is_disconnect(error, dbapi_connection, None):
            raise exc.InvalidatePoolError(f"a pooled connection did not answer a ping: {error}") from error
        raise
