"""Prepared statements: a Core statement compiled once per dialect, run straight on the SQLite writer.

Why: on the server's busiest routes (create a flow run, propose a state) each statement spent ~100 µs
of CPU in SQLAlchemy's execution machinery (execution context, events, greenlet switches, result
objects) around ~10 µs of SQLite. Inside a grouped write (:mod:`headrace.server.db.group_commit`) the
writer is a plain :class:`sqlite3.Connection` on the event loop's thread, so a :class:`Prepared`
statement binds its parameters with the columns' own bind processors, runs the SQL SQLAlchemy compiled
for SQLite, and applies the columns' own result processors: the values stored and read are exactly
those of an ORM or Core execution, at a fraction of the cost.

Everywhere else (PostgreSQL, an in-memory SQLite database) the same call runs the statement through
the session's connection as usual, so callers write one code path for both::

    LOCK_RUN = Prepared(sa.select(runs.c.id, runs.c.state_id).where(runs.c.id == sa.bindparam("id")))
    row = await LOCK_RUN.first(session, {"id": run_id})   # a named tuple (row.state_id), or None
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from headrace.server.db.group_commit import sqlite_writer_of
from headrace.server.db.types import json_dumps

__all__ = ["Prepared"]

# As the server's engines are configured (engine.create_sqlite_engine): the same JSON serializer.
_SQLITE = sqlite.dialect(json_serializer=json_dumps)
Processor = Callable[[Any], Any]


class _CompiledForSqlite:
    """The SQL, the parameter order, and the bind and result processors of a statement on SQLite."""

    def __init__(self, statement: sa.Executable) -> None:
        compiled = statement.compile(dialect=_SQLITE)  # type: ignore[attr-defined]
        self.sql: str = compiled.string
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        self.binds: list[tuple[int, Processor]] = [
            (index, processor)
            for index, name in enumerate(self.names)
            if (processor := compiled.binds[name].type._cached_bind_processor(_SQLITE)) is not None
        ]
        columns = [(column[0], column[3]) for column in compiled._result_columns]  # (key, type)
        self.results: list[tuple[int, Processor]] = [
            (index, processor)
            for index, (_, type_) in enumerate(columns)
            if (processor := type_._cached_result_processor(_SQLITE, None)) is not None
        ]
        self.row = namedtuple("Row", [key for key, _ in columns], rename=True) if columns else None

    def parameters(self, values: Mapping[str, Any]) -> list[Any]:
        parameters = [values[name] for name in self.names]
        for index, process in self.binds:
            parameters[index] = process(parameters[index])
        return parameters

    def rows(self, raw: Sequence[Sequence[Any]]) -> list[Any]:
        assert self.row is not None
        rows = []
        for values in raw:
            processed = list(values)
            for index, process in self.results:
                processed[index] = process(processed[index])
            rows.append(self.row(*processed))
        return rows


class Prepared:
    """One Core statement with named bind parameters (``sa.bindparam``), compiled for SQLite on first use."""

    def __init__(self, statement: sa.Executable) -> None:
        self.statement = statement
        self._sqlite: _CompiledForSqlite | None = None

    def _for_sqlite(self) -> _CompiledForSqlite:
        if self._sqlite is None:
            self._sqlite = _CompiledForSqlite(self.statement)
        return self._sqlite

    async def all(self, session: AsyncSession, values: Mapping[str, Any]) -> list[Any]:
        """Every row the statement returns (named tuples on the fast path, SQLAlchemy rows otherwise)."""
        writer = sqlite_writer_of(session)
        if writer is None:
            connection = await session.connection()
            return list((await connection.execute(self.statement, dict(values))).all())
        compiled = self._for_sqlite()
        parameters = compiled.parameters(values)
        try:
            cursor = writer.execute(compiled.sql, parameters)
            try:
                raw = cursor.fetchall()
            finally:
                cursor.close()
        except sqlite3.Error as error:
            raise _wrapped(error, compiled.sql, parameters) from error
        return compiled.rows(raw)

    async def first(self, session: AsyncSession, values: Mapping[str, Any]) -> Any | None:
        """The first row, or ``None``."""
        rows = await self.all(session, values)
        return rows[0] if rows else None

    async def run(self, session: AsyncSession, values: Mapping[str, Any]) -> None:
        """Run a statement that returns no rows (an INSERT, UPDATE or DELETE without RETURNING)."""
        writer = sqlite_writer_of(session)
        if writer is None:
            connection = await session.connection()
            await connection.execute(self.statement, dict(values))
            return
        compiled = self._for_sqlite()
        parameters = compiled.parameters(values)
        try:
            writer.execute(compiled.sql, parameters).close()
        except sqlite3.Error as error:
            raise _wrapped(error, compiled.sql, parameters) from error


def _wrapped(error: sqlite3.Error, sql: str, parameters: Sequence[Any]) -> sa.exc.StatementError:
    """The error as SQLAlchemy raises it for the same statement (``IntegrityError``, ``OperationalError``...),
    so that callers and the server's error handlers see one exception family whichever path ran."""
    return sa.exc.DBAPIError.instance(sql, parameters, error, sqlite3.Error)
