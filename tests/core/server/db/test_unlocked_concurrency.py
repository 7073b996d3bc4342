"""The unlocked flow-run paths on PostgreSQL: races, pooled-connection state, interruption."""

from __future__ import annotations

import asyncio
import itertools
import random
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
import sqlalchemy as sa

from headrace.schemas.runs import FlowRunCreate, OrchestrationStatus, SetStateRequest
from headrace.schemas.states import State, StateType
from headrace.server.db import Database, models
from headrace.server.operations.flow_runs import create_flow_run, set_flow_run_state
from headrace.server.operations.flows import ensure_flow
from headrace.settings import Settings

ON_POSTGRESQL = pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
CLAIMERS = 16


async def _flow(database: Database) -> uuid.UUID:
    async with database.write() as session:
        flow_id, _ = await ensure_flow(database, session, "unlocked")
    return flow_id


async def _history(database: Database, run_id: uuid.UUID) -> list[StateType]:
    async with database.read() as session:
        rows = await session.scalars(
            sa.select(models.FlowRunState.type)
            .where(models.FlowRunState.flow_run_id == run_id)
            .order_by(models.FlowRunState.timestamp)
        )
        return list(rows)


@ON_POSTGRESQL
def test_of_many_claimers_on_both_paths_exactly_one_wins(server_settings: Settings) -> None:
    async def scenario() -> None:
        async with Database.from_settings(server_settings) as fast, Database.from_settings(server_settings) as locked:
            locked._autocommit_engine = None
            flow_id = await _flow(fast)
            for _ in range(5):
                run_id = uuid.uuid4()
                await create_flow_run(fast, FlowRunCreate(id=run_id, flow_id=flow_id))
                answers = await asyncio.gather(
                    *(
                        set_flow_run_state(
                            fast if n % 2 else locked, run_id, SetStateRequest(state=State(type=StateType.PENDING))
                        )
                        for n in range(CLAIMERS)
                    )
                )
                winners = [result for result, written in answers if written]
                assert len(winners) == 1
                assert all(result.status is OrchestrationStatus.REJECT for result, written in answers if not written)
                assert await _history(fast, run_id) == [StateType.SCHEDULED, StateType.PENDING]

    asyncio.run(scenario())


@ON_POSTGRESQL
def test_one_proposal_sent_many_times_at_once_is_written_once(server_settings: Settings) -> None:
    async def scenario() -> None:
        async with Database.from_settings(server_settings) as database:
            flow_id = await _flow(database)
            for _ in range(5):
                run_id = uuid.uuid4()
                await create_flow_run(database, FlowRunCreate(id=run_id, flow_id=flow_id))
                proposal = SetStateRequest(state=State(type=StateType.PENDING))
                answers = await asyncio.gather(
                    *(set_flow_run_state(database, run_id, proposal) for _ in range(CLAIMERS))
                )
                assert [written for _, written in answers].count(True) == 1
                assert {result.status for result, _ in answers} == {OrchestrationStatus.ACCEPT}
                assert {result.state.id for result, _ in answers if result.state} == {proposal.state.id}
                assert await _history(database, run_id) == [StateType.SCHEDULED, StateType.PENDING]

    asyncio.run(scenario())


@ON_POSTGRESQL
def test_one_create_sent_many_times_at_once_creates_once(server_settings: Settings) -> None:
    async def scenario() -> None:
        async with Database.from_settings(server_settings) as database:
            flow_id = await _flow(database)
            data = FlowRunCreate(flow_id=flow_id)
            answers = await asyncio.gather(*(create_flow_run(database, data) for _ in range(CLAIMERS)))
            assert [created for _, created in answers].count(True) == 1
            assert len({run.model_dump_json() for run, _ in answers}) == 1
            keyed = await asyncio.gather(
                *(
                    create_flow_run(database, FlowRunCreate(flow_id=flow_id, idempotency_key="k"))
                    for _ in range(CLAIMERS)
                )
            )
            assert [created for _, created in keyed].count(True) == 1
            assert len({run.id for run, _ in keyed}) == 1

    asyncio.run(scenario())


