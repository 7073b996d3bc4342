"""The retention service deletes what is older than its period and nothing else, on both dialects."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from headrace.schemas.artifacts import ArtifactType
from headrace.schemas.states import StateType, utcnow
from headrace.server.db import Database, models
from headrace.server.operations.retention import apply_retention
from headrace.server.services import all_services
from headrace.server.services.retention import RetentionService
from headrace.settings import Settings
from headrace.testing.server import running_server


def _ago(days: float) -> datetime:
    return utcnow() - timedelta(days=days)


class Rows:
    """Builds rows with chosen ages, directly in the database."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.flow = models.Flow(name=f"flow-{uuid.uuid4().hex[:8]}")
        session.add(self.flow)

    def flow_run(self, state: StateType, *, ended_days: float | None, state_days: float, tasks: int = 0) -> uuid.UUID:
        run_id, state_id = uuid.uuid4(), uuid.uuid4()
        created = _ago(max(state_days, ended_days or 0) + 1)
        self.session.add(
            models.FlowRun(
                id=run_id,
                flow=self.flow,
                name="run",
                state_id=state_id,
                state_type=state,
                state_name=state.default_name,
                state_timestamp=_ago(state_days),
                end_time=None if ended_days is None else _ago(ended_days),
                created=created,
                updated=created,
            )
        )
        self.session.add(
            models.FlowRunState(
                id=state_id, flow_run_id=run_id, type=state, name=state.default_name, timestamp=_ago(state_days)
            )
        )
        for _ in range(tasks):
            self.task_run(run_id, ended_days=ended_days, updated_days=state_days)
        return run_id

    def task_run(self, flow_run_id: uuid.UUID | None, *, ended_days: float | None, updated_days: float) -> uuid.UUID:
        task_id = uuid.uuid4()
        created = _ago(max(updated_days, ended_days or 0) + 1)
        self.session.add(
            models.TaskRun(
                id=task_id,
                flow_run_id=flow_run_id,
                task_key="t",
                name="t-0",
                end_time=None if ended_days is None else _ago(ended_days),
                created=created,
                updated=_ago(updated_days),
            )
        )
        self.session.add(
            models.TaskRunState(task_run_id=task_id, type=StateType.COMPLETED, name="Completed", timestamp=created)
        )
        return task_id

    def log(self, days: float, flow_run_id: uuid.UUID | None = None) -> uuid.UUID:
        log_id = uuid.uuid4()
        self.session.add(
            models.Log(id=log_id, flow_run_id=flow_run_id, name="n", level=20, message="m", timestamp=_ago(days))
        )
        return log_id

    def artifact(self, days: float, flow_run_id: uuid.UUID | None = None) -> uuid.UUID:
        artifact_id = uuid.uuid4()
        self.session.add(
            models.Artifact(
                id=artifact_id, type=ArtifactType.MARKDOWN, data="x", flow_run_id=flow_run_id, created=_ago(days)
            )
        )
        return artifact_id

    def slot(self, expires_in_seconds: float) -> uuid.UUID:
        limit = models.ConcurrencyLimit(name=f"limit-{uuid.uuid4().hex[:8]}", limit=5)
        self.session.add(limit)
        slot_id = uuid.uuid4()
        self.session.add(
            models.ConcurrencySlot(
                id=slot_id,
                concurrency_limit=limit,
                lease_id=uuid.uuid4(),
                holder="h",
                expires_at=utcnow() + timedelta(seconds=expires_in_seconds),
            )
        )
        return slot_id


async def _ids(database: Database, model: Any) -> set[uuid.UUID]:
    async with database.read() as session:
        return set((await session.scalars(sa.select(model.id))).all())


def test_one_pass_deletes_only_what_is_past_its_period(server_settings: Settings) -> None:
    async def scenario() -> None:
        async with Database.from_settings(server_settings) as database:
            async with database.write() as session:
                rows = Rows(session)
                old_done = rows.flow_run(StateType.COMPLETED, ended_days=100, state_days=100, tasks=3)
                old_failed = rows.flow_run(StateType.FAILED, ended_days=95, state_days=95, tasks=1)
                never_ran = rows.flow_run(StateType.CANCELLED, ended_days=None, state_days=120)
                recent_done = rows.flow_run(StateType.COMPLETED, ended_days=10, state_days=10, tasks=2)
                old_but_running = rows.flow_run(StateType.RUNNING, ended_days=None, state_days=200, tasks=1)
                old_scheduled = rows.flow_run(StateType.SCHEDULED, ended_days=None, state_days=300)

                orphan_old = rows.task_run(None, ended_days=100, updated_days=100)
                orphan_stale = rows.task_run(None, ended_days=None, updated_days=100)
                orphan_recent = rows.task_run(None, ended_days=5, updated_days=5)
                orphan_active = rows.task_run(None, ended_days=None, updated_days=1)

                log_old, log_recent = rows.log(31), rows.log(29)
                log_of_recent_run = rows.log(1, flow_run_id=recent_done)
                await session.flush()  # artifacts point to flow runs without an ORM relationship
                artifact_old, artifact_recent = rows.artifact(91), rows.artifact(89)
                artifact_of_old_run = rows.artifact(1, flow_run_id=old_done)
                slot_expired, slot_live = rows.slot(-1), rows.slot(3600)
                await session.flush()
                old_task_runs = set(
                    (
                        await session.scalars(
                            sa.select(models.TaskRun.id).where(models.TaskRun.flow_run_id.in_([old_done, old_failed]))
                        )
                    ).all()
                )
            assert len(old_task_runs) == 4
            tasks_before = await _ids(database, models.TaskRun)

            await RetentionService().run_once(database, server_settings)

            assert await _ids(database, models.FlowRun) == {recent_done, old_but_running, old_scheduled}
            states = await _ids(database, models.FlowRunState)
            async with database.read() as session:
                state_runs = set((await session.scalars(sa.select(models.FlowRunState.flow_run_id))).all())
            assert state_runs == {recent_done, old_but_running, old_scheduled}
            assert len(states) == 3
            assert never_ran not in state_runs
            assert await _ids(database, models.TaskRun) == (tasks_before - old_task_runs - {orphan_old, orphan_stale})
            assert {orphan_recent, orphan_active} <= await _ids(database, models.TaskRun)
            async with database.read() as session:
                task_state_owners = set((await session.scalars(sa.select(models.TaskRunState.task_run_id))).all())
            assert task_state_owners == await _ids(database, models.TaskRun)
            assert await _ids(database, models.Log) == {log_recent, log_of_recent_run}
            assert log_old not in await _ids(database, models.Log)
            assert await _ids(database, models.Artifact) == {artifact_recent}
            assert artifact_old not in await _ids(database, models.Artifact)
            assert artifact_of_old_run not in await _ids(database, models.Artifact)  # went with its run
            assert await _ids(database, models.ConcurrencySlot) == {slot_live}
            assert slot_expired not in await _ids(database, models.ConcurrencySlot)

            again = await apply_retention(database, server_settings)
            assert again.total == 0  # nothing left to do: a repeated pass is harmless

    asyncio.run(scenario())


