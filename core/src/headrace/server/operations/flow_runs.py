"""Flow runs: create, read, filter, delete, and ``set_state`` through the orchestration rules.

Every state a flow run enters goes through :func:`~headrace.server.orchestration.orchestrate` with
:data:`~headrace.server.orchestration.FLOW_RUN_POLICY`, inside one write transaction that

1. locks the run row (PostgreSQL: ``SELECT ... FOR NO KEY UPDATE``, so that of two concurrent claimers
   the second waits and then sees the first one's Pending; SQLite's single write path already runs one
   transaction at a time),
2. locks the run's concurrency-limit rows (by name, in name order) and loads the unexpired slots taken
   against them into an :class:`~headrace.server.orchestration.InMemoryConcurrencySlots`,
3. decides, and when the decision writes a state: inserts the state row, copies the decision's run
   facts onto the run, and writes back the slots the run took (one lease, ``SLOT_LEASE`` long, renewed
   by every later transition that keeps them) or gave back.

The state written is stamped with the server's clock (``timestamp``), so a run's history and its
computed times (run time, end time) never depend on a client's clock. A written state keeps the id of
the proposal it came from, which makes a proposal idempotent: sending it again (a retry after a lost
answer) finds its row and is answered with it, writing nothing.

``force`` writes the proposal without the rules (an operator's repair); the run facts are still
computed, and slots are taken (even beyond the limit) or given back so that they match the new state.

On PostgreSQL, runs without concurrency limits skip the transaction: a create is one statement and a
transition a read plus one compare-and-set write (see "without a transaction" below). The rules, the
answers and what is stored are the same; only the number of round trips differs.
"""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from headrace.retries import RetryPolicy
from headrace.schemas.base import Page, utcnow
from headrace.schemas.runs import (
    FlowRun,
    FlowRunCreate,
    FlowRunFilter,
    FlowRunSort,
    OrchestrationResult,
    OrchestrationStatus,
    SetStateRequest,
)
from headrace.schemas.states import State, StateDetails, StateType
from headrace.server.db import Database, models
from headrace.server.db.types import json_contains_all
from headrace.server.errors import Problem
from headrace.server.operations.flow_run_statements import (
    FLOW_BY_NAME,
    INSERT_STATE,
    LOCK_RUN,
    MOVE_RUN,
    MOVE_RUN_SCHEDULED,
    READ_FOR_TRANSITION,
    STATES_BY_ID,
    UPDATE_RUN,
    UPDATE_RUN_SCHEDULED,
    create_run,
    insert_run,
)
from headrace.server.operations.flows import ensure_flow, release_slots_of_runs
from headrace.server.operations.pages import fetch_page
from headrace.server.operations.recent_runs import RunSnapshot, recent_runs
from headrace.server.operations.states import state_from_row, state_row_values
from headrace.server.orchestration import (
    FLOW_RUN_POLICY,
    Decision,
    DecisionStatus,
    InMemoryConcurrencySlots,
    RunFacts,
    TransitionContext,
    holds_concurrency_slot,
    next_run_facts,
    orchestrate,
)

__all__ = [
    "SLOT_LEASE",
    "create_flow_run",
    "delete_flow_run",
    "filter_flow_runs",
    "flow_run_not_found",
    "read_flow_run",
    "read_flow_run_states",
    "set_flow_run_state",
]

SLOT_LEASE = timedelta(hours=24)
"""How long the concurrency slots a flow run takes are leased for. Every transition that keeps them
renews the lease; crash detection (heartbeats) is what frees the slots of a run whose process died."""


def flow_run_not_found(flow_run_id: UUID) -> Problem:
    return Problem(404, f"flow run {flow_run_id} not found", kind="not-found")


# ------------------------------------------------------------------------------------------ reading


