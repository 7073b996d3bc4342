"""Task runs: bulk ingest of the state records the SDK ships, reads and filters.

Task runs are orchestrated in the process that runs them; the server records what it is told. Each
record is one state change of one task run (:class:`~headrace.schemas.runs.TaskRunRecord`), identified
by its ``state.id``. :func:`ingest_task_run_records` stores a batch in one write transaction:

1. records whose flow run does not exist (it was deleted while they were in flight) are *skipped*:
   acknowledged and not stored, so a client never retries them forever. On PostgreSQL the flow runs
   that do exist are locked ``FOR KEY SHARE`` until commit, so none can be deleted half-way;
2. task runs seen for the first time are created (``INSERT ... ON CONFLICT (id) DO NOTHING``);
3. the states not stored yet (looked up by id once their runs are locked) are inserted (``ON CONFLICT
   (id) DO NOTHING``) and counted as stored now; the rest were stored before (a replay) and change nothing;
4. for each task run that got new states, its row is locked (PostgreSQL: ``FOR UPDATE``, in id order)
   and brought up to date: ``run_count`` counts each new Running state, ``start_time`` is the earliest
   Running state, and the current state moves to the newest state by ``(timestamp, progress, id)``
   (:func:`~headrace.server.operations.states.state_order_key`) — never backwards, so records that
   arrive out of order or twice leave the run as if they had arrived in order, once.

The answer (:class:`~headrace.schemas.runs.IngestResult`) is computed before and returned after the
commit. The statements run straight on the driver connection (:mod:`headrace.server.db.driver`), with
each record's values converted for the database once: SQLite gets ``executemany``, PostgreSQL one
``INSERT ... SELECT FROM unnest(arrays)`` per page, lookups take a page of ids each (pages of
:data:`CHUNK_ROWS`), and rows are locked in id order so that concurrent ingests on PostgreSQL lock
them in one order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any, NamedTuple
from uuid import UUID

import sqlalchemy as sa
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
from headrace.server.db.driver import (
    Driver,
    Processor,
    bind_processor,
    driver_for,
    fast_sqlite_processor,
    in_list,
    per_dialect,
    process_rows,
    result_processor,
    unnest_insert,
)
from headrace.server.db.prepared import typed_binds
from headrace.server.db.types import json_contains_all
from headrace.server.errors import Problem
from headrace.server.operations.pages import fetch_page
from headrace.server.operations.states import details_values, state_from_row, state_order_key

__all__ = [
    "CHUNK_ROWS",
    "fast_sqlite_processor",
    "filter_task_runs",
    "ingest_task_run_records",
    "read_task_run",
    "read_task_run_states",
    "task_run_not_found",
]

CHUNK_ROWS = 1_000
"""Ids per lookup and rows per PostgreSQL insert: well under both dialects' limits on bound parameters."""


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

_RUNS: sa.Table = models.TaskRun.__table__  # type: ignore[assignment]
_STATES: sa.Table = models.TaskRunState.__table__  # type: ignore[assignment]