def test_periods_come_from_the_settings(database_url: str, settings_for: Callable[..., Settings]) -> None:
    settings = settings_for(
        database_url,
        server_retention_flow_runs_days=2,
        server_retention_logs_days=0.5,
        server_retention_artifacts_days=3,
    )

    async def scenario() -> None:
        async with Database.from_settings(settings) as database:
            async with database.write() as session:
                rows = Rows(session)
                run_gone, run_kept = (
                    rows.flow_run(StateType.COMPLETED, ended_days=3, state_days=3),
                    rows.flow_run(StateType.COMPLETED, ended_days=1, state_days=1),
                )
                rows.log(1)
                log_kept = rows.log(0.25)
                rows.artifact(4)
                artifact_kept = rows.artifact(2)
            report = await apply_retention(database, settings)
            assert report.deleted["flow_runs"] == 1
            assert report.deleted["logs"] == 1
            assert report.deleted["artifacts"] == 1
            assert run_gone not in await _ids(database, models.FlowRun)
            assert run_kept in await _ids(database, models.FlowRun)
            assert await _ids(database, models.Log) == {log_kept}
            assert await _ids(database, models.Artifact) == {artifact_kept}

    asyncio.run(scenario())


def test_many_rows_go_in_several_small_batches(server_settings: Settings) -> None:
    async def scenario() -> None:
        async with Database.from_settings(server_settings) as database:
            async with database.write() as session:
                rows = Rows(session)
                runs = [rows.flow_run(StateType.COMPLETED, ended_days=100, state_days=100, tasks=4) for _ in range(7)]
                kept_run = rows.flow_run(StateType.COMPLETED, ended_days=1, state_days=1, tasks=4)
                for _ in range(11):
                    rows.log(40)
                kept_log = rows.log(1)
            report = await apply_retention(database, server_settings, batch_size=3)
            assert report.deleted["flow_runs"] == len(runs)
            assert report.deleted["logs"] == 11
            assert await _ids(database, models.FlowRun) == {kept_run}
            assert await _ids(database, models.Log) == {kept_log}
            async with database.read() as session:
                owners = set((await session.scalars(sa.select(models.TaskRun.flow_run_id))).all())
            assert owners == {kept_run}

    asyncio.run(scenario())


def test_retention_is_on_by_default_with_documented_periods(settings_for: Callable[..., Settings]) -> None:
    settings = settings_for(None)
    assert RetentionService().enabled(settings)
    assert "retention" in [service.name for service in all_services()]
    assert (
        settings.server_retention_flow_runs_days,
        settings.server_retention_logs_days,
        settings.server_retention_artifacts_days,
        settings.server_retention_events_days,
        settings.server_retention_loop_seconds,
    ) == (90, 30, 90, 7, 3600)


def test_the_server_runs_retention_when_enabled(database_url: str, settings_for: Callable[..., Settings]) -> None:
    settings = settings_for(database_url, server_retention_enabled=True, server_retention_loop_seconds=0.2)
    old, recent = str(uuid.uuid4()), str(uuid.uuid4())
    with running_server(settings) as server, httpx.Client(base_url=server.api_url, timeout=30) as api:
        logs = [
            {"id": old, "level": 20, "message": "old", "timestamp": _ago(31).isoformat()},
            {"id": recent, "level": 20, "message": "recent", "timestamp": _ago(1).isoformat()},
        ]
        assert api.post("/logs", json=logs).json()["inserted"] == 2
        deadline = time.monotonic() + 30
        while True:  # a functional wait: the service's next pass removes the old line
            stored = [log["id"] for log in api.post("/logs/filter", json={}).json()["items"]]
            if old not in stored:
                break
            assert time.monotonic() < deadline, "the retention service never deleted the old log line"
            time.sleep(0.05)
        assert stored == [recent]
