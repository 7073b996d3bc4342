"""What bulk ingest stores, below the API: the same column values an ORM write stores, on every driver path.

Ingest runs its statements straight on the driver connection (headrace.server.db.driver); these
tests pin that the rows it writes are the rows SQLAlchemy would write, that the fallback through the
session (an in-memory SQLite database) behaves the same, and that driver errors reach callers as
SQLAlchemy's exceptions.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from headrace.schemas.logs import LogCreate, LogFilter
from headrace.schemas.runs import TaskRunRecord
from headrace.schemas.states import State, StateDetails, StateType
from headrace.server.db import Database, models
from headrace.settings import Settings

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
_STATE_COLUMNS = "type, name, timestamp, message, data"
_RUN_COLUMNS = (
    "flow_run_id, task_key, name, dynamic_key, cache_key, cache_expiration, tags, state_type, state_name, "
    "state_timestamp, run_count, start_time, end_time"
)


def _records(task_run_id: uuid.UUID, flow_run_id: uuid.UUID) -> list[TaskRunRecord]:
    expires = datetime(2030, 2, 1, 9, 30, tzinfo=timezone(timedelta(hours=2)))  # stored in UTC
    running = State(id=uuid.uuid4(), type=StateType.RUNNING, timestamp=T0 + timedelta(seconds=1))
    completed = State(
        id=uuid.uuid4(),
        type=StateType.COMPLETED,
        name="Cached",
        timestamp=T0 + timedelta(seconds=2, microseconds=5),
        message="done, é",
        state_details=StateDetails(cache_key="k1", cache_expiration=expires),
        data={"storage": "local", "key": "abc", "size": 3},
    )
    common: dict[str, Any] = {"task_run_id": task_run_id, "flow_run_id": flow_run_id, "task_key": "etl.step"}
    return [
        TaskRunRecord(**common, name="step", tags=["a", "b"], state=running),
        TaskRunRecord(**common, name="step", tags=["a", "b"], state=completed),
    ]


def _orm_twin(record_run: uuid.UUID, records: list[TaskRunRecord]) -> tuple[models.TaskRun, list[models.TaskRunState]]:
    """The rows an ORM write of the same facts makes (new ids), for comparison."""
    twin_id = uuid.uuid4()
    running, completed = records[0].state, records[1].state
    states = []
    for record in records:
        state = record.state
        details = state.state_details.model_dump(exclude_unset=True) | {
            "task_run_id": str(record_run),
            "flow_run_id": str(record.flow_run_id),
        }
        states.append(
            models.TaskRunState(
                id=uuid.uuid4(),
                task_run_id=twin_id,
                type=state.type,
                name=state.name,
                timestamp=state.timestamp,
                message=state.message,
                state_details=details,
                data=state.data,
            )
        )
    run = models.TaskRun(
        id=twin_id,
        flow_run_id=records[1].flow_run_id,
        task_key="etl.step",
        name="step",
        dynamic_key="0",
        cache_key="k1",
        cache_expiration=completed.state_details.cache_expiration,
        tags=["a", "b"],
        state_id=states[1].id,
        state_type=completed.type,
        state_name=completed.name,
        state_timestamp=completed.timestamp,
        run_count=1,
        start_time=running.timestamp,
        end_time=completed.timestamp,
    )
    return run, states


async def _raw(database: Database, sql: str, key: uuid.UUID) -> list[Any]:
    """Rows as the driver returns them (no SQLAlchemy type processing), for the run ``key``."""
    stored = key.hex if database.dialect == "sqlite" else key
    parameter = "?" if database.dialect == "sqlite" else "$1"
    async with database.read() as session:
        connection = await session.connection()
        result = await connection.exec_driver_sql(sql.replace(":key", parameter), (stored,))
        return [tuple(row) for row in result.all()]


def test_ingested_rows_are_stored_as_the_orm_stores_them(
    server_settings: Settings, new_flow_run: Callable[[Database], Awaitable[uuid.UUID]]
) -> None:
    from headrace.server.operations.task_runs import ingest_task_run_records

    async def scenario() -> None:
        async with Database.from_settings(server_settings) as database:
            flow_run_id = await new_flow_run(database)
            task_run_id = uuid.uuid4()
            records = _records(task_run_id, flow_run_id)
            result = await ingest_task_run_records(database, records)
            assert (result.inserted, result.duplicates, result.skipped) == (2, 0, 0)
            twin, twin_states = _orm_twin(task_run_id, records)
            async with database.write() as session:
                session.add(twin)
                await session.flush()
                session.add_all(twin_states)

            run_sql = f"SELECT {_RUN_COLUMNS} FROM task_runs WHERE id = :key"
            assert await _raw(database, run_sql, task_run_id) == await _raw(database, run_sql, twin.id)
            state_sql = f"SELECT {_STATE_COLUMNS} FROM task_run_states WHERE task_run_id = :key ORDER BY timestamp"
            ingested = await _raw(database, state_sql, task_run_id)
            assert ingested == await _raw(database, state_sql, twin.id)
            assert len(ingested) == 2
            details_sql = "SELECT state_details FROM task_run_states WHERE task_run_id = :key ORDER BY timestamp"
            ingested_details = await _raw(database, details_sql, task_run_id)
            twin_details = await _raw(database, details_sql, twin.id)
            # Same JSON; the order of the keys may differ (the details present are a set).
            assert [_json(row[0]) for row in ingested_details] == [_json(row[0]) for row in twin_details]

    asyncio.run(scenario())


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def test_ingest_through_the_session_fallback_behaves_the_same(
    settings_for: Callable[..., Settings], new_flow_run: Callable[[Database], Awaitable[uuid.UUID]]
) -> None:
    """An in-memory SQLite database has no inline writer: the same SQL goes through the session."""
    from headrace.server.db.migrate import upgrade
    from headrace.server.operations.logs import ingest_logs, read_logs
    from headrace.server.operations.task_runs import ingest_task_run_records, read_task_run, read_task_run_states

    async def scenario() -> None:
        async with Database.from_settings(settings_for("sqlite://")) as database:
            await upgrade(database)
            flow_run_id = await new_flow_run(database)
            task_run_id = uuid.uuid4()
            records = _records(task_run_id, flow_run_id)
            first = await ingest_task_run_records(database, records[1:])
            again = await ingest_task_run_records(database, records + records[1:])
            assert (first.inserted, again.inserted, again.duplicates) == (1, 1, 2)
            run = await read_task_run(database, task_run_id)
            assert run.state is not None
            assert (run.state.name, run.run_count, run.cache_key, run.tags) == ("Cached", 1, "k1", ["a", "b"])
            assert run.start_time == T0 + timedelta(seconds=1)
            assert [s.type for s in await read_task_run_states(database, task_run_id)] == [
                StateType.RUNNING,
                StateType.COMPLETED,
            ]

            logs = [LogCreate(flow_run_id=flow_run_id, level=20, message=f"line {n}") for n in range(3)]
            assert (await ingest_logs(database, logs)).inserted == 3
            replay = await ingest_logs(database, [*logs, LogCreate(level=40, message="new")])
            assert (replay.inserted, replay.duplicates) == (1, 3)
            page = await read_logs(database, LogFilter())
            assert sorted(log.message for log in page.items) == ["line 0", "line 1", "line 2", "new"]

    asyncio.run(scenario())


def test_driver_errors_are_sqlalchemys(server_settings: Settings) -> None:
    from headrace.server.db.driver import driver_for

    async def scenario() -> None:
        async with Database.from_settings(server_settings) as database:
            async with database.write() as session:
                session.add(models.Flow(name="taken"))
            sqlite = database.dialect == "sqlite"
            marks = ["?"] * 5 if sqlite else [f"${n}" for n in range(1, 6)]
            sql = f"INSERT INTO flows (id, name, tags, created, updated) VALUES ({', '.join(marks)})"
            now: Any = "2030-01-01 00:00:00.000000" if sqlite else T0
            flow_id: Any = uuid.uuid4().hex if sqlite else uuid.uuid4()

            async def insert_taken() -> None:
                async with database.write() as session:
                    driver = await driver_for(session)
                    await driver.execute(sql, (flow_id, "taken", "[]", now, now))

            with pytest.raises(sa.exc.IntegrityError):
                await insert_taken()
            async with database.read() as session:
                assert (await session.scalars(sa.select(models.Flow.name))).all() == ["taken"]

    asyncio.run(scenario())


def test_a_cancelled_ingest_on_postgresql_leaves_no_broken_connection_in_the_pool(
    empty_postgres_url: str,
    settings_for: Callable[..., Settings],
    new_flow_run: Callable[[Database], Awaitable[uuid.UUID]],
) -> None:
    """Cancelled mid-statement (waiting for a lock held elsewhere), the connection is invalidated, not reused."""
    import asyncpg  # type: ignore[import-untyped]

    from headrace.server.db.migrate import migrate_on_start
    from headrace.server.operations import task_runs

    settings = settings_for(empty_postgres_url)
    dsn = empty_postgres_url.replace("postgresql+asyncpg://", "postgresql://")

    async def scenario() -> None:
        async with Database.from_settings(settings) as database:
            await migrate_on_start(database, settings)
            flow_run_id = await new_flow_run(database)
            holder = await asyncpg.connect(dsn)
            transaction = holder.transaction()
            await transaction.start()
            await holder.execute("LOCK TABLE task_runs IN ACCESS EXCLUSIVE MODE")  # ingest must wait for it
            invalidated: list[object] = []
            sa.event.listen(database.engine.sync_engine, "invalidate", lambda *args: invalidated.append(args))
            records = _records(uuid.uuid4(), flow_run_id)
            ingest = asyncio.ensure_future(task_runs.ingest_task_run_records(database, records))
            await asyncio.sleep(0.5)
            assert not ingest.done()
            ingest.cancel()
            assert isinstance((await asyncio.gather(ingest, return_exceptions=True))[0], asyncio.CancelledError)
            assert len(invalidated) == 1  # the interrupted connection, and only it
            await transaction.rollback()
            await holder.close()
            for _ in range(4):  # every pooled connection still works
                result = await task_runs.ingest_task_run_records(database, _records(uuid.uuid4(), flow_run_id))
                assert result.inserted == 2
            assert len(invalidated) == 1

    asyncio.run(scenario())
