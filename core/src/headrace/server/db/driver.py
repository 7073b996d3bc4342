"""Bulk statements run straight on the driver connection: the ingest hot paths (task-run records, logs).

Why: an ingest request stores hundreds of rows, and SQLAlchemy's execution layers (execution context,
bind processing of every parameter of every row, expanding ``IN`` lists, result objects, greenlet
switches) cost several times what the database spends storing them. Here each statement's SQL is
written or compiled once per dialect, the values are bound with the columns' own bind processors
(:func:`bind_processor`; on SQLite faster equivalents for timestamps and JSON, checked against
SQLAlchemy's in ``tests/core/server/api/test_ingest.py``), and the rows go to the driver as plain
tuples: the values stored are exactly those an ORM insert would store.

A :class:`Driver` runs the SQL inside the session's transaction, on the connection under it:

- SQLite file: the writer's :class:`sqlite3.Connection`, which already runs inline on the event loop
  (:mod:`headrace.server.db.sqlite_writer`);
- PostgreSQL: the :class:`asyncpg.Connection`, once the session's transaction has begun on it;
- anything else (an in-memory SQLite database, served by aiosqlite's thread): the session's own
  connection (``exec_driver_sql``), with the same SQL.

Driver errors are raised as SQLAlchemy raises them (``IntegrityError``, ``OperationalError``, ...), so
callers (the embedded client's error mapping, the API's problem handlers) see what they saw before.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from pydantic_core import to_json
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from headrace.server.db.group_commit import sqlite_writer_of
from headrace.server.db.types import UtcDateTime

__all__ = [
    "Driver",
    "Processor",
    "as_sqlalchemy_error",
    "bind_processor",
    "driver_for",
    "fast_sqlite_processor",
    "guarded_asyncpg",
    "in_list",
    "per_dialect",
    "result_processor",
    "translated_asyncpg_error",
    "unnest_insert",
]

Processor = Callable[[Any], Any]
T = TypeVar("T")
_UTC = timezone.utc


# ----------------------------------------------------------------------------------- processors


def _sqlite_timestamp(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is _UTC:  # what the wire models hold: no conversion needed
        return value.isoformat(" ", "microseconds")[:26]
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()} given to the database: attach a time zone (UTC)")
    return value.astimezone(_UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _sqlite_json(value: Any) -> str | None:
    return None if value is None else to_json(value).decode()


def fast_sqlite_processor(type_: sa.types.TypeEngine[Any]) -> Processor | None:
    """A faster bind processor giving exactly SQLAlchemy's SQLite value, for timestamps and JSON, else ``None``.

    :class:`~headrace.server.db.types.UtcDateTime` is stored as ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC
    (SQLAlchemy's SQLite format); JSON columns as the engine's serializer writes them, ``None`` as NULL.
    """
    if isinstance(type_, UtcDateTime):
        return _sqlite_timestamp
    if isinstance(type_, sa.JSON) and type_.none_as_null:
        return _sqlite_json
    return None


def bind_processor(type_: sa.types.TypeEngine[Any], dialect: sa.Dialect) -> Processor | None:
    """What SQLAlchemy does to a Python value of ``type_`` before handing it to the driver (``None``: nothing)."""
    if dialect.name == "sqlite":
        fast = fast_sqlite_processor(type_)
        if fast is not None:
            return fast
    processor: Processor | None = type_.dialect_impl(dialect).bind_processor(dialect)
    return processor


def result_processor(type_: sa.types.TypeEngine[Any], dialect: sa.Dialect) -> Processor | None:
    """What SQLAlchemy does to a value of ``type_`` the driver returns (``None``: nothing)."""
    processor: Processor | None = type_.dialect_impl(dialect).result_processor(dialect, None)
    return processor


def process_rows(rows: Sequence[Sequence[Any]], processors: Sequence[Processor | None]) -> list[tuple[Any, ...]]:
    """Driver rows as SQLAlchemy would return them, column by column."""
    active = [(index, p) for index, p in enumerate(processors) if p is not None]
    processed = []
    for row in rows:
        values = list(row)
        for index, process in active:
            values[index] = process(values[index])
        processed.append(tuple(values))
    return processed


# ---------------------------------------------------------------------------------------- SQL


def in_list(dialect: sa.Dialect, count: int) -> str:
    """The right-hand side of ``column IN ...`` for ``count`` values, bound as :meth:`Driver.in_parameters`."""
    if dialect.name == "postgresql":
        return "= ANY($1)"
    return "IN (" + ",".join("?" * count) + ")"


def unnest_insert(table: sa.Table, columns: Sequence[str], dialect: sa.Dialect, *, returning: bool) -> str:
    """PostgreSQL: ``INSERT ... SELECT FROM unnest(arrays) ON CONFLICT (id) DO NOTHING``, one array per column.

    One statement for any number of rows, whose answer says which were inserted (``RETURNING id``) or
    how many (the command status). JSON columns travel as text arrays and are cast to ``jsonb`` as a
    ``jsonb`` parameter would be.
    """
    arrays, selected = [], []
    for position, name in enumerate(columns, start=1):
        sql_type = table.c[name].type.dialect_impl(dialect).compile(dialect=dialect)
        if sql_type.upper() in ("JSONB", "JSON"):
            arrays.append(f"${position}::TEXT[]")
            selected.append(f"u.{name}::{sql_type}")
        else:
            arrays.append(f"${position}::{sql_type}[]")
            selected.append(f"u.{name}")
    names = ", ".join(columns)
    sql = (
        f"INSERT INTO {table.name} ({names}) SELECT {', '.join(selected)} "
        f"FROM unnest({', '.join(arrays)}) AS u({names}) ON CONFLICT (id) DO NOTHING"
    )
    return sql + " RETURNING id" if returning else sql


# ------------------------------------------------------------------------------------- drivers


class Driver:
    """Runs SQL on the connection under a write session, inside its transaction (see the module docs).

    This base class goes through the session's connection (``exec_driver_sql``): correct everywhere,
    and what the subclasses for the two real drivers short-cut.
    """

    def __init__(self, dialect: sa.Dialect, connection: AsyncConnection | None = None) -> None:
        self.dialect = dialect
        self._connection = connection

    def in_parameters(self, values: Sequence[Any]) -> tuple[Any, ...]:
        """The parameters for the SQL :func:`in_list` wrote for these (processed) values."""
        return (list(values),) if self.dialect.name == "postgresql" else tuple(values)

    async def fetch(self, sql: str, parameters: Sequence[Any]) -> list[Sequence[Any]]:
        """The rows ``sql`` returns, as the driver returns them."""
        result = await self._session_connection().exec_driver_sql(sql, tuple(parameters))
        return list(result.all())

    async def executemany(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> int:
        """Run ``sql`` once per row; the number of rows changed (SQLite only: -1 elsewhere)."""
        if not rows:
            return 0
        connection = self._session_connection()
        if self.dialect.name != "sqlite":
            await connection.exec_driver_sql(sql, list(rows))
            return -1
        before = await self._total_changes()
        await connection.exec_driver_sql(sql, list(rows))
        return await self._total_changes() - before

    async def execute(self, sql: str, parameters: Sequence[Any]) -> int:
        """Run one statement returning no rows; the number of rows it changed."""
        result = await self._session_connection().exec_driver_sql(sql, tuple(parameters))
        return int(result.rowcount)

    def _session_connection(self) -> AsyncConnection:
        if self._connection is None:  # pragma: no cover - the subclasses override every use
            raise RuntimeError("this driver has no session connection")
        return self._connection

    async def _total_changes(self) -> int:
        result = await self._session_connection().exec_driver_sql("SELECT total_changes()")
        return int(result.scalar_one())


class _SqliteDriver(Driver):
    """The SQLite writer's own :class:`sqlite3.Connection` (it runs inline on the event loop's thread)."""

    def __init__(self, dialect: sa.Dialect, raw: sqlite3.Connection) -> None:
        super().__init__(dialect)
        self._raw = raw

    async def fetch(self, sql: str, parameters: Sequence[Any]) -> list[Sequence[Any]]:
        try:
            cursor = self._raw.execute(sql, parameters)
            try:
                rows: list[Sequence[Any]] = cursor.fetchall()
            finally:
                cursor.close()
        except sqlite3.Error as error:
            raise as_sqlalchemy_error(sql, error, sqlite3.Error, self.dialect) from error
        return rows

    async def executemany(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> int:
        if not rows:
            return 0
        try:
            cursor = self._raw.executemany(sql, rows)
            changed = cursor.rowcount  # summed over the rows: those an ON CONFLICT DO NOTHING skipped count 0
            cursor.close()
        except sqlite3.Error as error:
            raise as_sqlalchemy_error(sql, error, sqlite3.Error, self.dialect) from error
        return changed

    async def execute(self, sql: str, parameters: Sequence[Any]) -> int:
        return await self.executemany(sql, [tuple(parameters)])


class _AsyncpgDriver(Driver):
    """The :class:`asyncpg.Connection` under the session, in the transaction SQLAlchemy began on it.

    As SQLAlchemy does, a connection whose statement was interrupted (cancelled) or that lost its server
    is invalidated, so that the pool never hands it out again.
    """

    def __init__(self, dialect: sa.Dialect, connection: AsyncConnection, adapted: Any, raw: Any) -> None:
        super().__init__(dialect, connection)
        self._adapted = adapted
        self._raw = raw

    async def fetch(self, sql: str, parameters: Sequence[Any]) -> list[Sequence[Any]]:
        rows: list[Sequence[Any]] = await self._guarded(self._raw.fetch(sql, *parameters), sql)
        return rows

    async def executemany(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> int:
        if rows:
            await self._guarded(self._raw.executemany(sql, rows), sql)
        return -1

    async def execute(self, sql: str, parameters: Sequence[Any]) -> int:
        status: str = await self._guarded(self._raw.execute(sql, *parameters), sql)
        count = status.rpartition(" ")[2]  # "INSERT 0 12", "UPDATE 3"
        return int(count) if count.isdigit() else -1

    async def _guarded(self, operation: Awaitable[T], sql: str) -> T:
        return await guarded_asyncpg(
            operation, sql, dialect=self.dialect, adapted=self._adapted, invalidate=self._invalidate
        )

    async def _invalidate(self, error: BaseException | None) -> None:
        await self._session_connection().invalidate(error)


async def guarded_asyncpg(
    operation: Awaitable[T],
    sql: str,
    *,
    dialect: sa.Dialect,
    adapted: Any,
    invalidate: Callable[[BaseException | None], Awaitable[None]],
    parameters: Sequence[Any] | None = None,
) -> T:
    """Await an asyncpg operation as SQLAlchemy would run it: an error is raised as SQLAlchemy raises it
    (:func:`translated_asyncpg_error`), and the connection is invalidated (shielded from cancellation) when
    the error says it is lost, or when the operation is interrupted mid-statement (the protocol's state is
    then unknown)."""
    try:
        return await operation
    except Exception as error:
        raised, disconnected = translated_asyncpg_error(dialect, adapted, sql, error, parameters)
        if disconnected:
            await asyncio.shield(invalidate(raised))
        if hasattr(raised, "connection_invalidated"):
            raised.connection_invalidated = disconnected
        raise raised from error
    except BaseException:
        await asyncio.shield(invalidate(None))
        raise


def translated_asyncpg_error(
    dialect: sa.Dialect, adapted: Any, sql: str, error: Exception, parameters: Sequence[Any] | None = None
) -> tuple[Exception, bool]:
    """The exception SQLAlchemy would raise for this asyncpg error, and whether the connection is lost.

    ``adapted`` is SQLAlchemy's adapter of the connection: it maps the error to its DB-API class (and notes
    a lost connection). Without ``parameters`` (bulk rows) the message leaves them out.
    """
    try:
        adapted._handle_exception(error)  # raises the DB-API error SQLAlchemy's adapter maps it to
    except Exception as dbapi_error:
        base = getattr(dialect.loaded_dbapi, "Error", Exception)
        if isinstance(dbapi_error, base):
            disconnected = dialect.is_disconnect(cast(Any, dbapi_error), adapted, None)
            return as_sqlalchemy_error(sql, dbapi_error, base, dialect, parameters), disconnected
        return dbapi_error, False
    return error, False  # pragma: no cover - _handle_exception always raises


def as_sqlalchemy_error(
    sql: str, error: Exception, base: type[Exception], dialect: sa.Dialect, parameters: Sequence[Any] | None = None
) -> sa.exc.StatementError:
    """The driver ``error`` as SQLAlchemy raises it for the same statement (``IntegrityError``,
    ``OperationalError``...), so that callers and the server's error handlers see one exception family
    whichever path ran. Without ``parameters`` (bulk rows) the message leaves them out."""
    return sa.exc.DBAPIError.instance(sql, parameters, error, base, hide_parameters=parameters is None, dialect=dialect)


def per_dialect(build: Callable[[sa.Dialect], T]) -> Callable[[sa.Dialect], T]:
    """``build(dialect)``, made once per dialect name: statements compiled or SQL written for a dialect."""
    built: dict[str, T] = {}

    def get(dialect: sa.Dialect) -> T:
        found = built.get(dialect.name)
        if found is None:
            found = built[dialect.name] = build(dialect)
        return found

    return get


async def driver_for(session: AsyncSession) -> Driver:
    """The fastest :class:`Driver` for a write session (see the module docs)."""
    writer = sqlite_writer_of(session)
    if writer is not None:  # a grouped SQLite write: the writer connection, inside this write's savepoint
        return _SqliteDriver(_dialect_of(session), writer)
    connection = await session.connection()
    raw_connection = await connection.get_raw_connection()
    driver = raw_connection.driver_connection
    if connection.dialect.name == "sqlite":
        from headrace.server.db.sqlite_writer import InlineConnection  # not loaded by a PostgreSQL server

        if isinstance(driver, InlineConnection) and isinstance(driver._conn, sqlite3.Connection):
            return _SqliteDriver(connection.dialect, driver._conn)
    if connection.dialect.driver == "asyncpg" and driver is not None:
        if not driver.is_in_transaction():
            # SQLAlchemy begins the asyncpg transaction with the first statement it runs.
            await connection.exec_driver_sql("SELECT 1")
        if driver.is_in_transaction():
            return _AsyncpgDriver(connection.dialect, connection, raw_connection.dbapi_connection, driver)
    return Driver(connection.dialect, connection)


def _dialect_of(session: AsyncSession) -> sa.Dialect:
    bind = session.bind
    if bind is None:  # pragma: no cover - write sessions are always bound
        raise RuntimeError("the write session has no bind")
    return bind.dialect
