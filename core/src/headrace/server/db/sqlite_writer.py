"""The SQLite write connection: statements run on the event loop's own thread, not on a helper thread.

Why: aiosqlite runs every call (each execute, fetch, commit) on a helper thread and wakes the event loop
when it is done. A small write transaction is about fifty such calls, and under load each one waits for
a turn of a busy event loop, so a transaction that needs ~1 ms of SQLite stretched to ~13 ms, and since
SQLite has one writer, that capped the whole server near 75 writes per second. SQLite itself is fast for
the small transactions the API makes (a commit in WAL mode with ``synchronous=FULL`` is one fsync,
~0.3 ms here), so the writer runs them inline, except the commit (its fsync), which goes to the helper
thread so that the loop meanwhile serves other requests. The server's read pool keeps aiosqlite's threads,
so a long query never holds up the loop.

The one wait that could be long is taking the write lock while *another process* (the embedded SDK,
a CLI command) is writing. The writer therefore never waits inside SQLite (``busy_timeout = 0``):
:func:`begin_immediate` retries ``BEGIN IMMEDIATE`` with short asyncio sleeps until the configured busy
timeout has passed, so the loop keeps serving requests meanwhile.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import aiosqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.util import await_

__all__ = ["InlineConnection", "begin_immediate", "inline_connector"]

_RETRY_FIRST_DELAY = 0.001
_RETRY_MAX_DELAY = 0.05


class InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection whose calls run immediately on the calling (event-loop) thread.

    Opening and closing still go through aiosqlite's helper thread (once per connection), which is why the
    sqlite3 connection is made with ``check_same_thread=False``; everything in between runs inline.
    """

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)

    async def commit(self) -> None:
        """Commit on aiosqlite's helper thread: the fsync then overlaps with the loop's other work.

        The write path's lock is still held, so nothing else uses this connection meanwhile.
        """
        await aiosqlite.Connection._execute(self, self._conn.commit)  # type: ignore[no-untyped-call]

    def execute_now(self, sql: str) -> None:
        """Run one statement synchronously (no SQLAlchemy in between: its error handling stays out of it)."""
        self._conn.execute(sql).close()


def inline_connector(database: str) -> Callable[[], InlineConnection]:
    """An ``async_creator`` for SQLAlchemy: each call opens one :class:`InlineConnection` to ``database``."""

    def create() -> InlineConnection:
        connection = InlineConnection(
            partial(sqlite3.connect, database, check_same_thread=False, isolation_level=None, uri=True),
            iter_chunk_size=64,
        )
        connection._thread.daemon = True  # as SQLAlchemy does for aiosqlite: never keep the process alive
        return connection

    return create


def begin_immediate(connection: InlineConnection, busy_timeout: float) -> None:
    """``BEGIN IMMEDIATE``, waiting for another process's write lock without blocking the event loop.

    Runs inside SQLAlchemy's greenlet (from its ``begin`` event), so it may await an asyncio sleep.
    Raises SQLAlchemy's :class:`~sqlalchemy.exc.OperationalError` ("database is locked") once ``busy_timeout``
    has passed.
    """
    deadline = time.monotonic() + busy_timeout
    delay = _RETRY_FIRST_DELAY
    while True:
        try:
            connection.execute_now("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                # As SQLAlchemy reports every other driver error: callers handle one exception type.
                raise OperationalError("BEGIN IMMEDIATE", None, error) from None
        await_(asyncio.sleep(delay))
        delay = min(delay * 2, _RETRY_MAX_DELAY)
