"""Prepared statements: a Core statement compiled once per dialect and run at the driver's level.

Why: on the server's busiest routes (create a flow run, propose a state) each statement spent ~100 µs
of CPU in SQLAlchemy's execution machinery (execution context, events, greenlet switches, result
objects) around ~10 µs of database work. A :class:`Prepared` statement binds its parameters with the
columns' own bind processors (on SQLite, the faster equivalents in :mod:`headrace.server.db.driver` for
timestamps and JSON), runs the SQL SQLAlchemy compiled for the dialect (bind casts included),
and applies the columns' own result processors: the values stored and read are exactly those of an ORM
or Core execution, at a fraction of the cost.

- On SQLite, inside a grouped write (:mod:`headrace.server.db.group_commit`), the statement runs on the
  writer's plain :class:`sqlite3.Connection`, on the event loop's thread.
- On PostgreSQL, in a session, it runs on SQLAlchemy's asyncpg adapter cursor (the layer under
  SQLAlchemy's execution): in the session's transaction, with the adapter's prepared-statement cache and
  its error translation. On :meth:`Database.autocommit`'s connection it runs on asyncpg itself, outside
  any transaction (:mod:`headrace.server.db.autocommit`).
- Anywhere else (an in-memory SQLite database, a read session on SQLite) it runs through the session's
  connection as usual.

Driver errors are raised as SQLAlchemy raises them (``IntegrityError``, ``OperationalError``...), so
callers write one code path for every case::

    LOCK_RUN = Prepared(sa.select(runs.c.id, runs.c.state_id).where(runs.c.id == sa.bindparam("id")))
    row = await LOCK_RUN.first(session, {"id": run_id})   # a named tuple (row.state_id), or None
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from functools import cache, partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from headrace.server.db.autocommit import AutocommitConnection
from headrace.server.db.driver import Processor, as_sqlalchemy_error, bind_processor, per_dialect
from headrace.server.db.group_commit import sqlite_writer_of
from headrace.server.db.types import json_dumps, json_loads

__all__ = ["Prepared", "typed_binds"]


@cache
def _sqlite_dialect() -> Dialect:
    """SQLite's dialect as the server's engines are configured (the same JSON serializer); made on first use,
    so that a PostgreSQL server never loads SQLAlchemy's SQLite dialect."""
    from sqlalchemy.dialects import sqlite

    return sqlite.dialect(json_serializer=json_dumps, json_deserializer=json_loads)


