"""Run logs: bulk ingest (idempotent, one transaction, answered after commit) and filtered reads.

Ingest has the properties of task-run record ingest: each line carries a client-generated id, a batch
is inserted in one write transaction with ``ON CONFLICT (id) DO NOTHING``, and the counts are returned
only after the commit, so a client may drop what was acknowledged from its spool and replay the rest
any number of times without storing a line twice. Logs are never refused for naming a run the server
does not know (they may arrive before or after it); retention removes them after their period.

The insert runs straight on the driver connection (:mod:`headrace.server.db.driver`): SQLite gets
``executemany`` (its row count is the lines inserted), PostgreSQL one ``INSERT ... SELECT FROM
unnest(arrays)`` per page (its command status says how many).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from headrace.schemas.base import Page, utcnow
from headrace.schemas.logs import Log, LogCreate, LogFilter, LogSort
from headrace.schemas.runs import IngestResult
from headrace.server.db import Database, models
from headrace.server.db.driver import Driver, Processor, bind_processor, driver_for, per_dialect, unnest_insert
from headrace.server.errors import Problem
from headrace.server.operations.pages import fetch_page

__all__ = ["INSERT_CHUNK_ROWS", "MAX_LOGS_PER_REQUEST", "ingest_logs", "read_logs"]

MAX_LOGS_PER_REQUEST = 10_000
"""The most log lines one ingest call takes; the client ships larger backlogs as several batches."""
INSERT_CHUNK_ROWS = 1_000
"""Rows per PostgreSQL INSERT (SQLite takes a batch in one ``executemany``)."""


async def ingest_logs(database: Database, logs: Sequence[LogCreate]) -> IngestResult:
    """Store ``logs`` in one transaction; lines whose id is already stored (or repeated) count as duplicates."""
    if len(logs) > MAX_LOGS_PER_REQUEST:
        raise Problem(
            413,
            f"{len(logs):,} log lines in one request; send at most {MAX_LOGS_PER_REQUEST:,} per request",
            kind="too-many-logs",
        )
    unique: dict[UUID, LogCreate] = {}
    for log in logs:
        unique.setdefault(log.id, log)
    inserted = 0
    if unique:
        created = utcnow()
        async with database.write() as session:
            driver = await driver_for(session)
            insert = _insert_for_dialect(driver.dialect)
            inserted = await insert.run(driver, insert.rows(list(unique.values()), created))
    return IngestResult(received=len(logs), inserted=inserted, duplicates=len(logs) - inserted)


_LOGS: sa.Table = models.Log.__table__  # type: ignore[assignment]
_COLUMNS = ("id", "flow_run_id", "task_run_id", "name", "level", "message", "timestamp", "created")


def _same(value: Any) -> Any:
    return value


class _Insert:
    """The ingest INSERT for one dialect, and the columns' bind processors (ids and timestamps need them)."""

    def __init__(self, dialect: sa.Dialect) -> None:
        self.postgresql = dialect.name == "postgresql"
        for group in (("id", "flow_run_id", "task_run_id"), ("timestamp", "created")):
            if len({type(_LOGS.c[name].type) for name in group}) != 1:
                raise RuntimeError(f"log columns {group} are expected to share one type (one bind processor)")
        if any(bind_processor(_LOGS.c[name].type, dialect) is not None for name in ("name", "level", "message")):
            raise RuntimeError("log text and level columns are expected to need no bind processor")
        self.uuid: Processor = bind_processor(_LOGS.c.id.type, dialect) or _same
        self.timestamp: Processor = bind_processor(_LOGS.c.timestamp.type, dialect) or _same
        if self.postgresql:
            self.sql = unnest_insert(_LOGS, _COLUMNS, dialect, returning=False)
        else:
            from sqlalchemy.dialects.sqlite import insert  # here: a PostgreSQL server never loads the dialect

            statement = insert(_LOGS).values({name: sa.bindparam(name, type_=_LOGS.c[name].type) for name in _COLUMNS})
            compiled = statement.on_conflict_do_nothing(index_elements=["id"]).compile(dialect=dialect)
            if tuple(compiled.positiontup or ()) != _COLUMNS:
                raise RuntimeError(f"unexpected parameter order {compiled.positiontup} in the log insert")
            self.sql = compiled.string

    def rows(self, logs: list[LogCreate], created: datetime) -> list[tuple[Any, ...]]:
        uuid, timestamp = self.uuid, self.timestamp
        stored_created = timestamp(created)
        return [
            (
                uuid(log.id),
                uuid(log.flow_run_id),
                uuid(log.task_run_id),
                log.name,
                log.level,
                log.message,
                timestamp(log.timestamp),
                stored_created,
            )
            for log in logs
        ]

    async def run(self, driver: Driver, rows: list[tuple[Any, ...]]) -> int:
        """Insert the rows (ids already stored are left as they are); how many were inserted."""
        if not self.postgresql:
            return await driver.executemany(self.sql, rows)
        inserted = 0
        for start in range(0, len(rows), INSERT_CHUNK_ROWS):
            chunk = rows[start : start + INSERT_CHUNK_ROWS]
            inserted += await driver.execute(self.sql, [list(column) for column in zip(*chunk, strict=True)])
        return inserted


_insert_for_dialect = per_dialect(_Insert)


def _filtered(log_filter: LogFilter) -> sa.Select[Any]:
    query = sa.select(models.Log)
    if log_filter.flow_run_ids:
        query = query.where(models.Log.flow_run_id.in_(log_filter.flow_run_ids))
    if log_filter.task_run_ids:
        query = query.where(models.Log.task_run_id.in_(log_filter.task_run_ids))
    if log_filter.level_ge is not None:
        query = query.where(models.Log.level >= log_filter.level_ge)
    if log_filter.timestamp_after is not None:
        query = query.where(models.Log.timestamp >= log_filter.timestamp_after)
    if log_filter.timestamp_before is not None:
        query = query.where(models.Log.timestamp <= log_filter.timestamp_before)
    return query


async def read_logs(database: Database, log_filter: LogFilter) -> Page[Log]:
    """One page of the lines matching ``log_filter``, in timestamp order (ties broken by id, so stable)."""
    if log_filter.sort is LogSort.TIMESTAMP_DESC:
        order = [models.Log.timestamp.desc(), models.Log.id.desc()]
    else:
        order = [models.Log.timestamp.asc(), models.Log.id.asc()]
    async with database.read() as session:
        rows, total = await fetch_page(
            session, _filtered(log_filter), order, limit=log_filter.limit, offset=log_filter.offset
        )
    return Page[Log](
        items=[Log.model_validate(row) for row in rows], total=total, limit=log_filter.limit, offset=log_filter.offset
    )
