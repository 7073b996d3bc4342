"""Portable column types behave the same on both dialects, and rows read back as the wire models."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from headrace.schemas import artifacts as artifact_schemas
from headrace.schemas import auth as auth_schemas
from headrace.schemas import logs as log_schemas
from headrace.schemas import runs as run_schemas
from headrace.schemas.states import State, StateDetails, StateType
from headrace.server.db import Database, models
from headrace.server.db.types import JSON_TYPE, UtcDateTime, json_contains_all, render_migration_type
from headrace.settings import Settings

PLUS_TWO = timezone(timedelta(hours=2))


def test_timestamps_come_back_aware_and_in_utc(server_settings: Settings) -> None:
    local = datetime(2030, 5, 17, 14, 30, 15, 123456, tzinfo=PLUS_TWO)

    async def scenario() -> None:
        async with Database.from_settings(server_settings) as database:
            async with database.write() as session:
                session.add(models.Log(name="t", level=20, message="m", timestamp=local))
            async with database.read() as session:
                stored = await session.scalar(sa.select(models.Log.timestamp))
                assert stored == local
                assert stored is not None
                assert stored.utcoffset() == timedelta(0)
                assert stored.hour == 12
                # Comparisons in SQL use the same conversion.
                later = await session.scalar(
                    sa.select(sa.func.count())
                    .select_from(models.Log)
                    .where(models.Log.timestamp > local - timedelta(seconds=1))
                )
                assert later == 1

    asyncio.run(scenario())


def test_naive_timestamps_are_refused(server_settings: Settings) -> None:
    async def scenario() -> None:
        async with Database.from_settings(server_settings) as database:
            with pytest.raises(sa.exc.StatementError, match="naive datetime"):
                async with database.write() as session:
                    session.add(models.Log(name="t", level=20, message="m", timestamp=datetime(2030, 1, 1)))

    asyncio.run(scenario())


def test_json_round_trips_and_none_is_sql_null(server_settings: Settings) -> None:
    value: dict[str, Any] = {"nested": {"list": [1, 2.5, "три", None, True]}, "empty": {}}

    async def scenario() -> None:
        async with Database.from_settings(server_settings) as database:
            async with database.write() as session:
                session.add_all([models.Variable(name="full", value=value), models.Variable(name="none", value=None)])
                # Python values that JSON has no word for are serialized the way the wire does.
                flow = models.Flow(name="f")
                session.add(flow)
                await session.flush()
                when = datetime(2030, 1, 1, tzinfo=timezone.utc)
                ident = uuid.UUID(int=7)
                session.add(models.FlowRun(flow_id=flow.id, name="r", parameters={"when": when, "id": ident}))
            async with database.read() as session:
                rows = dict((await session.execute(sa.select(models.Variable.name, models.Variable.value))).all())
                nulls = await session.scalar(
                    sa.select(sa.func.count()).select_from(models.Variable).where(models.Variable.value.is_(None))
                )
                parameters = await session.scalar(sa.select(models.FlowRun.parameters))
            assert rows == {"full": value, "none": None}
            assert nulls == 1
            assert parameters == {"when": "2030-01-01T00:00:00Z", "id": str(ident)}

    asyncio.run(scenario())


def test_tag_filters_work_on_both_dialects(server_settings: Settings) -> None:
    async def scenario() -> None:
        async with Database.from_settings(server_settings) as database:
            async with database.write() as session:
                session.add_all(
                    [
                        models.Flow(name="ab", tags=["a", "b"]),
                        models.Flow(name="a", tags=["a"]),
                        models.Flow(name="none", tags=[]),
                        models.Flow(name="quote", tags=["it's", "a"]),
                    ]
                )

            async def names(*tags: str) -> set[str]:
                async with database.read() as session:
                    query = sa.select(models.Flow.name).where(json_contains_all(models.Flow.tags, tags))
                    return set((await session.scalars(query)).all())

            assert await names("a") == {"ab", "a", "quote"}
            assert await names("a", "b") == {"ab"}
            assert await names("it's") == {"quote"}
            assert await names("c") == set()
            assert await names() == {"ab", "a", "none", "quote"}

    asyncio.run(scenario())


def test_enums_are_stored_as_their_values(server_settings: Settings) -> None:
    async def scenario() -> None:
        async with Database.from_settings(server_settings) as database:
            async with database.write() as session:
                session.add(models.Artifact(type=artifact_schemas.ArtifactType.TABLE, data=[[1, 2]]))
                session.add(models.ApiKey(name="k", hashed_key="h", scope=auth_schemas.Scope.ADMIN))
            async with database.read() as session:
                raw = (await session.execute(sa.text("SELECT a.type, k.scope FROM artifacts a, api_keys k"))).one()
            assert tuple(raw) == ("table", "admin")

    asyncio.run(scenario())


def test_rows_read_back_as_the_wire_models(server_settings: Settings) -> None:
    """The column names follow headrace.schemas, so ``Model.model_validate(row, from_attributes=True)`` just works."""
    state = State(type=StateType.RUNNING, message="go", state_details=StateDetails(cache_key="k"), data={"ref": 1})

    async def scenario() -> None:
        async with Database.from_settings(server_settings) as database:
            async with database.write() as session:
                flow = models.Flow(name="wire", tags=["x"])
                session.add(flow)
                await session.flush()
                run = models.FlowRun(flow_id=flow.id, name="run", state_id=state.id, state_type=state.type)
                session.add(run)
                await session.flush()
                session.add(
                    models.FlowRunState(
                        id=state.id,
                        flow_run_id=run.id,
                        type=state.type,
                        name=state.name,
                        timestamp=state.timestamp,
                        message=state.message,
                        state_details=state.state_details.model_dump(mode="json"),
                        data=state.data,
                    )
                )
                task = models.TaskRun(id=uuid.uuid4(), flow_run_id=run.id, task_key="k", name="t")
                session.add(task)
                session.add(models.Log(flow_run_id=run.id, name="l", level=20, message="m", timestamp=state.timestamp))
                session.add(models.Artifact(key="report", type=artifact_schemas.ArtifactType.LINK, data="https://x.y"))
                session.add(models.Variable(name="v", value=[1], tags=[]))
                session.add(models.ApiKey(name="key", hashed_key="0" * 64, scope=auth_schemas.Scope.READ))
            async with database.read() as session:
                assert run_schemas.Flow.model_validate(await session.scalar(sa.select(models.Flow))).tags == ["x"]
                # from_attributes=True reaches the nested State, whose own config does not say so.
                wire_run = run_schemas.FlowRun.model_validate(
                    await session.scalar(sa.select(models.FlowRun)), from_attributes=True
                )
                assert wire_run.state == state
                wire_task = run_schemas.TaskRun.model_validate(
                    await session.scalar(sa.select(models.TaskRun)), from_attributes=True
                )
                assert wire_task.state is None
                assert wire_task.dynamic_key == "0"
                log_schemas.Log.model_validate(await session.scalar(sa.select(models.Log)))
                assert (
                    artifact_schemas.Artifact.model_validate(await session.scalar(sa.select(models.Artifact))).version
                    == 1
                )
                artifact_schemas.Variable.model_validate(await session.scalar(sa.select(models.Variable)))
                auth_schemas.ApiKey.model_validate(await session.scalar(sa.select(models.ApiKey)))

    asyncio.run(scenario())


def test_autogenerated_revisions_spell_headrace_types_in_plain_sqlalchemy() -> None:
    from alembic.autogenerate import render_python_code
    from alembic.operations import ops

    upgrade = ops.UpgradeOps(
        ops=[
            ops.AddColumnOp("flows", sa.Column("extra", JSON_TYPE)),
            ops.AddColumnOp("flows", sa.Column("seen_at", UtcDateTime())),
        ]
    )
    code = render_python_code(upgrade, render_item=render_migration_type)
    assert 'sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")' in code
    assert "sa.DateTime(timezone=True)" in code
    assert "PortableJSON" not in code
    assert "UtcDateTime" not in code


@pytest.mark.parametrize("delays", [5, 5.0, [5.0], [1.0, 2.0], [], None])
def test_retry_delays_as_read_are_what_the_column_reads_back(delays: Any) -> None:
    """``RetryDelays.as_read`` (used for runs remembered as written, see operations.recent_runs) agrees with
    the column's own round trip: stored as an array, ``[d]`` read back as ``d``."""
    column = models.FlowRun.__table__.c.retry_delay_seconds.type
    dialect = sa.create_engine("sqlite://").dialect
    stored = column.process_bind_param(delays, dialect)
    assert column.as_read(delays) == column.process_result_value(stored, dialect)
    assert type(column.as_read(delays)) is type(column.process_result_value(stored, dialect))