class _Compiled:
    """The SQL, the parameter order, and the bind and result processors of a statement for one dialect."""

    def __init__(self, statement: sa.Executable, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
        self.dialect = dialect
        self.sql: str = compiled.string
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        self.binds: list[tuple[int, Processor]] = [
            (index, processor)
            for index, name in enumerate(self.names)
            if (processor := bind_processor(compiled.binds[name].type, dialect)) is not None
        ]
        self.columns: list[tuple[str, Any]] = [(column[0], column[3]) for column in compiled._result_columns]
        self.row = namedtuple("Row", [key for key, _ in self.columns], rename=True) if self.columns else None
        # Result processors may depend on the driver's type codes (asyncpg's numeric types do), which the
        # first execution's description gives: made then.
        self._results: list[tuple[int, Processor]] | None = None

    def parameters(self, values: Mapping[str, Any]) -> list[Any]:
        parameters = [values[name] for name in self.names]
        for index, process in self.binds:
            parameters[index] = process(parameters[index])
        return parameters

    @property
    def described(self) -> bool:
        """Whether the result processors are made (from the first execution's type codes)."""
        return self._results is not None

    def rows(self, raw: Sequence[Sequence[Any]], codes: Sequence[Any] | None) -> list[Any]:
        """Named rows of driver values, through the columns' result processors; ``codes``: the driver's type
        code of each column (a cursor description's second field), needed until :attr:`described`."""
        if self._results is None:
            codes = codes or [None] * len(self.columns)
            self._results = [
                (index, processor)
                for index, ((_, type_), code) in enumerate(zip(self.columns, codes, strict=True))
                if (processor := type_._cached_result_processor(self.dialect, code)) is not None
            ]
        assert self.row is not None
        results, make = self._results, self.row
        rows = []
        for values in raw:
            processed = list(values)
            for index, process in results:
                processed[index] = process(processed[index])
            rows.append(make(*processed))
        return rows


class Prepared:
    """One Core statement with named bind parameters (``sa.bindparam``), compiled per dialect on first use."""

    def __init__(self, statement: sa.Executable) -> None:
        self.statement = statement
        self._for: Callable[[Dialect], _Compiled] = per_dialect(partial(_Compiled, statement))

    async def all(
        self, on: AsyncSession | AsyncConnection | AutocommitConnection, values: Mapping[str, Any]
    ) -> list[Any]:
        """Every row the statement returns (named tuples on the driver paths, SQLAlchemy rows otherwise).

        ``on`` is a session (the statement runs in its transaction), a connection, or
        :meth:`Database.autocommit`'s connection (the statement commits on its own).
        """
        if isinstance(on, AutocommitConnection):
            return await self._on_autocommit(on, values)
        if isinstance(on, AsyncConnection):
            connection = on
        else:
            writer = sqlite_writer_of(on)
            if writer is not None:
                return self._on_sqlite_writer(writer, values)
            connection = await on.connection()
        if connection.dialect.name == "postgresql":
            return await self._on_asyncpg(connection, values)
        result = await connection.execute(self.statement, dict(values))
        return list(result.all()) if result.returns_rows else []

    async def first(
        self, on: AsyncSession | AsyncConnection | AutocommitConnection, values: Mapping[str, Any]
    ) -> Any | None:
        """The first row, or ``None``."""
        rows = await self.all(on, values)
        return rows[0] if rows else None

    async def run(self, on: AsyncSession | AsyncConnection | AutocommitConnection, values: Mapping[str, Any]) -> None:
        """Run a statement for its effect (an INSERT, UPDATE or DELETE)."""
        await self.all(on, values)

    def _on_sqlite_writer(self, writer: sqlite3.Connection, values: Mapping[str, Any]) -> list[Any]:
        """Run on the SQLite writer's own connection, inside the grouped write's savepoint."""
        dialect = _sqlite_dialect()
        compiled = self._for(dialect)
        parameters = compiled.parameters(values)
        try:
            cursor = writer.execute(compiled.sql, parameters)
            try:
                raw = cursor.fetchall()
            finally:
                cursor.close()
        except sqlite3.Error as error:
            raise as_sqlalchemy_error(compiled.sql, error, sqlite3.Error, dialect, parameters) from error
        return compiled.rows(raw, None) if compiled.row is not None else []  # sqlite3 needs no type codes

    async def _on_autocommit(self, connection: AutocommitConnection, values: Mapping[str, Any]) -> list[Any]:
        """Run straight on asyncpg, outside any transaction (see :mod:`headrace.server.db.autocommit`)."""
        compiled = self._for(connection.dialect)
        rows = await connection.fetch(compiled.sql, compiled.parameters(values))
        if not rows or compiled.row is None:
            return []
        codes = None if compiled.described else await connection.result_codes(compiled.sql)
        return compiled.rows(rows, codes)

    async def _on_asyncpg(self, connection: AsyncConnection, values: Mapping[str, Any]) -> list[Any]:
        """Run on SQLAlchemy's asyncpg adapter: in the transaction the connection is in, or on its own in autocommit.

        As SQLAlchemy does, a connection whose statement was interrupted (cancelled) or that lost its
        server is invalidated, so that the pool never hands it out again.
        """
        dialect = connection.dialect
        raw = await connection.get_raw_connection()
        compiled = self._for(dialect)
        parameters = compiled.parameters(values)
        cursor = raw.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            await cursor._prepare_and_execute(compiled.sql, parameters)
            rows = cursor.fetchall() if compiled.row is not None else []
            description = cursor.description
        except dialect.loaded_dbapi.Error as error:
            disconnected = dialect.is_disconnect(error, raw.dbapi_connection, cursor)
            if disconnected:
                await connection.invalidate(error)
            wrapped = as_sqlalchemy_error(compiled.sql, error, dialect.loaded_dbapi.Error, dialect, parameters)
            wrapped.connection_invalidated = disconnected
            raise wrapped from error
        except BaseException:
            await asyncio.shield(connection.invalidate())  # interrupted mid-statement: the protocol state is unknown
            raise
        finally:
            cursor.close()
        codes = [entry[1] for entry in description] if description else None
        return compiled.rows(rows, codes) if rows else []


def typed_binds(table: sa.Table, names: Sequence[str]) -> dict[str, Any]:
    """A bind parameter per column name, typed as its column (so each gets the column's bind processor)."""
    return {name: sa.bindparam(name, type_=table.c[name].type) for name in names}