def flow_run_from_row(row: models.FlowRun) -> FlowRun:
    return FlowRun(
        id=row.id,
        flow_id=row.flow_id,
        name=row.name,
        parameters=row.parameters or {},
        tags=list(row.tags or []),
        state=state_from_row(row.state) if row.state is not None else None,
        run_count=row.run_count,
        expected_start_time=row.expected_start_time,
        next_scheduled_start_time=row.next_scheduled_start_time,
        start_time=row.start_time,
        end_time=row.end_time,
        total_run_time=row.total_run_time,
        idempotency_key=row.idempotency_key,
        parent_task_run_id=row.parent_task_run_id,
        concurrency_limits=list(row.concurrency_limits or []),
        max_retries=row.max_retries,
        retry_delay_seconds=row.retry_delay_seconds,
        retry_jitter_factor=row.retry_jitter_factor,
        created=row.created,
        updated=row.updated,
    )


async def read_flow_run(database: Database, flow_run_id: UUID) -> FlowRun:
    async with database.read() as session:
        row = await session.get(models.FlowRun, flow_run_id, options=[joinedload(models.FlowRun.state)])
        if row is None:
            raise flow_run_not_found(flow_run_id)
        return flow_run_from_row(row)


async def read_flow_run_states(database: Database, flow_run_id: UUID) -> list[State]:
    """The run's state history, oldest first; 404 if there is no such run."""
    async with database.read() as session:
        found = await session.scalar(sa.select(models.FlowRun.id).where(models.FlowRun.id == flow_run_id))
        if found is None:
            raise flow_run_not_found(flow_run_id)
        rows = await session.scalars(
            sa.select(models.FlowRunState)
            .where(models.FlowRunState.flow_run_id == flow_run_id)
            .order_by(models.FlowRunState.timestamp, models.FlowRunState.id)
        )
        return [state_from_row(row) for row in rows]


_SORTS: dict[FlowRunSort, list[Any]] = {
    FlowRunSort.CREATED_DESC: [models.FlowRun.created.desc(), models.FlowRun.id.desc()],
    FlowRunSort.CREATED_ASC: [models.FlowRun.created.asc(), models.FlowRun.id.asc()],
    FlowRunSort.EXPECTED_START_TIME_DESC: [
        models.FlowRun.expected_start_time.desc().nulls_last(),
        models.FlowRun.id.desc(),
    ],
    FlowRunSort.EXPECTED_START_TIME_ASC: [
        models.FlowRun.expected_start_time.asc().nulls_last(),
        models.FlowRun.id.asc(),
    ],
    FlowRunSort.NAME_ASC: [models.FlowRun.name.asc(), models.FlowRun.id.asc()],
    FlowRunSort.NAME_DESC: [models.FlowRun.name.desc(), models.FlowRun.id.desc()],
}


def _filtered(query: FlowRunFilter) -> sa.Select[Any]:
    run = models.FlowRun
    statement = sa.select(run)
    if query.ids:
        statement = statement.where(run.id.in_(query.ids))
    if query.flow_ids:
        statement = statement.where(run.flow_id.in_(query.flow_ids))
    if query.flow_names:
        statement = statement.where(
            run.flow_id.in_(sa.select(models.Flow.id).where(models.Flow.name.in_(query.flow_names)))
        )
    if query.state_types:
        statement = statement.where(run.state_type.in_(query.state_types))
    if query.state_names:
        statement = statement.where(run.state_name.in_(query.state_names))
    if query.tags_all:
        statement = statement.where(json_contains_all(run.tags.expression, query.tags_all))
    if query.name_like:
        statement = statement.where(run.name.icontains(query.name_like, autoescape=True))
    if query.parent_task_run_ids:
        statement = statement.where(run.parent_task_run_id.in_(query.parent_task_run_ids))
    if query.expected_start_time_after is not None:
        statement = statement.where(run.expected_start_time >= query.expected_start_time_after)
    if query.expected_start_time_before is not None:
        statement = statement.where(run.expected_start_time <= query.expected_start_time_before)
    return statement


async def filter_flow_runs(database: Database, query: FlowRunFilter) -> Page[FlowRun]:
    """One page of the runs matching ``query``, in its sort order (ties broken by id, so pages are stable)."""
    async with database.read() as session:
        rows, total = await fetch_page(
            session, _filtered(query), _SORTS[query.sort], limit=query.limit, offset=query.offset
        )
        return Page[FlowRun](
            items=[flow_run_from_row(row) for row in rows], total=total, limit=query.limit, offset=query.offset
        )