@ON_POSTGRESQL
def test_a_connection_used_in_autocommit_goes_back_to_transactions(server_settings: Settings) -> None:
    """The pool hands the autocommit connection out again: the next write must run in a transaction."""

    async def scenario() -> None:
        settings = server_settings.model_copy(
            update={"server_database_pool_size": 1, "server_database_max_overflow": 0}
        )
        async with Database.from_settings(settings) as database:
            async with database.autocommit() as connection:
                # (that it sends no BEGIN or COMMIT is checked on the wire in test_unlocked_writes.py)
                [(pid,)] = await connection.fetch("SELECT pg_backend_pid()", [])
            async with database.write() as session:
                assert (await session.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one() == pid
                in_transaction = await session.scalar(sa.text("SELECT now() <> statement_timestamp()"))
                await asyncio.sleep(0.01)
                assert await session.scalar(sa.text("SELECT now() <> statement_timestamp()"))
                del in_transaction
            async with database.read() as session:
                assert await session.scalar(sa.text("SELECT current_setting('transaction_read_only')")) == "on"
            async with database.autocommit() as connection:  # not left read-only by the read session
                await connection.fetch("CREATE TEMP TABLE review_ok (x int)", [])

    asyncio.run(scenario())


@ON_POSTGRESQL
# Not ("unlocked", "at_once"): a compare-and-set write whose row lock is released as its caller is cancelled
# may still commit (it is one autocommit statement); docs/architecture.md says so, and why a retry of the
# same proposal is safe.
@pytest.mark.parametrize(("path", "release"), [("unlocked", "later"), ("locked", "later"), ("locked", "at_once")])
def test_a_proposal_cancelled_while_waiting_for_the_run_writes_nothing_later(
    server_settings: Settings,
    database_url: str,
    path: str,
    release: str,
    until_waiting_for_a_lock: Callable[[Any], Awaitable[None]],
) -> None:
    """A proposal cancelled while it waits for the run's row lock, released afterwards, writes nothing."""

    async def scenario() -> None:
        async with Database.from_settings(server_settings) as database:
            if path == "locked":
                database._autocommit_engine = None
            flow_id = await _flow(database)
            run_id = uuid.uuid4()
            await create_flow_run(database, FlowRunCreate(id=run_id, flow_id=flow_id))
            other = await asyncpg.connect(database_url)
            try:
                transaction = other.transaction()
                await transaction.start()
                await other.execute("SELECT id FROM flow_runs WHERE id = $1 FOR UPDATE", run_id)
                proposal = asyncio.create_task(
                    set_flow_run_state(database, run_id, SetStateRequest(state=State(type=StateType.PENDING)))
                )
                await until_waiting_for_a_lock(other)
                proposal.cancel()
                if release == "at_once":
                    await transaction.commit()
                with pytest.raises(asyncio.CancelledError):
                    await proposal
                if release == "later":
                    await transaction.commit()
                await asyncio.sleep(0.5)
            finally:
                await other.close()
            assert await _history(database, run_id) == [StateType.SCHEDULED]

    asyncio.run(scenario())


PROPOSALS = (
    StateType.PENDING,
    StateType.RUNNING,
    StateType.COMPLETED,
    StateType.FAILED,
    StateType.CANCELLING,
    StateType.CANCELLED,
    StateType.SCHEDULED,
)


@ON_POSTGRESQL
def test_a_storm_of_proposals_on_both_paths_loses_and_duplicates_nothing(server_settings: Settings) -> None:
    """Every answer that says "written" is exactly one state row, the run points at the last one, and no
    run is claimed (Pending) twice without a Scheduled in between."""

    async def scenario() -> None:
        async with Database.from_settings(server_settings) as fast, Database.from_settings(server_settings) as locked:
            locked._autocommit_engine = None
            flow_id = await _flow(fast)
            runs = []
            for _ in range(3):
                run, _ = await create_flow_run(fast, FlowRunCreate(flow_id=flow_id, max_retries=2))
                assert run.state is not None
                runs.append((run.id, run.state.id))
            written: dict[uuid.UUID, list[uuid.UUID]] = {run_id: [first] for run_id, first in runs}

            async def worker(seed: int) -> None:
                rng = random.Random(seed)
                for _ in range(40):
                    run_id, _ = rng.choice(runs)
                    kind = rng.choice(PROPOSALS)
                    details: dict[str, Any] = (
                        {"rerun": True} if kind is StateType.SCHEDULED and rng.random() < 0.5 else {}
                    )
                    state = State.model_validate({"type": kind, "state_details": details})
                    database = fast if rng.random() < 0.7 else locked
                    result, was_written = await set_flow_run_state(database, run_id, SetStateRequest(state=state))
                    if was_written:
                        assert result.state is not None
                        written[run_id].append(result.state.id)

            await asyncio.gather(*(worker(seed) for seed in range(12)))
            assert sum(len(ids) for ids in written.values()) > 3 * 5  # the storm did move the runs
            async with fast.read() as session:
                for run_id, _ in runs:
                    history = (
                        await session.execute(
                            sa.select(models.FlowRunState.id, models.FlowRunState.type)
                            .where(models.FlowRunState.flow_run_id == run_id)
                            .order_by(models.FlowRunState.timestamp)
                        )
                    ).all()
                    current = await session.scalar(
                        sa.select(models.FlowRun.state_id).where(models.FlowRun.id == run_id)
                    )
                    assert sorted(row.id for row in history) == sorted(written[run_id])
                    assert current == history[-1].id
                    types = [row.type for row in history]
                    for before, after in itertools.pairwise(types):
                        assert not (before is StateType.PENDING and after is StateType.PENDING)

    asyncio.run(scenario())


@ON_POSTGRESQL
def test_the_liveness_check_on_invalidated_and_recycled_connections(database_url: str, settings_for: Any) -> None:
    """A connection made for this checkout (after an invalidation or a recycle) is not pinged; one that
    has sat in the pool past the window is, once."""
    from tests.core.server.db.test_unlocked_writes import _observed

    async def one_query(database: Database, invalidate: bool = False) -> int:
        async with database.engine.connect() as connection:
            pid = int((await connection.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one())
            if invalidate:
                await connection.invalidate()
            return pid

    async def scenario() -> None:
        async with _observed(lambda url: settings_for(url, server_database_pool_size=1), database_url) as (
            database,
            wire,
        ):
            first = await one_query(database, invalidate=True)
            wire.reset()
            second = await one_query(database)
            assert second != first
            assert wire.simple == ["BEGIN;", "ROLLBACK;"]  # the statement's own transaction: no ping
            await asyncio.sleep(1.1)
            wire.reset()
            assert await one_query(database) == second
            assert wire.simple == ["BEGIN;", "ROLLBACK;", "BEGIN;", "ROLLBACK;"]  # ping, then the statement
            wire.reset()
            assert await one_query(database) == second
            assert wire.simple == ["BEGIN;", "ROLLBACK;"]

    asyncio.run(scenario())