_RUN_INSERT_COLUMNS = (
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
    "updated",
    "created",
)
_STATE_COLUMNS = ("id", "task_run_id", "type", "name", "timestamp", "message", "state_details", "data")
_RUN_UPDATE_COLUMNS = (
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
_RUN_LOCK_COLUMNS = (
    "id",
    "flow_run_id",
    "state_id",
    "state_type",
    "state_name",
    "state_timestamp",
    "run_count",
    "start_time",
    "end_time",
    "cache_key",
    "cache_expiration",
    "tags",
)


class _RunRow(NamedTuple):
    """A stored task run's columns that ingest reads (and writes back), as Python values."""

    id: UUID
    flow_run_id: UUID | None
    state_id: UUID | None
    state_type: StateType | None
    state_name: str | None
    state_timestamp: datetime | None
    run_count: int
    start_time: datetime | None
    end_time: datetime | None
    cache_key: str | None
    cache_expiration: datetime | None
    tags: list[str] | None


def _same(value: Any) -> Any:
    return value


def _uuid_order(row: tuple[Any, ...]) -> int:
    return int(row[0].int)


def _compiled(statement: sa.Insert | sa.Update, dialect: sa.Dialect, names: Sequence[str]) -> str:
    """The statement's SQL for ``dialect``; its parameters must come in the order ``names``."""
    compiled = statement.compile(dialect=dialect)
    if tuple(compiled.positiontup or ()) != tuple(names):
        raise RuntimeError(f"unexpected parameter order {compiled.positiontup} for {names}")
    return compiled.string


class _Lookup:
    """``SELECT ... WHERE id IN (a page of ids)``, with a locking clause (PostgreSQL)."""

    def __init__(self, select: str, suffix: str, dialect: sa.Dialect) -> None:
        self.select, self.suffix, self.dialect = select, suffix, dialect

    def __call__(self, count: int) -> str:
        return f"{self.select} WHERE id {in_list(self.dialect, count)}{self.suffix}"


class _Ingest:
    """The ingest's SQL and value conversions for one dialect, built once (see the module docstring).

    The conversions are the columns' own bind processors (:func:`~headrace.server.db.driver.bind_processor`);
    every id column shares one type, as do the timestamp and JSON columns and the two state-type
    columns, so each value is converted once per record and used in every row that holds it.
    """

    def __init__(self, dialect: sa.Dialect) -> None:
        self.dialect = dialect
        self.postgresql = dialect.name == "postgresql"
        self.uuid = self._bind(_RUNS.c.id, _RUNS.c.flow_run_id, _RUNS.c.state_id, _STATES.c.id, _STATES.c.task_run_id)
        self.timestamp = self._bind(
            *(_RUNS.c[name] for name in ("cache_expiration", "state_timestamp", "start_time", "end_time")),
            *(_RUNS.c[name] for name in ("updated", "created")),
            _STATES.c.timestamp,
        )
        self.json = self._bind(_RUNS.c.tags, _STATES.c.state_details, _STATES.c.data)
        self.state_type = self._bind(_RUNS.c.state_type, _STATES.c.type)
        self.plain = self._bind(*(_RUNS.c[name] for name in ("task_key", "name", "dynamic_key", "cache_key")))
        self._require_plain(_RUNS.c.state_name, _RUNS.c.run_count, _STATES.c.name, _STATES.c.message)
        self.uuid_result = result_processor(_RUNS.c.id.type, dialect)
        # Rows go in id order: SQLite stores ids as fixed-width hex text, which sorts as the ids do.
        self.row_order: Callable[[tuple[Any, ...]], Any] = _uuid_order if self.postgresql else itemgetter(0)
        self.lock_results = [result_processor(_RUNS.c[name].type, dialect) for name in _RUN_LOCK_COLUMNS]
        if self.postgresql:
            self.insert_runs = unnest_insert(_RUNS, _RUN_INSERT_COLUMNS, dialect, returning=True)
            self.insert_states = unnest_insert(_STATES, _STATE_COLUMNS, dialect, returning=False)
        else:
            from sqlalchemy.dialects.sqlite import insert  # here: a PostgreSQL server never loads the dialect

            self.insert_runs = _compiled(
                insert(_RUNS)
                .values(typed_binds(_RUNS, _RUN_INSERT_COLUMNS))
                .on_conflict_do_nothing(index_elements=["id"]),
                dialect,
                _RUN_INSERT_COLUMNS,
            )
            self.insert_states = _compiled(
                insert(_STATES)
                .values(typed_binds(_STATES, _STATE_COLUMNS))
                .on_conflict_do_nothing(index_elements=["id"]),
                dialect,
                _STATE_COLUMNS,
            )
        update = (
            sa.update(_RUNS)
            .where(_RUNS.c.id == sa.bindparam("key", type_=_RUNS.c.id.type))
            .values(typed_binds(_RUNS, _RUN_UPDATE_COLUMNS))
            .compile(dialect=dialect)
        )
        self.update_runs = update.string
        self.update_names = tuple(update.positiontup or ())
        if sorted(self.update_names) != sorted((*_RUN_UPDATE_COLUMNS, "key")):
            raise RuntimeError(f"unexpected parameters {self.update_names} in the task-run update")
        lock, share = (" ORDER BY id FOR UPDATE", " ORDER BY id FOR KEY SHARE") if self.postgresql else ("", "")
        self.lock_runs = _Lookup(f"SELECT {', '.join(_RUN_LOCK_COLUMNS)} FROM task_runs", lock, dialect)
        self.flow_runs = _Lookup("SELECT id FROM flow_runs", share, dialect)
        self.stored_states = _Lookup("SELECT id FROM task_run_states", "", dialect)

    def _bind(self, *columns: sa.Column[Any]) -> Processor:
        """The one bind processor of these columns (they must share it: same type, same conversion)."""
        processors = {type(column.type) for column in columns}
        if len(processors) != 1:
            raise RuntimeError(f"columns {columns} do not share one type")
        return bind_processor(columns[0].type, self.dialect) or _same

    def _require_plain(self, *columns: sa.Column[Any]) -> None:
        for column in columns:
            if bind_processor(column.type, self.dialect) is not None:
                raise RuntimeError(f"{column} needs a bind processor")

    def processed_ids(self, ids: Sequence[UUID]) -> list[Any]:
        uuid = self.uuid
        return [uuid(value) for value in ids]

    def result_ids(self, rows: Sequence[Sequence[Any]]) -> set[UUID]:
        process = self.uuid_result or _same
        return {process(row[0]) for row in rows}


_ingest_for_dialect = per_dialect(_Ingest)


def _int(value: UUID) -> int:
    """Sort key for ids: integer comparisons (fast) in the order both databases sort their id columns."""
    return value.int


def _key(record: TaskRunRecord) -> tuple[Any, int, UUID]:
    return state_order_key(record.state.timestamp, record.state.type, record.state.id)


def _chunks(items: Sequence[Any]) -> list[Sequence[Any]]:
    return [items[start : start + CHUNK_ROWS] for start in range(0, len(items), CHUNK_ROWS)]


async def _select_ids(driver: Driver, ingest: _Ingest, sql: _Lookup, ids: list[UUID]) -> list[Any]:
    """The rows ``sql`` finds for these ids, a page of :data:`CHUNK_ROWS` at a time (in the order given)."""
    rows: list[Any] = []
    for chunk in _chunks(ids):
        rows.extend(await driver.fetch(sql(len(chunk)), driver.in_parameters(ingest.processed_ids(chunk))))
    return rows


async def _existing_flow_runs(driver: Driver, ingest: _Ingest, flow_run_ids: list[UUID]) -> set[UUID]:
    """Which of these flow runs exist; on PostgreSQL they stay locked against deletion until commit."""
    return ingest.result_ids(await _select_ids(driver, ingest, ingest.flow_runs, flow_run_ids))


async def _lock_task_runs(driver: Driver, ingest: _Ingest, run_ids: list[UUID]) -> dict[UUID, _RunRow]:
    """The task runs' current rows, locked (PostgreSQL ``FOR UPDATE``, in id order) until commit.

    With the runs locked, no other transaction can be storing states of theirs, so the states found
    stored next are exactly those stored before this one.
    """
    rows = process_rows(await _select_ids(driver, ingest, ingest.lock_runs, run_ids), ingest.lock_results)
    return {row[0]: _RunRow(*row) for row in rows}


async def _stored_states(driver: Driver, ingest: _Ingest, state_ids: list[UUID]) -> set[UUID]:
    """Which of these states are stored already (replays)."""
    return ingest.result_ids(await _select_ids(driver, ingest, ingest.stored_states, state_ids))


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
        driver = await driver_for(session)
        ingest = _ingest_for_dialect(driver.dialect)
        flow_run_ids = sorted({r.flow_run_id for r in unique.values() if r.flow_run_id is not None}, key=_int)
        known = await _existing_flow_runs(driver, ingest, flow_run_ids) if flow_run_ids else set()
        kept = [r for r in unique.values() if r.flow_run_id is None or r.flow_run_id in known]
        skipped = len(unique) - len(kept)

        by_run: dict[UUID, list[TaskRunRecord]] = {}
        for record in kept:
            by_run.setdefault(record.task_run_id, []).append(record)
        runs = await _lock_task_runs(driver, ingest, sorted(by_run, key=_int))
        stored = await _stored_states(driver, ingest, [r.state.id for r in kept])
        fresh = _fresh_by_run(kept, stored)
        new_runs = {run_id: new for run_id, new in fresh.items() if run_id not in runs}
        rows = _Rows(ingest, now)
        run_rows, state_rows = rows.build(fresh, new_runs)
        created = await _create_task_runs(driver, ingest, new_runs, run_rows)
        raced = sorted(set(new_runs) - created, key=_int)
        if raced:
            # PostgreSQL only: another ingest created these runs after we looked, and has committed since
            # (our insert waited for it). Treat them as existing: lock them, and look for their states again.
            runs.update(await _lock_task_runs(driver, ingest, raced))
            stored |= await _stored_states(driver, ingest, [r.state.id for run_id in raced for r in by_run[run_id]])
            fresh = _fresh_by_run(kept, stored)
            _, state_rows = rows.build(fresh, {})
        await _insert(driver, ingest.insert_states, state_rows, postgresql=ingest.postgresql)
        updates = [
            rows.update(_updated(runs[run_id], new, now)) for run_id, new in fresh.items() if run_id not in created
        ]
        await driver.executemany(ingest.update_runs, updates)

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


async def _insert(driver: Driver, sql: str, rows: list[tuple[Any, ...]], *, postgresql: bool) -> list[Any]:
    """Insert rows (SQLite: ``executemany``; PostgreSQL: one ``unnest`` statement per page); rows it returns."""
    if not rows:
        return []
    if not postgresql:
        await driver.executemany(sql, rows)
        return []
    returned: list[Any] = []
    for chunk in _chunks(rows):
        returned.extend(await driver.fetch(sql, [list(column) for column in zip(*chunk, strict=True)]))
    return returned


class _Rows:
    """Database rows (tuples of driver values, in the statements' column order) for one ingest request."""

    def __init__(self, ingest: _Ingest, now: datetime) -> None:
        self.ingest = ingest
        self.now = ingest.timestamp(now)
        self._flow_run_ids: dict[UUID | None, Any] = {None: None}

    def flow_run_id(self, value: UUID | None) -> Any:
        """The flow run id as stored (a batch usually names one flow run: converted once)."""
        found = self._flow_run_ids.get(value, self)
        if found is self:
            found = self._flow_run_ids[value] = self.ingest.uuid(value)
        return found

    def build(
        self, fresh: dict[UUID, list[TaskRunRecord]], new_runs: dict[UUID, list[TaskRunRecord]]
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """The rows of the runs seen for the first time and of the fresh states, each in id order.

        Each value is converted once: a run's row takes its state columns from its newest state's row.
        """
        uuid = self.ingest.uuid
        runs, states = [], []
        for run_id, new in fresh.items():
            stored_run_id = uuid(run_id)
            state_rows = [self._state(record, stored_run_id) for record in new]
            states.extend(state_rows)
            if run_id in new_runs:
                runs.append(self._new_run(stored_run_id, new, state_rows))
        runs.sort(key=self.ingest.row_order)
        states.sort(key=self.ingest.row_order)
        return runs, states

    def _state(self, record: TaskRunRecord, stored_run_id: Any) -> tuple[Any, ...]:
        """A state row; its details name its runs (ids as the JSON serializer writes them: their text)."""
        state = record.state
        details = details_values(state.state_details)
        details.setdefault("task_run_id", record.task_run_id)
        if record.flow_run_id is not None:
            details.setdefault("flow_run_id", record.flow_run_id)
        ingest = self.ingest
        return (
            ingest.uuid(state.id),
            stored_run_id,
            ingest.state_type(state.type),
            state.name,
            ingest.timestamp(state.timestamp),
            state.message,
            ingest.json(details),
            ingest.json(state.data),
        )

    def _new_run(
        self, stored_run_id: Any, new: list[TaskRunRecord], state_rows: list[tuple[Any, ...]]
    ) -> tuple[Any, ...]:
        """The row of a task run seen for the first time, already up to date with its new states.

        What :func:`_updated` gives for a run without states, with the first record's names.
        """
        if len(new) == 1:
            first = best = new[0]
            best_row = state_rows[0]
        else:
            first = min(new, key=_key)
            best_index = max(range(len(new)), key=lambda index: _key(new[index]))
            best, best_row = new[best_index], state_rows[best_index]
        running = [r.state.timestamp for r in new if r.state.type is StateType.RUNNING]
        state = best.state
        timestamp = self.ingest.timestamp
        return (
            stored_run_id,
            self.flow_run_id(best.flow_run_id),
            first.task_key,
            first.name,
            first.dynamic_key,
            _cache_key(best) or None,
            timestamp(state.state_details.cache_expiration or None),
            self.ingest.json(best.tags),
            best_row[0],  # its id, type, name and timestamp as stored in its state row
            best_row[2],
            best_row[3],
            best_row[4],
            len(running),
            timestamp(min(running)) if running else None,
            best_row[4] if state.is_terminal else None,
            self.now,
            self.now,
        )

    def update(self, values: dict[str, Any]) -> tuple[Any, ...]:
        """The update statement's parameters for :func:`_updated`'s values (a run that had states already)."""
        ingest = self.ingest
        timestamp, uuid = ingest.timestamp, ingest.uuid
        processed = {
            "key": uuid(values["key"]),
            "flow_run_id": self.flow_run_id(values["flow_run_id"]),
            "run_count": values["run_count"],
            "start_time": timestamp(values["start_time"]),
            "state_id": uuid(values["state_id"]),
            "state_type": ingest.state_type(values["state_type"]),
            "state_name": values["state_name"],
            "state_timestamp": timestamp(values["state_timestamp"]),
            "end_time": timestamp(values["end_time"]),
            "cache_key": values["cache_key"],
            "cache_expiration": timestamp(values["cache_expiration"]),
            "tags": ingest.json(values["tags"]),
            "updated": self.now,
        }
        return tuple(processed[name] for name in ingest.update_names)


async def _create_task_runs(
    driver: Driver, ingest: _Ingest, new_runs: dict[UUID, list[TaskRunRecord]], rows: list[tuple[Any, ...]]
) -> set[UUID]:
    """Insert the task runs seen for the first time (``rows``, already up to date); the ids of those inserted."""
    if not rows:
        return set()
    if not ingest.postgresql:
        # One writer at a time: no other transaction can have created these runs since we looked.
        await driver.executemany(ingest.insert_runs, rows)
        return set(new_runs)
    return ingest.result_ids(await _insert(driver, ingest.insert_runs, rows, postgresql=True))


def _updated(row: _RunRow, new: list[TaskRunRecord], now: datetime) -> dict[str, Any]:
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
    current = None
    if row.state_id is not None and row.state_type is not None:
        current = state_order_key(row.state_timestamp, row.state_type, row.state_id)
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