# ------------------------------------------------------------------------------ concurrency slots


@dataclass
class _Slots:
    """The run's concurrency limits, locked, as the rules see them, and how to write changes back."""

    holder: str
    limit_ids: dict[str, UUID]
    view: InMemoryConcurrencySlots
    held_before: set[str] = field(default_factory=set)

    def holds(self, name: str) -> bool:
        return self.holder in self.view.holders.get(name, set())

    def force(self, names: tuple[str, ...], new: State, current: State | None) -> None:
        """Make the slots match a forced state: take them (ignoring the limit) or give them back."""
        if holds_concurrency_slot(new) and not holds_concurrency_slot(current):
            for name in names:
                if name in self.limit_ids:
                    self.view.holders.setdefault(name, set()).add(self.holder)
        elif holds_concurrency_slot(current) and not holds_concurrency_slot(new):
            self.view.release(names, self.holder)

    async def write_back(self, session: AsyncSession, now: datetime) -> None:
        slot = models.ConcurrencySlot
        taken = [name for name in self.limit_ids if self.holds(name) and name not in self.held_before]
        kept = [self.limit_ids[name] for name in self.limit_ids if self.holds(name) and name in self.held_before]
        given_back = [self.limit_ids[name] for name in self.limit_ids if not self.holds(name)]
        expires = now + SLOT_LEASE
        if given_back:
            await session.execute(
                sa.delete(slot).where(slot.holder == self.holder, slot.limit_id.in_(given_back)),
                execution_options={"synchronize_session": False},
            )
        if kept:
            await session.execute(
                sa.update(slot).where(slot.holder == self.holder, slot.limit_id.in_(kept)).values(expires_at=expires),
                execution_options={"synchronize_session": False},
            )
        if taken:
            lease_id = uuid.uuid4()
            session.add_all(
                slot(
                    limit_id=self.limit_ids[name],
                    lease_id=lease_id,
                    holder=self.holder,
                    expires_at=expires,
                    created=now,
                )
                for name in taken
            )


async def _lock_slots(session: AsyncSession, names: tuple[str, ...], holder: str, now: datetime) -> _Slots | None:
    """Lock the named limits' rows and load their unexpired slots; ``None`` when the run names no limit."""
    if not names:
        return None
    limits = (
        await session.execute(
            sa.select(
                models.ConcurrencyLimit.id,
                models.ConcurrencyLimit.name,
                models.ConcurrencyLimit.limit,
                models.ConcurrencyLimit.active,
            )
            .where(models.ConcurrencyLimit.name.in_(names))
            .order_by(models.ConcurrencyLimit.name)
            .with_for_update()
        )
    ).all()
    limit_ids = {row.name: row.id for row in limits}
    names_by_id = {row.id: row.name for row in limits}
    holders: dict[str, set[str]] = {name: set() for name in limit_ids}
    held_before: set[str] = set()
    if limit_ids:
        slots = await session.execute(
            sa.select(models.ConcurrencySlot.id, models.ConcurrencySlot.limit_id, models.ConcurrencySlot.holder).where(
                models.ConcurrencySlot.limit_id.in_(list(names_by_id)), models.ConcurrencySlot.expires_at > now
            )
        )
        for slot_id, limit_id, slot_holder in slots:
            name = names_by_id[limit_id]
            if slot_holder == holder:
                holders[name].add(holder)
                held_before.add(name)
            else:
                # Every other slot counts on its own, even when one holder took several.
                holders[name].add(f"{slot_holder}\x00{slot_id}")
    # An inactive limit records slots but refuses none (as the concurrency-limits API does).
    view = InMemoryConcurrencySlots({row.name: row.limit if row.active else sys.maxsize for row in limits}, holders)
    return _Slots(holder=holder, limit_ids=limit_ids, view=view, held_before=held_before)


# ---------------------------------------------------------------------------------------- writing


