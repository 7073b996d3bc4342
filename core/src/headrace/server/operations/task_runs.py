"""Task runs: bulk ingest of the state records the SDK ships, reads and filters.

Task runs are orchestrated in the process that runs them; the server records what it is told. Each
record is one state change of one task run (:class:`~headrace.schemas.runs.TaskRunRecord`), identified
by its ``state.id``. :func:`ingest_task_run_records` stores a batch in one write transaction:

1. records whose flow run does not exist (it was deleted while they were in flight) are *skipped*:
   acknowledged and not stored, so a client never retries them forever. On PostgreSQL the flow runs
   that do exist are locked ``FOR KEY SHARE`` until commit, so none can be deleted half-way;
2. task runs seen for the first time are created (``INSERT ... ON CONFLICT (id) DO NOTHING``);
3. state rows are inserted with ``ON CONFLICT (id) DO NOTHING RETURNING id``: the ids that come back
   are the records stored now; the rest were stored before (a replay) and change nothing;
4. for each task run that got new states, its row is locked (PostgreSQL: ``FOR UPDATE``, in id order)
   and brought up to date: ``run_count`` counts each new Running state, ``start_time`` is the earliest
   Running state, and the current state moves to the newest state by ``(timestamp, progress, id)``
   (:func:`~headrace.server.operations.states.state_order_key`) — never backwards, so records that
   arrive out of order or twice leave the run as if they had arrived in order, once.

The answer (:class:`~headrace.schemas.runs.IngestResult`) is computed before and returned after the
commit. All statements are multi-row (``INSERT ... VALUES`` pages, ``executemany`` updates), in pages
of :data:`CHUNK_ROWS`, in id order so that concurrent ingests on PostgreSQL lock rows in one order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from operator import itemgetter
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from pydantic_core import to_json
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from headrace.schemas.base import Page, utcnow
from headrace.schemas.runs import (
    MAX_INGEST_RECORDS,
    IngestResult,
    TaskRun,
    TaskRunFilter,
    TaskRunRecord,
    TaskRunSort,
)
from headrace.schemas.states import State, StateType
from headrace.server.db import Database, models
from headrace.server.db.types import UtcDateTime, json_contains_all
from headrace.server.errors import Problem
from headrace.server.operations.pages import fetch_page
from headrace.server.operations.states import state_from_row, state_order_key, state_row_values

__all__ = [
    "CHUNK_ROWS",
    "filter_task_runs",
    "ingest_task_run_records",
    "read_task_run",
    "read_task_run_states",
    "task_run_not_found",
]

CHUNK_ROWS = 1_000
"""Rows per statement: well under both dialects' limits on bound parameters per statement."""


def task_run_not_found(task_run_id: UUID) -> Problem:
    return Problem(404, f"task run {task_run_id} not found", kind="not-found")


# ------------------------------------------------------------------------------------------ reading


def task_run_from_row(row: models.TaskRun) -> TaskRun:
    return TaskRun(
        id=row.id,
        flow_run_id=row.flow_run_id,
        task_key=row.task_key,
        name=row.name,
        dynamic_key=row.dynamic_key,
        cache_key=row.cache_key,
        tags=list(row.tags or []),
        state=state_from_row(row.state) if row.state is not None else None,
        run_count=row.run_count,
        start_time=row.start_time,
        end_time=row.end_time,
        created=row.created,
        updated=row.updated,
    )


async def read_task_run(database: Database, task_run_id: UUID) -> TaskRun:
    async with database.read() as session:
        row = await session.get(models.TaskRun, task_run_id, options=[joinedload(models.TaskRun.state)])
        if row is None:
            raise task_run_not_found(task_run_id)
        return task_run_from_row(row)


async def read_task_run_states(database: Database, task_run_id: UUID) -> list[State]:
    """The task run's state history, oldest first (by the reported timestamps); 404 if there is no such run."""
    async with database.read() as session:
        found = await session.scalar(sa.select(models.TaskRun.id).where(models.TaskRun.id == task_run_id))
        if found is None:
            raise task_run_not_found(task_run_id)
        rows = await session.scalars(
            sa.select(models.TaskRunState)
            .where(models.TaskRunState.task_run_id == task_run_id)
            .order_by(models.TaskRunState.timestamp, models.TaskRunState.id)
        )
        return [state_from_row(row) for row in rows]


