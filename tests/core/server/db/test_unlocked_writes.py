"""Flow-run creates and transitions on PostgreSQL without a transaction, and the pool's liveness check.

What the server sends is read off the wire by a proxy that speaks PostgreSQL's protocol (:class:`RoundTrips`),
so these tests count the round trips PostgreSQL received, not what the code meant to send.
"""

from __future__ import annotations

import asyncio
import struct
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from headrace.schemas.runs import FlowRunCreate, OrchestrationStatus, SetStateRequest
from headrace.schemas.states import State, StateType
from headrace.server.db import Database, models
from headrace.server.db.liveness import check_connections_on_checkout
from headrace.server.operations.flow_runs import create_flow_run, delete_flow_run, set_flow_run_state
from headrace.server.operations.flows import ensure_flow
from headrace.settings import Settings

ON_POSTGRESQL = pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)


class RoundTrips:
    """A TCP proxy in front of PostgreSQL that reads what clients send, in the wire protocol.

    Each ``Sync`` (an extended-protocol statement: parse/bind/execute) and each simple ``Query`` (``BEGIN``,
    ``COMMIT``) is one round trip; the text of each simple query and of each parsed statement is kept.
    """

    def __init__(self) -> None:
        self.round_trips = 0
        self.simple: list[str] = []
        self.parsed: list[str] = []
        self._server: asyncio.AbstractServer | None = None

    async def start(self, url: str) -> str:
        target = make_url(url)
        host, port = target.host or "127.0.0.1", target.port or 5432

        async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, watch: bool) -> None:
            buffer = b""
            started = not watch
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    if watch:
                        buffer += data
                        buffer, started = self._read_messages(buffer, started)
            finally:
                writer.close()

        async def accept(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
            server_reader, server_writer = await asyncio.open_connection(host, port)
            await asyncio.gather(
                relay(client_reader, server_writer, True),
                relay(server_reader, client_writer, False),
                return_exceptions=True,
            )

        self._server = await asyncio.start_server(accept, "127.0.0.1", 0)
        proxy_port = self._server.sockets[0].getsockname()[1]
        return target.set(host="127.0.0.1", port=proxy_port).render_as_string(hide_password=False)

    def _read_messages(self, buffer: bytes, started: bool) -> tuple[bytes, bool]:
        while True:
            if not started:  # SSLRequest or StartupMessage: a length and a code, no type byte
                if len(buffer) < 8:
                    return buffer, started
                length, code = struct.unpack("!ii", buffer[:8])
                if len(buffer) < length:
                    return buffer, started
                buffer, started = buffer[length:], code != 80877103  # 80877103: SSLRequest
                continue
            if len(buffer) < 5:
                return buffer, started
            kind, length = buffer[:1], struct.unpack("!i", buffer[1:5])[0]
            if len(buffer) < 1 + length:
                return buffer, started
            body, buffer = buffer[5 : 1 + length], buffer[1 + length :]
            if kind == b"S":
                self.round_trips += 1
            elif kind == b"Q":
                self.round_trips += 1
                self.simple.append(" ".join(body.rstrip(b"\0").decode().upper().split()))
            elif kind == b"P":
                name_end = body.index(b"\0")
                query = body[name_end + 1 : body.index(b"\0", name_end + 1)]
                self.parsed.append(" ".join(query.decode().upper().split()))

    def reset(self) -> None:
        self.round_trips = 0
        self.simple.clear()
        self.parsed.clear()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()


@asynccontextmanager
async def _observed(settings_for: Any, url: str) -> AsyncIterator[tuple[Database, RoundTrips]]:
    """A database reached through a :class:`RoundTrips` proxy."""
    proxy = RoundTrips()
    database = Database.from_settings(settings_for(await proxy.start(url)))
    try:
        yield database, proxy
    finally:
        await database.dispose()
        await proxy.close()


async def _flow(database: Database) -> uuid.UUID:
    async with database.write() as session:
        flow_id, _ = await ensure_flow(database, session, "unlocked")
    return flow_id


def _propose(kind: StateType, **fields: Any) -> SetStateRequest:
    return SetStateRequest(state=State(type=kind, **fields))


async def _history(database: Database, run_id: uuid.UUID) -> list[StateType]:
    """The types of the run's stored states, oldest first."""
    async with database.read() as session:
        return list(
            (
                await session.scalars(
                    sa.select(models.FlowRunState.type)
                    .where(models.FlowRunState.flow_run_id == run_id)
                    .order_by(models.FlowRunState.timestamp)
                )
            ).all()
        )


def _transaction_statements(sent: list[str]) -> list[str]:
    return [query for query in sent if query.split()[0] in {"BEGIN", "COMMIT", "ROLLBACK"} or "FOR UPDATE" in query]


@ON_POSTGRESQL
def test_a_run_without_limits_is_created_in_one_round_trip_and_moved_in_two(
    database_url: str, settings_for: Any
) -> None:
    async def lifecycle(database: Database, flow_id: uuid.UUID) -> uuid.UUID:
        run_id = uuid.uuid4()
        run, created = await create_flow_run(database, FlowRunCreate(id=run_id, flow_id=flow_id))
        assert created
        assert run.state is not None
        assert run.state.type is StateType.SCHEDULED
        for kind in (StateType.PENDING, StateType.RUNNING, StateType.COMPLETED):
            result, written = await set_flow_run_state(database, run_id, _propose(kind))
            assert (result.status, written) == (OrchestrationStatus.ACCEPT, True)
        return run_id

    async def scenario() -> None:
        async with _observed(settings_for, database_url) as (database, wire):
            flow_id = await _flow(database)
            await lifecycle(database, flow_id)  # statements are prepared on first use: not counted
            assert any(query.startswith("WITH RUN AS (INSERT INTO FLOW_RUNS") for query in wire.parsed), wire.parsed[:3]
            wire.reset()
            run_id = uuid.uuid4()
            await create_flow_run(database, FlowRunCreate(id=run_id, flow_id=flow_id))
            assert wire.round_trips == 1
            for kind in (StateType.PENDING, StateType.RUNNING, StateType.COMPLETED):
                await set_flow_run_state(database, run_id, _propose(kind))
            # Per transition, the compare-and-set write only: this server remembers what it wrote last.
            assert wire.round_trips == 1 + 3
            assert wire.simple == []  # no BEGIN, no COMMIT, no ping
            # A run another server created: its first transition reads it first, the next ones need not.
            async with Database.from_settings(settings_for(database_url)) as replica:
                elsewhere = uuid.uuid4()
                await create_flow_run(replica, FlowRunCreate(id=elsewhere, flow_id=flow_id))
            wire.reset()
            for kind in (StateType.PENDING, StateType.RUNNING, StateType.COMPLETED):
                await set_flow_run_state(database, elsewhere, _propose(kind))
            assert wire.round_trips == 2 + 1 + 1
            assert wire.simple == []
            history = await _history(database, run_id)
            async with database.read() as session:
                current = await session.scalar(sa.select(models.FlowRun.state_type).where(models.FlowRun.id == run_id))
            assert history == [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.COMPLETED]
            assert current is StateType.COMPLETED

    asyncio.run(scenario())


@ON_POSTGRESQL
def test_runs_with_concurrency_limits_and_replays_take_the_locked_path(database_url: str, settings_for: Any) -> None:
    async def scenario() -> None:
        async with _observed(settings_for, database_url) as (database, wire):
            flow_id = await _flow(database)
            limited = uuid.uuid4()
            await create_flow_run(database, FlowRunCreate(id=limited, flow_id=flow_id, concurrency_limits=["db"]))
            wire.reset()
            await set_flow_run_state(database, limited, _propose(StateType.PENDING))
            assert any(query.startswith("BEGIN") for query in wire.simple), wire.simple

            plain = uuid.uuid4()
            await create_flow_run(database, FlowRunCreate(id=plain, flow_id=flow_id))
            proposal = _propose(StateType.PENDING)
            first, written = await set_flow_run_state(database, plain, proposal)
            wire.reset()
            again, written_again = await set_flow_run_state(database, plain, proposal)
            assert (written, written_again) == (True, False)
            assert again.state == first.state
            assert "already applied" in (again.reason or "")
            assert any(query.startswith("BEGIN") for query in wire.simple), wire.simple

    asyncio.run(scenario())


@ON_POSTGRESQL
def test_a_remembered_run_that_another_server_moved_is_decided_on_what_is_stored(
    database_url: str, settings_for: Any
) -> None:
    """Server A remembers the runs it wrote; server B moves one of them. A's next proposal for it is
    decided on the stored state: a write based on what A remembers changes nothing, and a refusal is
    never given on it."""

    async def scenario() -> None:
        async with (
            _observed(settings_for, database_url) as (server_a, wire),
            Database.from_settings(settings_for(database_url)) as server_b,
        ):
            flow_id = await _flow(server_a)

            # A remembers the run Scheduled; B claims it. A's claim must not win as well.
            claimed = uuid.uuid4()
            await create_flow_run(server_a, FlowRunCreate(id=claimed, flow_id=flow_id))
            _, written = await set_flow_run_state(server_b, claimed, _propose(StateType.PENDING))
            assert written
            wire.reset()
            result, written = await set_flow_run_state(server_a, claimed, _propose(StateType.PENDING))
            assert (result.status, written) == (OrchestrationStatus.REJECT, False)
            assert "another claimer won it" in (result.reason or "")
            assert wire.round_trips == 2  # the write that changed nothing, then the read
            assert await _history(server_b, claimed) == [StateType.SCHEDULED, StateType.PENDING]

            # A remembers the run Completed, which refuses Pending; B forces it back to Scheduled, which
            # accepts it. A decides on the stored state, without a write on the remembered one.
            rerun = uuid.uuid4()
            await create_flow_run(server_a, FlowRunCreate(id=rerun, flow_id=flow_id))
            for kind in (StateType.PENDING, StateType.RUNNING, StateType.COMPLETED):
                await set_flow_run_state(server_a, rerun, _propose(kind))
            forced = SetStateRequest(state=State(type=StateType.SCHEDULED), force=True)
            _, written = await set_flow_run_state(server_b, rerun, forced)
            assert written
            wire.reset()
            result, written = await set_flow_run_state(server_a, rerun, _propose(StateType.PENDING))
            assert (result.status, written) == (OrchestrationStatus.ACCEPT, True)
            assert wire.round_trips == 2  # the read, then the write
            assert (await _history(server_b, rerun))[-2:] == [StateType.SCHEDULED, StateType.PENDING]

            # B deletes a run A remembers and creates it again with the same ids, with a concurrency limit
            # now: A's proposal must not move it on the remembered run (no limits), but take the locked path.
            again, first_state = uuid.uuid4(), uuid.uuid4()
            create = FlowRunCreate(id=again, flow_id=flow_id, state=State(id=first_state, type=StateType.SCHEDULED))
            await create_flow_run(server_a, create)
            await delete_flow_run(server_b, again)
            await create_flow_run(server_b, create.model_copy(update={"concurrency_limits": ["db"]}))
            wire.reset()
            _, written = await set_flow_run_state(server_a, again, _propose(StateType.PENDING))
            assert written
            assert any(query.startswith("BEGIN") for query in wire.simple), wire.simple

    asyncio.run(scenario())


@ON_POSTGRESQL
def test_a_proposal_overtaken_between_its_read_and_its_write_is_decided_again(
    server_settings: Settings, database_url: str, until_waiting_for_a_lock: Callable[[Any], Awaitable[None]]
) -> None:
    """Another writer moves the run to Pending while this proposal's write waits for the row: the write
    then finds a different current state, writes nothing, and the proposal is decided again, on Pending."""

    async def scenario() -> None:
        async with Database.from_settings(server_settings) as database:
            flow_id = await _flow(database)
            run_id = uuid.uuid4()
            run, _ = await create_flow_run(database, FlowRunCreate(id=run_id, flow_id=flow_id))
            assert run.state is not None
            other = await asyncpg.connect(database_url)
            try:
                transaction = other.transaction()
                await transaction.start()
                await other.execute("SELECT id FROM flow_runs WHERE id = $1 FOR UPDATE", run_id)
                proposal = asyncio.create_task(set_flow_run_state(database, run_id, _propose(StateType.PENDING)))
                await until_waiting_for_a_lock(other)
                pending_id = uuid.uuid4()
                await other.execute(
                    "INSERT INTO flow_run_states (id, flow_run_id, type, name, timestamp, state_details) "
                    "VALUES ($1, $2, 'PENDING', 'Pending', now(), '{}')",
                    pending_id,
                    run_id,
                )
                await other.execute(
                    "UPDATE flow_runs SET state_id = $1, state_type = 'PENDING', state_name = 'Pending' WHERE id = $2",
                    pending_id,
                    run_id,
                )
                await transaction.commit()
                result, written = await asyncio.wait_for(proposal, 30)
            finally:
                await other.close()
            assert (result.status, written) == (OrchestrationStatus.REJECT, False)
            assert "another claimer won it" in (result.reason or "")
            async with database.read() as session:
                types = (
                    await session.scalars(
                        sa.select(models.FlowRunState.type).where(models.FlowRunState.flow_run_id == run_id)
                    )
                ).all()
            assert sorted(types) == [StateType.PENDING, StateType.SCHEDULED]

    asyncio.run(scenario())


@ON_POSTGRESQL
def test_a_pooled_connection_is_pinged_only_when_idle_or_closed(database_url: str, settings_for: Any) -> None:
    async def one_query(database: Database) -> int:
        async with database.engine.connect() as connection:
            return int((await connection.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one())

    async def scenario() -> None:
        async with _observed(settings_for, database_url) as (database, wire):
            pid = await one_query(database)
            wire.reset()
            assert await one_query(database) == pid  # returned a moment ago, socket open: no ping
            assert (wire.round_trips, wire.simple) == (3, ["BEGIN;", "ROLLBACK;"])

            # The server ends the pooled connection's backend: the event loop sees the socket close, and
            # the next checkout replaces the connection instead of failing.
            killer = await asyncpg.connect(database_url)
            try:
                await killer.execute("SELECT pg_terminate_backend($1)", pid)
            finally:
                await killer.close()
            await asyncio.sleep(0.2)
            assert await one_query(database) != pid

            # After the recently-used window, a connection is pinged before use: three more round trips
            # (SQLAlchemy's ping is BEGIN, ';', ROLLBACK).
            check_connections_on_checkout(database.engine, recently_used=0.0)
            wire.reset()
            await one_query(database)
            assert wire.round_trips == 6, wire.simple

    asyncio.run(scenario())


def test_autocommit_is_for_postgresql_only(tmp_path: Any, settings_for: Any) -> None:
    async def scenario() -> None:
        async with Database.from_settings(settings_for(f"sqlite:///{tmp_path / 'x.db'}")) as database:
            assert not database.supports_autocommit
            with pytest.raises(RuntimeError, match="autocommit"):
                async with database.autocommit():
                    pass

    asyncio.run(scenario())
