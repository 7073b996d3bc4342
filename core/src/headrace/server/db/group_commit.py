"""Group commit for the SQLite write path: write transactions that queue up together commit together.

Why: SQLite has one writer, so the write path runs one transaction at a time, and each used to end with
its own commit: a hop to aiosqlite's helper thread for the fsync and back through a busy event loop.
Under load the write lock then sat idle for most of each commit, and the commits, not the work, capped
the server's write rate. Here the writes that arrive while others run share one SQLite transaction:

- the first write of a group opens the transaction (``BEGIN IMMEDIATE``) on the writer connection;
- each write runs in its own ``SAVEPOINT`` inside it: a write that fails rolls back to its savepoint
  and raises, and the others in the group are not touched (the savepoint is the driver's, so a write
  that runs only prepared statements, see :mod:`headrace.server.db.prepared`, never goes through the
  ORM session at all; one that uses the session gets the session's own savepoint inside it);
- when a write ends, a commit is queued behind the writes already waiting for the write lock (the lock
  is FIFO), so it commits them all at once; a write returns only after the commit that includes it,
  so an answer still means "on disk";
- if the commit fails, every write of the group raises that error (none of them is stored).

Inside a group, a write sees the writes before it (one connection), which is the order they would
have committed in anyway. Readers use their own connections and see a group once it has committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from typing import Final

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

__all__ = ["SQLITE_WRITER", "GroupCommit", "sqlite_writer_of"]

SQLITE_WRITER: Final = "headrace.sqlite_writer"
"""Where a grouped write's session keeps the writer's :class:`sqlite3.Connection` (``session.info``)."""
_BEGIN_WRITE: Final = "SAVEPOINT headrace_write"
_END_WRITE: Final = "RELEASE headrace_write"
_UNDO_WRITE: Final = "ROLLBACK TO headrace_write"


def sqlite_writer_of(session: AsyncSession) -> sqlite3.Connection | None:
    """The SQLite writer connection under a grouped write's session (inside its savepoint), else ``None``."""
    writer: sqlite3.Connection | None = session.info.get(SQLITE_WRITER)
    return writer


class GroupCommit:
    """The grouped write transactions of one SQLite writer engine (one connection), behind one lock."""

    def __init__(self, engine: AsyncEngine, lock: asyncio.Lock) -> None:
        self._engine = engine
        self._lock = lock
        self._connection: AsyncConnection | None = None
        self._committed: asyncio.Future[None] | None = None
        self._writer: sqlite3.Connection | None = None
        self._session: AsyncSession | None = None
        self._commit_scheduled = False
        self._committer: asyncio.Task[None] | None = None  # referenced, so that it is not garbage-collected

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session in a savepoint of the open group; returns (or raises) once the group has committed.

        A write that fails raises only after the writes before it in its group have committed: it may have
        failed because of what they wrote, and if their commit fails, that is the error it raises instead
        (the state it saw never existed). A cancelled write does not wait.
        """
        failure: BaseException | None = None
        committed: asyncio.Future[None] | None = None
        async with self._lock:
            connection, writer, session = await self._open()
            writer.execute(_BEGIN_WRITE).close()
            try:
                yield session
                if session.in_transaction():  # the session was used: it began (a savepoint) on its own
                    await session.commit()
                writer.execute(_END_WRITE).close()
            except BaseException as error:
                failure = error
                if session.in_transaction():
                    with contextlib.suppress(SQLAlchemyError, sqlite3.Error):
                        await session.rollback()
                with contextlib.suppress(sqlite3.Error):
                    writer.execute(_UNDO_WRITE).close()
                    writer.execute(_END_WRITE).close()
                if not writer.in_transaction:
                    # SQLite rolled the whole transaction back (it may, on I/O errors or a full disk):
                    # the writes before this one in the group are gone too, and must say so.
                    await self._abandon(connection)
            finally:
                if session.in_transaction() or session.identity_map:
                    await session.close()  # ready for the group's next write (a closed session can be reused)
            if self._connection is not None:
                committed = self._schedule_commit()  # the writes before a failed one (or none) still commit
        if failure is None:
            assert committed is not None
            await asyncio.shield(committed)
            return
        if committed is not None and isinstance(failure, Exception):
            try:
                await asyncio.shield(committed)
            except Exception as commit_error:
                raise commit_error from failure
        raise failure

    async def flush(self) -> None:
        """Commit the open group now, if any. The caller holds the write lock."""
        if self._connection is not None:
            await self._commit()

    async def _open(self) -> tuple[AsyncConnection, sqlite3.Connection, AsyncSession]:
        """The group's connection (in its transaction), its sqlite3 connection, and the session its writes share."""
        if self._connection is None:
            connection = await self._engine.connect()
            try:
                await connection.begin()  # BEGIN IMMEDIATE (see engine.create_sqlite_engine)
                raw = await connection.get_raw_connection()
                writer: sqlite3.Connection = raw.driver_connection._conn  # type: ignore[union-attr]
            except BaseException:
                await connection.close()
                raise
            # One session for the group's writes, one after the other: making one costs more than a small write.
            session = AsyncSession(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
            session.info[SQLITE_WRITER] = writer
            self._connection, self._writer, self._session = connection, writer, session
            self._committed = asyncio.get_running_loop().create_future()
        assert self._writer is not None
        assert self._session is not None
        return self._connection, self._writer, self._session

    def _schedule_commit(self) -> asyncio.Future[None]:
        assert self._committed is not None
        if not self._commit_scheduled:
            self._commit_scheduled = True
            self._committer = asyncio.ensure_future(self._commit_when_turn_comes())
        return self._committed

    async def _commit_when_turn_comes(self) -> None:
        """Wait for the write lock behind the writes already queued (they join the group), then commit."""
        async with self._lock:
            if self._connection is not None:
                await self._commit()

    async def _commit(self) -> None:
        connection, committed = self._connection, self._committed
        assert connection is not None
        assert committed is not None
        self._connection = self._committed = None
        self._commit_scheduled = False
        try:
            await connection.commit()
        except BaseException as error:
            _settle(committed, error)
            with contextlib.suppress(SQLAlchemyError, sqlite3.Error, OSError):
                await connection.close()
            if not isinstance(error, Exception):
                raise
            return
        _settle(committed, None)
        await connection.close()

    async def _abandon(self, connection: AsyncConnection) -> None:
        committed = self._committed
        self._connection = self._committed = None
        self._commit_scheduled = False
        if committed is not None:
            _settle(committed, RollbackError("SQLite rolled back the transaction after an error in another write"))
        with contextlib.suppress(SQLAlchemyError, sqlite3.Error, OSError):
            await connection.rollback()
        with contextlib.suppress(SQLAlchemyError, sqlite3.Error, OSError):
            await connection.close()


class RollbackError(SQLAlchemyError):
    """A grouped write was lost because SQLite rolled back the group's transaction."""


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
        future.exception()  # retrieved here: writes that were cancelled meanwhile never look at it