def _run_facts(row: Any) -> RunFacts:
    """The run facts from the run's row (an ORM object or a Core row with the same column names)."""
    return RunFacts(
        run_count=row.run_count,
        start_time=row.start_time,
        end_time=row.end_time,
        total_run_time=row.total_run_time,
        next_scheduled_start_time=row.next_scheduled_start_time,
        pause_keys=frozenset(row.pause_keys or ()),
    )


def _retry_policy(max_retries: int, delay: float | list[float], jitter: float | None) -> RetryPolicy:
    return RetryPolicy(retries=max_retries, retry_delay_seconds=delay, retry_jitter_factor=jitter)


def _for_run(state: State, flow_run_id: UUID) -> State:
    if state.state_details.flow_run_id == flow_run_id:
        return state
    return state.model_copy(
        update={"state_details": state.state_details.model_copy(update={"flow_run_id": flow_run_id})}
    )


def _written_state(decision: Decision, ctx: TransitionContext, now: datetime) -> State:
    """The state a persisting decision writes: stamped with the server clock; an accepted proposal keeps its id."""
    assert decision.state is not None
    update: dict[str, Any] = {"timestamp": now}
    if decision.status is DecisionStatus.ACCEPT and ctx.initial_proposed is not None:
        update["id"] = ctx.initial_proposed.id
    return decision.state.model_copy(update=update)


def _forced(ctx: TransitionContext) -> Decision:
    state = ctx.proposed
    if state.type is StateType.SCHEDULED and state.state_details.scheduled_time is None:
        state = state.model_copy(
            update={"state_details": state.state_details.model_copy(update={"scheduled_time": ctx.now})}
        )
    return Decision(
        DecisionStatus.ACCEPT,
        state,
        reason="Forced: the orchestration rules were not consulted.",
        persist=True,
        run=next_run_facts(ctx.current, state, ctx.run, ctx.now),
    )


def _result(decision: Decision, state: State | None) -> OrchestrationResult:
    return OrchestrationResult(
        status=OrchestrationStatus(decision.status.value),
        state=state,
        reason=decision.reason,
        retry_after=decision.retry_after,
        rule=decision.rule,
    )


def _run_values(state: State, facts: RunFacts) -> dict[str, Any]:
    """The run columns a written state sets."""
    return {
        "state_id": state.id,
        "state_type": state.type,
        "state_name": state.name,
        "state_timestamp": state.timestamp,
        "run_count": facts.run_count,
        "start_time": facts.start_time,
        "end_time": facts.end_time,
        "total_run_time": facts.total_run_time,
        "next_scheduled_start_time": facts.next_scheduled_start_time,
        "pause_keys": sorted(facts.pause_keys),
    }


async def _insert_state(session: AsyncSession, flow_run_id: UUID, state: State) -> None:
    values = state_row_values(state)
    values["flow_run_id"] = flow_run_id
    await INSERT_STATE.run(session, values)


_ADJECTIVES = (
    "amber", "ancient", "bold", "brave", "bright", "calm", "clever", "cosmic", "crimson", "curious", "daring",
    "dapper", "eager", "electric", "emerald", "fancy", "fearless", "gentle", "gilded", "golden", "grand",
    "happy", "hidden", "honest", "humble", "icy", "jolly", "keen", "lively", "lucky", "mellow", "misty",
    "nimble", "noble", "olive", "patient", "placid", "proud", "quick", "quiet", "rapid", "rustic", "scarlet",
    "serene", "silver", "steady", "swift", "tidy", "vivid", "witty",
)  # fmt: skip
_ANIMALS = (
    "albatross", "badger", "beaver", "bison", "cheetah", "condor", "coyote", "crane", "dolphin", "eagle",
    "falcon", "ferret", "finch", "fox", "gazelle", "gecko", "heron", "ibex", "jackal", "jaguar", "kestrel",
    "koala", "lemur", "lynx", "marmot", "mink", "moose", "narwhal", "ocelot", "otter", "owl", "panda",
    "panther", "pelican", "puffin", "quail", "raven", "salmon", "seal", "sparrow", "stoat", "swan", "tapir",
    "tiger", "toucan", "trout", "viper", "walrus", "weasel", "wolf",
)  # fmt: skip


