"""The server's handle on its database: read sessions, the one write path, and dialect helpers.

Usage (one :class:`Database` per process and event loop; the server keeps it on ``app.state``)::

    database = Database.from_settings(settings)
    async with database.write() as session:      # a transaction: committed on exit, rolled back on error
        session.add(models.Flow(name="etl"))
    async with database.read() as session:       # a read-only transaction (a write in it is an error)
        flows = (await session.scalars(select(models.Flow))).all()
    await database.dispose()

The write path is what keeps "database is locked" away from clients on SQLite. All writes of a process go
through one connection, one at a time, behind an :class:`asyncio.Lock` (FIFO, so no writer starves);
each transaction starts with ``BEGIN IMMEDIATE``, so a writer in *another* process (the embedded SDK, a
CLI command) is waited for up to the busy timeout instead of failing mid-transaction. On a SQLite file,
the writes that queue up together share one transaction, each in its own savepoint, and commit
together (:mod:`headrace.server.db.group_commit`); each ``write()`` block still succeeds or fails alone,
and returns only once it is committed.
Readers use their own pool of ``query_only`` connections and, thanks to WAL, never wait for the writer.
On PostgreSQL ``write()`` is an ordinary transaction from the pool and ``read()`` a ``READ ONLY`` one.

Do not call ``write()`` inside ``write()`` (it would wait for itself): pass the session down instead.
That mistake raises :class:`RuntimeError` at once rather than hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from headrace.server.db.autocommit import AutocommitConnection
from headrace.server.db.engine import (
    Dialect,
    create_postgresql_engine,
    create_sqlite_engine,
    database_url,
    dialect_of,
    is_sqlite_memory,
    render_url,
)
from headrace.server.db.group_commit import GroupCommit

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite

    from headrace.settings import Settings

__all__ = ["Database"]


class Database:
    """Engines, sessions and the write path for one database URL."""

    def __init__(self, url: URL, settings: Settings) -> None:
        self.url = url
        self.dialect: Dialect = dialect_of(url)
        self._memory = self.dialect == "sqlite" and is_sqlite_memory(url)
        self._write_lock: asyncio.Lock | None = None
        self._autocommit_engine: AsyncEngine | None = None  # the engine autocommit() checks connections out of
        self._groups: GroupCommit | None = None
        if self.dialect == "sqlite":
            self._write_engine = create_sqlite_engine(url, settings, role="write")
            self._read_engine = self._write_engine if self._memory else create_sqlite_engine(url, settings, role="read")
            self._write_lock = asyncio.Lock()
            if not self._memory:  # in memory, reads share the writer's connection: they must see commits only
                self._groups = GroupCommit(self._write_engine, self._write_lock)
        else:
            self._write_engine = create_postgresql_engine(url, settings)
            # Both share the pool; SQLAlchemy resets the options when a connection goes back to the pool.
            self._read_engine = self._write_engine.execution_options(postgresql_readonly=True)
            # Its connections run outside transactions on the driver itself (see db.autocommit): no isolation
            # level to set on the way out of the pool and reset on the way back.
            self._autocommit_engine = self._write_engine
        self._writing: ContextVar[bool] = ContextVar(f"headrace_db_writing_{id(self)}", default=False)
        self._write_sessions = async_sessionmaker(self._write_engine, expire_on_commit=False)
        self._read_sessions = async_sessionmaker(self._read_engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        """The database the settings point to (SQLite under ``HEADRACE_HOME`` unless a URL is set)."""
        return cls(database_url(settings), settings)

    def __repr__(self) -> str:
        return f"Database({render_url(self.url)!r})"

    @property
    def display_url(self) -> str:
        """The URL with its password masked, for messages and logs."""
        return render_url(self.url)

    @property
    def engine(self) -> AsyncEngine:
        """The engine writes go through. Prefer :meth:`write` and :meth:`read`; this is for maintenance."""
        return self._write_engine

    @property
    def read_engine(self) -> AsyncEngine:
        """The engine reads go through: its own pool on SQLite files, the same pool as :attr:`engine` otherwise."""
        return self._read_engine

    # ------------------------------------------------------------------------------------- sessions

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session in a write transaction, committed when the block ends without an exception."""
        if self._groups is not None:
            async with self._writer_mark(), self._groups.write() as session:
                yield session
            return
        async with self._write_turn(), self._write_sessions() as session, session.begin():
            yield session

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session in a read-only transaction: one consistent snapshot for the whole block."""
        turn = self._write_turn() if self._memory else contextlib.nullcontext()
        async with turn, self._read_sessions() as session, session.begin():
            yield session

    @contextlib.asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AutocommitConnection]:
        """A pooled PostgreSQL connection outside any transaction: each statement commits on its own.

        For writes that are one statement (a compare-and-set, a ``WITH ... INSERT`` of several rows), which
        need no transaction around them: that saves the ``BEGIN`` and ``COMMIT`` round trips. Statements
        run on it through :class:`~headrace.server.db.prepared.Prepared`, straight on asyncpg (see
        :mod:`headrace.server.db.autocommit`). PostgreSQL only (:attr:`supports_autocommit`); it counts as a
        write, so it cannot be opened inside ``write()``.
        """
        if self._autocommit_engine is None:
            raise RuntimeError(f"autocommit() is for PostgreSQL; this database is {self.dialect}")
        async with self._writer_mark():
            connection = await AutocommitConnection.check_out(self._autocommit_engine)
            try:
                yield connection
            finally:
                await connection.release()

    @property
    def supports_autocommit(self) -> bool:
        """Whether :meth:`autocommit` is available (PostgreSQL)."""
        return self._autocommit_engine is not None

    @contextlib.asynccontextmanager
    async def write_connection(self, *, sqlite_foreign_keys: bool = True) -> AsyncIterator[AsyncConnection]:
        """A Core connection in a write transaction, through the write path (migrations, bulk maintenance).

        ``sqlite_foreign_keys=False`` switches SQLite's foreign-key enforcement off for the transaction
        (as migrations that rebuild tables must) and checks every foreign key before committing.
        """
        async with self._write_turn(), self._write_engine.connect() as connection:
            toggle = self.dialect == "sqlite" and not sqlite_foreign_keys
            if toggle:
                await _sqlite_pragma(connection, "foreign_keys = OFF")
            try:
                async with connection.begin():
                    yield connection
                    if toggle:
                        broken = (await connection.exec_driver_sql("PRAGMA foreign_key_check")).all()
                        if broken:
                            raise sa.exc.IntegrityError(
                                "PRAGMA foreign_key_check", None, ValueError(f"foreign keys broken: {broken[:5]}")
                            )
            finally:
                if toggle:
                    await _sqlite_pragma(connection, "foreign_keys = ON")

    @contextlib.asynccontextmanager
    async def _write_turn(self) -> AsyncIterator[None]:
        """The write lock, for a transaction of its own: an open group of writes commits first."""
        async with self._writer_mark():
            if self._write_lock is None:
                yield
            else:
                async with self._write_lock:
                    if self._groups is not None:
                        await self._groups.flush()
                    yield

    @contextlib.asynccontextmanager
    async def _writer_mark(self) -> AsyncIterator[None]:
        """Mark the task as writing, so that a write inside a write fails at once instead of waiting for itself."""
        if self._writing.get():
            raise RuntimeError(
                "a write transaction was opened inside another one on the same database; "
                "it would wait for itself: pass the outer session down instead"
            )
        token = self._writing.set(True)
        try:
            yield
        finally:
            self._writing.reset(token)

    # -------------------------------------------------------------------------------------- helpers

    def insert(self, entity: Any) -> postgresql.Insert | sqlite.Insert:
        """An INSERT of this dialect, with ``on_conflict_do_nothing`` / ``on_conflict_do_update`` (upserts).

        Both dialects take the same arguments, e.g. ``database.insert(models.Log).values(rows)
        .on_conflict_do_nothing(index_elements=["id"])``.
        """
        # Imported here: a SQLite server never loads SQLAlchemy's PostgreSQL dialect (~15 ms of start-up).
        if self.dialect == "postgresql":
            from sqlalchemy.dialects import postgresql

            return postgresql.insert(entity)
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(entity)

    async def ping(self) -> None:
        """Run ``SELECT 1``; raises if the database cannot be reached (for health checks)."""
        async with self.read() as session:
            await session.execute(sa.text("SELECT 1"))

    async def dispose(self) -> None:
        """Commit the open group of writes, if any, and close every pooled connection. Call before the loop ends."""
        if self._groups is not None and self._write_lock is not None:
            async with self._write_lock:
                await self._groups.flush()
        if self._read_engine is not self._write_engine and self.dialect == "sqlite":
            await self._read_engine.dispose()
        await self._write_engine.dispose()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.dispose()


async def _sqlite_pragma(connection: AsyncConnection, pragma: str) -> None:
    """Run a PRAGMA outside any transaction (``foreign_keys`` is ignored inside one)."""
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    cursor = await driver.execute(f"PRAGMA {pragma}")
    await cursor.close()