_SORTS: dict[TaskRunSort, list[Any]] = {
    TaskRunSort.CREATED_ASC: [models.TaskRun.created.asc(), models.TaskRun.id.asc()],
    TaskRunSort.CREATED_DESC: [models.TaskRun.created.desc(), models.TaskRun.id.desc()],
    TaskRunSort.START_TIME_ASC: [models.TaskRun.start_time.asc().nulls_last(), models.TaskRun.id.asc()],
    TaskRunSort.START_TIME_DESC: [models.TaskRun.start_time.desc().nulls_last(), models.TaskRun.id.desc()],
    TaskRunSort.NAME_ASC: [models.TaskRun.name.asc(), models.TaskRun.id.asc()],
    TaskRunSort.NAME_DESC: [models.TaskRun.name.desc(), models.TaskRun.id.desc()],
}


def _filtered(query: TaskRunFilter) -> sa.Select[Any]:
    run = models.TaskRun
    statement = sa.select(run)
    if query.ids:
        statement = statement.where(run.id.in_(query.ids))
    if query.flow_run_ids:
        statement = statement.where(run.flow_run_id.in_(query.flow_run_ids))
    if query.state_types:
        statement = statement.where(run.state_type.in_(query.state_types))
    if query.task_keys:
        statement = statement.where(run.task_key.in_(query.task_keys))
    if query.tags_all:
        statement = statement.where(json_contains_all(run.tags.expression, query.tags_all))
    if query.name_like:
        statement = statement.where(run.name.icontains(query.name_like, autoescape=True))
    return statement


async def filter_task_runs(database: Database, query: TaskRunFilter) -> Page[TaskRun]:
    """One page of the task runs matching ``query``, in its sort order (ties broken by id)."""
    async with database.read() as session:
        rows, total = await fetch_page(
            session, _filtered(query), _SORTS[query.sort], limit=query.limit, offset=query.offset
        )
        return Page[TaskRun](
            items=[task_run_from_row(row) for row in rows], total=total, limit=query.limit, offset=query.offset
        )


# ----------------------------------------------------------------------------------------- ingest