def generated_name(flow_run_id: UUID) -> str:
    """A readable run name derived from the run's id (so a replayed create names the run the same)."""
    value = flow_run_id.int
    return f"{_ADJECTIVES[value % len(_ADJECTIVES)]}-{_ANIMALS[(value >> 16) % len(_ANIMALS)]}"


async def _existing_run(session: AsyncSession, data: FlowRunCreate, flow_id: UUID | None) -> models.FlowRun | None:
    row = await session.get(models.FlowRun, data.id, options=[joinedload(models.FlowRun.state)])
    if row is not None or flow_id is None or data.idempotency_key is None:
        return row
    return await session.scalar(
        sa.select(models.FlowRun)
        .options(joinedload(models.FlowRun.state))
        .where(models.FlowRun.flow_id == flow_id, models.FlowRun.idempotency_key == data.idempotency_key)
    )


async def _existing_or_refusal(session: AsyncSession, data: FlowRunCreate, flow_id: UUID | None) -> FlowRun | None:
    """After an insert that inserted nothing (or a refused initial state): the run that exists, if any.

    Looks in the order the API promises: a run with this id wins over an unknown flow (a replay), an
    unknown flow is a 422 problem, then a run with the idempotency key for the flow.
    """
    existing = await _existing_run(session, data, None)
    if existing is not None:
        return flow_run_from_row(existing)
    if flow_id is None:
        return None
    if await session.get(models.Flow, flow_id) is None:
        raise Problem(422, f"flow {flow_id} does not exist; create it first", kind="unknown-flow")
    existing = await _existing_run(session, data, flow_id)
    return flow_run_from_row(existing) if existing is not None else None


def _initial_state(data: FlowRunCreate) -> State:
    """The state a new run proposes: the one given, else Scheduled now."""
    return _for_run(data.state or State(type=StateType.SCHEDULED, state_details=StateDetails()), data.id)


def _creation_context(
    data: FlowRunCreate, proposed: State, now: datetime, slots: _Slots | None = None
) -> TransitionContext:
    """What the rules see of a new run's initial state (no current state)."""
    return TransitionContext(
        current=None,
        proposed=proposed,
        now=now,
        retry_policy=_retry_policy(data.max_retries, data.retry_delay_seconds, data.retry_jitter_factor),
        concurrency_limit_names=tuple(dict.fromkeys(data.concurrency_limits)),
        concurrency_slots=slots.view if slots is not None else None,
        holder=str(data.id),
    )


def _new_run_values(data: FlowRunCreate, flow_id: UUID, state: State, facts: RunFacts, now: datetime) -> dict[str, Any]:
    """The columns of a new run's row."""
    return {
        "id": data.id,
        "flow_id": flow_id,
        "name": data.name or generated_name(data.id),
        "parameters": data.parameters,
        "tags": data.tags,
        "idempotency_key": data.idempotency_key,
        "parent_task_run_id": data.parent_task_run_id,
        "concurrency_limits": list(dict.fromkeys(data.concurrency_limits)),
        "max_retries": data.max_retries,
        "retry_delay_seconds": data.retry_delay_seconds,
        "retry_jitter_factor": data.retry_jitter_factor,
        "expected_start_time": state.state_details.scheduled_time if state.type is StateType.SCHEDULED else now,
        "created": now,
        "updated": now,
        **_run_values(state, facts),
    }


def _new_run(values: dict[str, Any], state: State) -> FlowRun:
    """The answer for a run just written with ``values``."""
    return FlowRun(**{name: values[name] for name in FlowRun.model_fields if name != "state"}, state=state)


