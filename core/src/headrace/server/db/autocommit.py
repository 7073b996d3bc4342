"""A pooled PostgreSQL connection used outside any transaction, straight on asyncpg (``Database.autocommit``).

Why not a SQLAlchemy ``AsyncConnection`` with ``isolation_level="AUTOCOMMIT"``: the server's busiest
PostgreSQL routes (create a flow run, propose a state) are one or two statements, each about 50 µs of
asyncpg's CPU, and around them SQLAlchemy spent more than that again: a ``Connection`` object per
checkout (with the isolation level set on the way out of the pool and reset on the way back), a task to
shield its close, a greenlet switch to reach the driver connection for every statement, and the adapter
cursor's mutex, statement cache and result buffering. Measured in process on a 2-core machine: a
transition 0.55 → 0.43 ms of CPU, a create 0.52 → 0.41 ms.

What stays SQLAlchemy's: the pool (size, overflow, timeout, the liveness check of
:mod:`headrace.server.db.liveness` on checkout, replacement of a lost connection), the connection's
type codecs (JSON, JSONB, UUID, set up by SQLAlchemy's dialect when it connected), and the exceptions:
an asyncpg error is raised as SQLAlchemy raises it (``IntegrityError``, ``OperationalError``...), and a
connection that lost its server, or whose statement was interrupted, is invalidated so that the pool
never hands it out again.

Outside a transaction each statement commits on its own: asyncpg starts no transaction unless asked,
and this connection never asks. SQLAlchemy's adapter on the same connection has not started one either,
so the pool's reset on return has nothing to roll back, and the next user of the connection gets it as
any other pooled connection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from headrace.server.db.driver import guarded_asyncpg

__all__ = ["AutocommitConnection"]

T = TypeVar("T")


class AutocommitConnection:
    """One connection checked out of an engine's pool; :meth:`fetch` runs a statement that commits on its own."""

    def __init__(self, pooled: PoolProxiedConnection, dialect: Dialect) -> None:
        self._pooled = pooled
        self._driver: Any = pooled.driver_connection
        self.dialect = dialect

    @classmethod
    async def check_out(cls, engine: AsyncEngine) -> AutocommitConnection:
        """A connection from ``engine``'s pool (checked for liveness, as every checkout is)."""
        return cls(await engine.raw_connection(), engine.dialect)

    async def release(self) -> None:
        """Give the connection back to the pool (or, once invalidated, let the pool replace it)."""
        await greenlet_spawn(self._pooled.close)

    async def fetch(self, sql: str, parameters: Sequence[Any]) -> list[Any]:
        """Run ``sql`` (the dialect's compiled SQL) with driver-level ``parameters``; asyncpg's records."""
        rows: list[Any] = await self._guarded(self._driver.fetch(sql, *parameters), sql, parameters)
        return rows

    async def result_codes(self, sql: str) -> list[Any]:
        """The type code of each column ``sql`` returns, as SQLAlchemy's cursor describes it (the type's OID).

        Some result processors depend on them (SQLAlchemy's numeric types on asyncpg): asked once per
        statement per process, by :class:`~headrace.server.db.prepared.Prepared`.
        """
        statement = await self._guarded(self._driver.prepare(sql), sql, ())
        return [attribute.type.oid for attribute in statement.get_attributes()]

    async def _guarded(self, operation: Awaitable[T], sql: str, parameters: Sequence[Any]) -> T:
        return await guarded_asyncpg(
            operation,
            sql,
            dialect=self.dialect,
            adapted=self._pooled.dbapi_connection,
            invalidate=self.invalidate,
            parameters=parameters,
        )

    async def invalidate(self, error: BaseException | None) -> None:
        """Close the connection and make the pool replace it."""
        await greenlet_spawn(self._pooled.invalidate, error)