class _Bulk:
    """One statement compiled once per dialect and run with the driver's ``executemany``.

    SQLAlchemy's own executemany processes every parameter of every row through several layers; for
    the ingest hot path (tens of thousands of rows a second) this applies each column's bind
    processor directly and hands the driver plain tuples, with the SQL SQLAlchemy compiled for the
    dialect (bind casts included), so the values stored are exactly what an ORM insert would store.
    On SQLite, timestamps and JSON use the faster equivalents in :func:`fast_sqlite_processor`.
    """

    def __init__(self, statement: sa.Insert | sa.Update, dialect: sa.Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        self.names = list(compiled.positiontup or ())
        processors = [_processor(compiled.binds[name].type, dialect) for name in self.names]
        self.processed = [(index, p) for index, p in enumerate(processors) if p is not None]
        self.get = itemgetter(*self.names)

    def rows(self, values: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
        get, processed = self.get, self.processed
        rows: list[tuple[Any, ...]] = []
        for row in values:
            items = list(get(row))
            for index, process in processed:
                items[index] = process(items[index])
            rows.append(tuple(items))
        return rows

    async def execute(self, session: AsyncSession, values: Sequence[dict[str, Any]]) -> None:
        if not values:
            return
        connection = await session.connection()
        for chunk in _chunks(values):
            await connection.exec_driver_sql(self.sql, self.rows(chunk))


def _processor(type_: sa.types.TypeEngine[Any], dialect: sa.Dialect) -> Callable[[Any], Any] | None:
    if dialect.name == "sqlite":
        fast = fast_sqlite_processor(type_)
        if fast is not None:
            return fast
    processor: Callable[[Any], Any] | None = type_.dialect_impl(dialect).bind_processor(dialect)
    return processor


def _sqlite_timestamp(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()} given to the database: attach a time zone (UTC)")
    return value.astimezone(timezone.utc).replace(tzinfo=None).isoformat(" ", "microseconds")


def _sqlite_json(value: Any) -> str | None:
    return None if value is None else to_json(value).decode()


def fast_sqlite_processor(type_: sa.types.TypeEngine[Any]) -> Callable[[Any], Any] | None:
    """A faster bind processor giving exactly SQLAlchemy's SQLite value, for timestamps and JSON, else ``None``.

    :class:`~headrace.server.db.types.UtcDateTime` is stored as ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC
    (SQLAlchemy's SQLite format); JSON columns as the engine's serializer writes them, ``None`` as NULL.
    ``tests/core/server/api/test_ingest.py`` checks both against SQLAlchemy's own processors.
    """
    if isinstance(type_, UtcDateTime):
        return _sqlite_timestamp
    if isinstance(type_, sa.JSON) and type_.none_as_null:
        return _sqlite_json
    return None


_BULK_CACHE: dict[tuple[str, str], _Bulk] = {}


def _bulk(database: Database, name: str) -> _Bulk:
    """The bulk statement ``name`` for the database's dialect (compiled on first use)."""
    key = (database.dialect, name)
    found = _BULK_CACHE.get(key)
    if found is None:
        found = _BULK_CACHE[key] = _Bulk(_BULK_STATEMENTS[name](database), database.engine.dialect)
    return found


def _typed(table: sa.Table, names: Sequence[str]) -> dict[str, Any]:
    return {name: sa.bindparam(name, type_=table.c[name].type) for name in names}


_TASK_RUN_INSERT_COLUMNS = (
    "id",
    "flow_run_id",
    "task_key",
    "name",
    "dynamic_key",
    "cache_key",
    "cache_expiration",
    "tags",
    "state_id",
    "state_type",
    "state_name",
    "state_timestamp",
    "run_count",
    "start_time",
    "end_time",
    "created",
    "updated",
)
_STATE_COLUMNS = ("id", "task_run_id", "type", "name", "timestamp", "message", "state_details", "data")
_TASK_RUN_UPDATE_COLUMNS = (
    "flow_run_id",
    "run_count",
    "start_time",
    "state_id",
    "state_type",
    "state_name",
    "state_timestamp",
    "end_time",
    "cache_key",
    "cache_expiration",
    "tags",
    "updated",
)


def _insert_task_runs(database: Database) -> sa.Insert:
    table: sa.Table = models.TaskRun.__table__  # type: ignore[assignment]
    return (
        database.insert(table)
        .values(_typed(table, _TASK_RUN_INSERT_COLUMNS))
        .on_conflict_do_nothing(index_elements=["id"])
    )


def _insert_task_run_states(database: Database) -> sa.Insert:
    table: sa.Table = models.TaskRunState.__table__  # type: ignore[assignment]
    return database.insert(table).values(_typed(table, _STATE_COLUMNS)).on_conflict_do_nothing(index_elements=["id"])


def _update_task_runs(database: Database) -> sa.Update:
    table: sa.Table = models.TaskRun.__table__  # type: ignore[assignment]
    return (
        sa.update(table)
        .where(table.c.id == sa.bindparam("key", type_=table.c.id.type))
        .values(_typed(table, _TASK_RUN_UPDATE_COLUMNS))
    )


_BULK_STATEMENTS: dict[str, Callable[[Database], sa.Insert | sa.Update]] = {
    "insert_task_runs": _insert_task_runs,
    "insert_task_run_states": _insert_task_run_states,
    "update_task_runs": _update_task_runs,
}


def _int(value: UUID) -> int:
    """Sort key for ids: integer comparisons (fast) in the order both databases sort their id columns."""
    return value.int


def _key(record: TaskRunRecord) -> tuple[Any, int, UUID]:
    return state_order_key(record.state.timestamp, record.state.type, record.state.id)


def _chunks(items: Sequence[Any]) -> list[Sequence[Any]]:
    return [items[start : start + CHUNK_ROWS] for start in range(0, len(items), CHUNK_ROWS)]


async def _existing_flow_runs(session: AsyncSession, flow_run_ids: list[UUID]) -> set[UUID]:
    """Which of these flow runs exist; on PostgreSQL they stay locked against deletion until commit."""
    found: set[UUID] = set()
    for chunk in _chunks(flow_run_ids):
        rows = await session.scalars(
            sa.select(models.FlowRun.id)
            .where(models.FlowRun.id.in_(chunk))
            .order_by(models.FlowRun.id)
            .with_for_update(read=True, key_share=True)
        )
        found.update(rows)
    return found


def _cache_key(record: TaskRunRecord) -> str | None:
    return record.cache_key or record.state.state_details.cache_key


async def ingest_task_run_records(database: Database, records: Sequence[TaskRunRecord]) -> IngestResult:
    """Store a batch of task-run state records in one transaction; see the module docstring.

    ``received == inserted + duplicates + skipped``. 413 problem beyond :data:`MAX_INGEST_RECORDS`.
    """
    if len(records) > MAX_INGEST_RECORDS:
        raise Problem(
            413,
            f"{len(records):,} task-run records in one request; send at most {MAX_INGEST_RECORDS:,} per request",
            kind="too-many-records",
        )
    unique: dict[UUID, TaskRunRecord] = {}
    for record in records:
        unique.setdefault(record.state.id, record)
    if not unique:
        return IngestResult(received=0, inserted=0, duplicates=0)

    now = utcnow()
    async with database.write() as session:
        flow_run_ids = sorted({r.flow_run_id for r in unique.values() if r.flow_run_id is not None}, key=_int)
        known = await _existing_flow_runs(session, flow_run_ids) if flow_run_ids else set()
        kept = [r for r in unique.values() if r.flow_run_id is None or r.flow_run_id in known]
        skipped = len(unique) - len(kept)

        by_run: dict[UUID, list[TaskRunRecord]] = {}
        for record in kept:
            by_run.setdefault(record.task_run_id, []).append(record)
        runs = await _lock_task_runs(session, sorted(by_run, key=_int))
        stored = await _stored_states(session, [r.state.id for r in kept])
        fresh = _fresh_by_run(kept, stored)
        new_runs = {run_id: new for run_id, new in fresh.items() if run_id not in runs}
        created = await _create_task_runs(database, session, new_runs, now)
        raced = sorted(set(new_runs) - created, key=_int)
        if raced:
            # PostgreSQL only: another ingest created these runs after we looked, and has committed since
            # (our insert waited for it). Treat them as existing: lock them, and look for their states again.
            runs.update(await _lock_task_runs(session, raced))
            stored |= await _stored_states(session, [r.state.id for run_id in raced for r in by_run[run_id]])
            fresh = _fresh_by_run(kept, stored)
        await _bulk(database, "insert_task_run_states").execute(session, _state_rows(fresh))
        updates = [_updated(runs[run_id], new, now) for run_id, new in fresh.items() if run_id not in created]
        await _bulk(database, "update_task_runs").execute(session, updates)

    inserted = sum(len(new) for new in fresh.values())
    return IngestResult(
        received=len(records),
        inserted=inserted,
        duplicates=len(records) - inserted - skipped,
        skipped=skipped,
    )


def _fresh_by_run(kept: list[TaskRunRecord], stored: set[UUID]) -> dict[UUID, list[TaskRunRecord]]:
    """The records not stored yet, by task run."""
    fresh: dict[UUID, list[TaskRunRecord]] = {}
    for record in kept:
        if record.state.id not in stored:
            fresh.setdefault(record.task_run_id, []).append(record)
    return fresh


class _NoRun:
    """The columns of a task run that has no state yet, for :func:`_updated` to start from."""

    def __init__(self, run_id: UUID) -> None:
        self.id = run_id
        self.flow_run_id: UUID | None = None
        self.state_id: UUID | None = None
        self.state_type: StateType | None = None
        self.state_name: str | None = None
        self.state_timestamp: datetime | None = None
        self.run_count = 0
        self.start_time: datetime | None = None
        self.end_time: datetime | None = None
        self.cache_key: str | None = None
        self.cache_expiration: datetime | None = None
        self.tags: list[str] = []


async def _create_task_runs(
    database: Database, session: AsyncSession, new_runs: dict[UUID, list[TaskRunRecord]], now: datetime
) -> set[UUID]:
    """Insert the task runs seen for the first time, already up to date; the ids of those inserted."""
    rows = []
    for run_id in sorted(new_runs, key=_int):
        new = new_runs[run_id]
        first = min(new, key=_key)
        values = _updated(_NoRun(run_id), new, now)
        values.update(id=values.pop("key"), task_key=first.task_key, name=first.name, dynamic_key=first.dynamic_key)
        values["created"] = now
        rows.append(values)
    if not rows:
        return set()
    if database.dialect == "sqlite":
        # One writer at a time: no other transaction can have created these runs since we looked.
        await _bulk(database, "insert_task_runs").execute(session, rows)
        return set(new_runs)
    table: sa.Table = models.TaskRun.__table__  # type: ignore[assignment]
    statement = database.insert(table).on_conflict_do_nothing(index_elements=["id"]).returning(table.c.id)
    created: set[UUID] = set()
    for chunk in _chunks(rows):
        created.update((await session.execute(statement, list(chunk))).scalars())
    return created


_RUN_COLUMNS = (
    models.TaskRun.id,
    models.TaskRun.flow_run_id,
    models.TaskRun.state_id,
    models.TaskRun.state_type,
    models.TaskRun.state_name,
    models.TaskRun.state_timestamp,
    models.TaskRun.run_count,
    models.TaskRun.start_time,
    models.TaskRun.end_time,
    models.TaskRun.cache_key,
    models.TaskRun.cache_expiration,
    models.TaskRun.tags,
)


async def _lock_task_runs(session: AsyncSession, run_ids: list[UUID]) -> dict[UUID, Any]:
    """The task runs' current rows, locked (PostgreSQL ``FOR UPDATE``, in id order) until commit.

    With the runs locked, no other transaction can be storing states of theirs, so the states found
    stored next are exactly those stored before this one.
    """
    rows: dict[UUID, Any] = {}
    for chunk in _chunks(run_ids):
        result = await session.execute(
            sa.select(*_RUN_COLUMNS).where(models.TaskRun.id.in_(chunk)).order_by(models.TaskRun.id).with_for_update()
        )
        rows.update((row.id, row) for row in result)
    return rows


async def _stored_states(session: AsyncSession, state_ids: list[UUID]) -> set[UUID]:
    """Which of these states are stored already (replays)."""
    stored: set[UUID] = set()
    for chunk in _chunks(state_ids):
        stored.update(await session.scalars(sa.select(models.TaskRunState.id).where(models.TaskRunState.id.in_(chunk))))
    return stored


def _state_rows(fresh: dict[UUID, list[TaskRunRecord]]) -> list[dict[str, Any]]:
    rows = []
    for record in sorted((r for new in fresh.values() for r in new), key=lambda r: r.state.id.int):
        values = state_row_values(record.state)
        values["task_run_id"] = record.task_run_id
        details = values["state_details"]
        details.setdefault("task_run_id", str(record.task_run_id))
        if record.flow_run_id is not None:
            details.setdefault("flow_run_id", str(record.flow_run_id))
        rows.append(values)
    return rows


def _updated(row: Any, new: list[TaskRunRecord], now: datetime) -> dict[str, Any]:
    """The run's columns after its new states: counters from all of them, the state only if it is newer."""
    running = [r.state.timestamp for r in new if r.state.type is StateType.RUNNING]
    start_time = min([row.start_time, *running]) if row.start_time is not None else min(running, default=None)
    values: dict[str, Any] = {
        "key": row.id,
        "flow_run_id": row.flow_run_id,
        "run_count": row.run_count + len(running),
        "start_time": start_time,
        "state_id": row.state_id,
        "state_type": row.state_type,
        "state_name": row.state_name,
        "state_timestamp": row.state_timestamp,
        "end_time": row.end_time,
        "cache_key": row.cache_key,
        "cache_expiration": row.cache_expiration,
        "tags": row.tags,
        "updated": now,
    }
    best = max(new, key=_key)
    current = state_order_key(row.state_timestamp, row.state_type, row.state_id) if row.state_id is not None else None
    if current is None or _key(best) > current:
        state = best.state
        values.update(
            flow_run_id=row.flow_run_id or best.flow_run_id,
            state_id=state.id,
            state_type=state.type,
            state_name=state.name,
            state_timestamp=state.timestamp,
            end_time=state.timestamp if state.is_terminal else None,
            cache_key=_cache_key(best) or row.cache_key,
            cache_expiration=state.state_details.cache_expiration or row.cache_expiration,
            tags=best.tags,
        )
    return values