async def create_flow_run(database: Database, data: FlowRunCreate) -> tuple[FlowRun, bool]:
    """Create a flow run, and say whether it was created now (``False``: it existed, and is returned as is).

    The initial state (Scheduled now, unless given) passes through the orchestration rules like any
    other, so a run created Pending or Running takes its concurrency slots, and a run created with no
    free slot starts out as AwaitingConcurrencySlot. A refused initial state is a 422 problem.

    The common case is two statements: the run's insert (which also checks that the flow exists and
    that no run has the id or the idempotency key, see :func:`insert_run`) and its state's. Only when
    the insert inserts nothing are the existing run and the flow looked up, to answer. On PostgreSQL a
    run without concurrency limits is first tried in one statement (:func:`_create_unlocked`).
    """
    if database.supports_autocommit and not data.concurrency_limits:
        created = await _create_unlocked(database, data)
        if created is not None:
            return created, True
    async with database.write() as session:
        if data.flow_id is not None:
            flow_id = data.flow_id
        else:
            assert data.flow_name is not None  # the schema requires one of the two
            flow_row = await FLOW_BY_NAME.first(session, {"name": data.flow_name})
            found = flow_row.id if flow_row is not None else None
            if found is None:
                # A new flow: a replay of this create must still not create it, so look for the run first.
                existing = await _existing_run(session, data, None)
                if existing is not None:
                    return flow_run_from_row(existing), False
                found, _ = await ensure_flow(database, session, data.flow_name)
            flow_id = found

        now = utcnow()
        proposed = _initial_state(data)
        slots = await _lock_slots(session, tuple(dict.fromkeys(data.concurrency_limits)), str(data.id), now)
        ctx = _creation_context(data, proposed, now, slots)
        decision = orchestrate(ctx, FLOW_RUN_POLICY)
        if not decision.persist or decision.run is None:
            # A run that exists is answered as it is, whatever its initial state would be now.
            existing_run = await _existing_or_refusal(session, data, flow_id)
            if existing_run is not None:
                return existing_run, False
            raise Problem(
                422,
                f"the initial state {proposed.name} was refused: {decision.reason}",
                kind="state-rejected",
                rule=decision.rule,
            )
        state = _written_state(decision, ctx, now)
        values = _new_run_values(data, flow_id, state, decision.run, now)
        inserted = await insert_run(database).first(session, values)
        if inserted is None:
            # The run exists (by id or idempotency key; on PostgreSQL perhaps just committed by a concurrent
            # request), or the flow does not.
            existing_run = await _existing_or_refusal(session, data, flow_id)
            assert existing_run is not None, "a flow run insert conflicted but the run is not found"
            return existing_run, False
        await _insert_state(session, data.id, state)
        if slots is not None:
            await slots.write_back(session, now)
        return _new_run(values, state), True


async def set_flow_run_state(
    database: Database, flow_run_id: UUID, request: SetStateRequest
) -> tuple[OrchestrationResult, bool]:
    """Propose ``request.state`` for the run; the answer, and whether a state was written.

    See the module docstring for the transaction. 404 if there is no such run; 409 if the proposal's
    ``state.id`` is the id of another run's state. On PostgreSQL the proposal is first tried without a
    transaction (:func:`_set_state_unlocked`).
    """
    if database.supports_autocommit:
        answered = await _set_state_unlocked(database, flow_run_id, request)
        if answered is not None:
            return answered
    async with database.write() as session:
        # Lock the run first, alone: FOR NO KEY UPDATE serializes proposals for the run without blocking
        # task-run ingest (which only needs its key to stay). The states are read by a second statement:
        # on PostgreSQL a statement that waited for the lock sees the locked row as the previous holder
        # committed it, but rows joined from other tables as they were before, so a join would hand the
        # rules a stale current state (and let two claimers both win Pending).
        run = await LOCK_RUN.first(session, {"id": flow_run_id})
        if run is None:
            raise flow_run_not_found(flow_run_id)
        wanted = {"proposed": request.state.id, "current": run.state_id or request.state.id}
        states = {row.id: row for row in await STATES_BY_ID.all(session, wanted)}
        applied = states.get(request.state.id)  # the proposal's own row: it was applied before
        if applied is not None:
            return _replayed(run.id, applied), False
        current_row = states.get(run.state_id) if run.state_id is not None else None
        current = state_from_row(current_row) if current_row is not None else None

        now = utcnow()
        names = tuple(run.concurrency_limits or ())
        slots = await _lock_slots(session, names, str(run.id), now)
        ctx = _transition_context(run, current, request, now, slots)
        if request.force:
            decision = _forced(ctx)
            if slots is not None:
                slots.force(names, ctx.proposed, current)
        else:
            decision = orchestrate(ctx, FLOW_RUN_POLICY)
        if not decision.persist or decision.run is None:
            return _result(decision, decision.state), False

        state = _written_state(decision, ctx, now)
        await _insert_state(session, run.id, state)
        values, scheduled = _run_update(run.id, state, decision.run, now)
        await (UPDATE_RUN_SCHEDULED if scheduled else UPDATE_RUN).run(session, values)
        if slots is not None:
            await slots.write_back(session, now)
        return _result(decision, state), True


