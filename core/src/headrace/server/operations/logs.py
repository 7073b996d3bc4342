"""Run logs: bulk ingest (idempotent, one transaction, answered after commit) and filtered reads.

Ingest has the properties of task-run record ingest: each line carries a client-generated id, a batch
is inserted in one write transaction with ``ON CONFLICT (id) DO NOTHING``, and the counts are returned
only after the commit, so a client may drop what was acknowledged from its spool and replay the rest
any number of times without storing a line twice. Logs are never refused for naming a run the server
does not know (they may arrive before or after it); retention removes them after their period.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from headrace.schemas.base import Page, utcnow
from headrace.schemas.logs import Log, LogCreate, LogFilter, LogSort
from headrace.schemas.runs import IngestResult
from headrace.server.db import Database, models
from headrace.server.errors import Problem
from headrace.server.operations.pages import fetch_page

__all__ = ["INSERT_CHUNK_ROWS", "MAX_LOGS_PER_REQUEST", "ingest_logs", "read_logs"]

MAX_LOGS_PER_REQUEST = 10_000
"""The most log lines one ingest call takes; the client ships larger backlogs as several batches."""
INSERT_CHUNK_ROWS = 1_000
"""Rows per multi-row INSERT: well under both dialects' limits on bound parameters per statement."""


async def ingest_logs(database: Database, logs: Sequence[LogCreate]) -> IngestResult:
    """Store ``logs`` in one transaction; lines whose id is already stored (or repeated) count as duplicates."""
    if len(logs) > MAX_LOGS_PER_REQUEST:
        raise Problem(
            413,
            f"{len(logs):,} log lines in one request; send at most {MAX_LOGS_PER_REQUEST:,} per request",
            kind="too-many-logs",
        )
    unique: dict[Any, dict[str, Any]] = {}
    created = utcnow()
    for log in logs:
        if log.id not in unique:
            unique[log.id] = {
                "id": log.id,
                "flow_run_id": log.flow_run_id,
                "task_run_id": log.task_run_id,
                "name": log.name,
                "level": log.level,
                "message": log.message,
                "timestamp": log.timestamp,
                "created": created,
            }
    rows = list(unique.values())
    inserted = 0
    if rows:
        statement = _insert_statement(database)
        async with database.write() as session:
            for start in range(0, len(rows), INSERT_CHUNK_ROWS):
                result = await session.execute(statement, rows[start : start + INSERT_CHUNK_ROWS])
                inserted += len(result.all())
    return IngestResult(received=len(logs), inserted=inserted, duplicates=len(logs) - inserted)


_INSERT_STATEMENTS: dict[str, sa.Insert] = {}


def _insert_statement(database: Database) -> sa.Insert:
    """The ingest INSERT for the database's dialect, built once (SQLAlchemy caches its compiled form by it)."""
    statement = _INSERT_STATEMENTS.get(database.dialect)
    if statement is None:
        table = models.Log.__table__
        statement = _INSERT_STATEMENTS[database.dialect] = (
            database.insert(table).on_conflict_do_nothing(index_elements=["id"]).returning(table.c.id)
        )
    return statement


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