def _transition_context(
    run: Any, current: State | None, request: SetStateRequest, now: datetime, slots: _Slots | None = None
) -> TransitionContext:
    """What the rules see of a proposal for ``run`` (a row of :data:`LOCK_RUN`'s columns)."""
    return TransitionContext(
        current=current,
        proposed=_for_run(request.state, run.id),
        now=now,
        run=_run_facts(run),
        retry_policy=_retry_policy(run.max_retries, run.retry_delay_seconds, run.retry_jitter_factor),
        concurrency_limit_names=tuple(run.concurrency_limits or ()),
        concurrency_slots=slots.view if slots is not None else None,
        holder=str(run.id),
    )


def _run_update(run_id: UUID, state: State, facts: RunFacts, now: datetime) -> tuple[dict[str, Any], bool]:
    """The values of the run's update for a written state, and whether it is the Scheduled variant (which
    also moves ``expected_start_time``: a run rescheduled before it ever started)."""
    values = _run_values(state, facts)
    values.update(key=run_id, updated=now)
    scheduled = state.type is StateType.SCHEDULED and facts.start_time is None
    if scheduled:
        values["expected_start_time"] = state.state_details.scheduled_time
    return values, scheduled


# ------------------------------------------------------------------- without a transaction (PostgreSQL)
#
# On PostgreSQL the common create and transition need no transaction: each round trip costs CPU on both
# sides, and a locked transition took six (BEGIN, lock, read states, insert, update, COMMIT). Here:
#
# - a create is one statement that inserts the run and its first state (or nothing, when the flow is
#   unknown or the run exists: then the locked path answers, as before);
# - a transition reads the run with its current state in one statement (one snapshot), decides, and writes
#   the state and the run's columns in one compare-and-set statement that applies only if the run's
#   current state is still the one the rules saw. Of two concurrent proposals, the second's write finds
#   another current state (PostgreSQL re-checks the condition on the row the first one committed), writes
#   nothing, and is decided again on the new state: exactly one claimer wins Pending, as with the lock.
#
# Runs with concurrency limits (their slots must be locked with the run), replays of an applied proposal,
# and anything unusual go to the locked path, which answers them exactly as before.

_ATTEMPTS = 5
"""Compare-and-set attempts before a transition under contention waits for the run's lock instead."""


async def _create_unlocked(database: Database, data: FlowRunCreate) -> FlowRun | None:
    """Create a run without concurrency limits in one statement; ``None``: let the locked path do it.

    The run is remembered as written (:mod:`headrace.server.operations.recent_runs`), so that its first
    transition needs no read.
    """
    async with database.autocommit() as connection:
        flow_id = data.flow_id
        if flow_id is None:
            found = await FLOW_BY_NAME.first(connection, {"name": data.flow_name})
            if found is None:
                return None  # a new flow: the locked path creates it (unless the run exists)
            flow_id = found.id
        now = utcnow()
        ctx = _creation_context(data, _initial_state(data), now)
        decision = orchestrate(ctx, FLOW_RUN_POLICY)
        if not decision.persist or decision.run is None:
            return None
        state = _written_state(decision, ctx, now)
        values = _new_run_values(data, flow_id, state, decision.run, now)
        if await create_run().first(connection, {**values, **_prefixed(state)}) is None:
            return None  # the run exists, or the flow does not: the locked path says which
        recent_runs(database).remember(RunSnapshot.inserted(values), state)
        return _new_run(values, state)


async def _set_state_unlocked(
    database: Database, flow_run_id: UUID, request: SetStateRequest
) -> tuple[OrchestrationResult, bool] | None:
    """Decide and write a proposal by compare-and-set; ``None``: let the locked path do it.

    A run this process wrote last is decided on what it wrote, without a read (see
    :mod:`headrace.server.operations.recent_runs`); the write's compare-and-set checks it is still so.
    """
    recent = recent_runs(database)
    remembered = recent.get(flow_run_id)
    current: State | None
    async with database.autocommit() as connection:
        for _ in range(_ATTEMPTS):
            if remembered is not None:
                run, current = remembered
            else:
                row = await READ_FOR_TRANSITION.first(connection, {"id": flow_run_id, "proposed": request.state.id})
                if row is None:
                    raise flow_run_not_found(flow_run_id)
                if row.applied_id is not None or row.concurrency_limits:
                    return None  # a replay (or another run's state id), or slots to lock
                run = RunSnapshot.of(row)
                current = state_from_row(_CurrentState(row)) if row.current_id is not None else None
            now = utcnow()
            ctx = _transition_context(run, current, request, now)
            decision = _forced(ctx) if request.force else orchestrate(ctx, FLOW_RUN_POLICY)
            writes = decision.persist and decision.run is not None
            if remembered is not None and not (writes and decision.status is DecisionStatus.ACCEPT):
                # Only an accepted proposal is written from memory: its state carries the proposal's id, so a
                # replay of an applied one fails the write (and is answered as one). Anything else (an answer
                # that writes nothing, which no write checks; a state the rules write instead) is decided
                # again on a fresh read, which sees replays.
                remembered = None
                recent.forget(flow_run_id)
                continue
            if not writes or decision.run is None:
                return _result(decision, decision.state), False
            state = _written_state(decision, ctx, now)
            values, scheduled = _run_update(run.id, state, decision.run, now)
            values.update(_prefixed(state), expected=run.state_id, expected_created=run.created)
            try:
                moved = await (MOVE_RUN_SCHEDULED if scheduled else MOVE_RUN).first(connection, values)
            except sa.exc.IntegrityError:
                recent.forget(flow_run_id)
                return None  # the proposal's id was written already (a replay, perhaps sent twice at once)
            if moved is not None:
                recent.remember(run.moved(values), state)
                return _result(decision, state), True
            # Another proposal (or another server) moved the run since: decide again on its stored state.
            remembered = None
            recent.forget(flow_run_id)
    return None


def _prefixed(state: State) -> dict[str, Any]:
    """A state row's values under the ``s_`` names the statements use (``flow_run_statements.state_binds``)."""
    return {f"s_{name}": value for name, value in state_row_values(state).items()}


class _CurrentState:
    """The ``current_*`` columns of :data:`READ_FOR_TRANSITION` as a state row."""

    def __init__(self, row: Any) -> None:
        self.id: UUID = row.current_id
        self.type: StateType = row.current_type
        self.name: str = row.current_name
        self.timestamp: Any = row.current_timestamp
        self.message: str | None = row.current_message
        self.state_details: dict[str, Any] = row.current_state_details
        self.data: Any = row.current_data


def _replayed(flow_run_id: UUID, applied: Any) -> OrchestrationResult:
    """The answer to a proposal that was already applied: the state it wrote. 409 if another run's."""
    if applied.flow_run_id != flow_run_id:
        raise Problem(
            409, f"state {applied.id} belongs to another flow run; propose a state with a new id", kind="conflict"
        )
    return OrchestrationResult(
        status=OrchestrationStatus.ACCEPT,
        state=state_from_row(applied),
        reason=f"State {applied.id} was already applied.",
    )


async def delete_flow_run(database: Database, flow_run_id: UUID) -> None:
    """Delete the run with its task runs and histories, and give back the concurrency slots it held."""
    recent_runs(database).forget(flow_run_id)  # not needed for correctness (see recent_runs): memory only
    async with database.write() as session:
        found = await session.scalar(
            sa.select(models.FlowRun.id).where(models.FlowRun.id == flow_run_id).with_for_update()
        )
        if found is None:
            raise flow_run_not_found(flow_run_id)
        await release_slots_of_runs(session, [flow_run_id])
        await session.execute(sa.delete(models.FlowRun).where(models.FlowRun.id == flow_run_id))
