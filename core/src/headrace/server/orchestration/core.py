"""The machinery of orchestration: the context a rule reads, the decision it returns, and the loop.

Nothing here touches a database. The API layer loads the run's facts (and locks the run row, and the
concurrency-limit rows it names), builds a :class:`TransitionContext`, calls :func:`orchestrate`, and
applies the :class:`Decision` it gets back: when ``decision.persist`` is true it writes ``decision.state``
as the run's new state and copies ``decision.run`` onto the run record, in the same transaction.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol, runtime_checkable

from headrace.retries import RetryPolicy
from headrace.schemas.states import State, StateType, utcnow

__all__ = [
    "ANY_STATE",
    "ConcurrencySlots",
    "Decision",
    "DecisionStatus",
    "InMemoryConcurrencySlots",
    "Rule",
    "RunFacts",
    "TransitionContext",
    "holds_concurrency_slot",
    "next_run_facts",
    "orchestrate",
]

_RNG = random.Random()
"""The jitter's random numbers, unless a context brings its own (seeding a new one per transition costs ~20 µs)."""

#: Every "from" a rule can name: each state type, and ``None`` for a run that has no state yet.
ANY_STATE: frozenset[StateType | None] = frozenset([None, *StateType])


class DecisionStatus(str, enum.Enum):
    ACCEPT = "ACCEPT"  # the proposal (possibly modified by rules) becomes the run's state
    REJECT = "REJECT"  # the proposal is refused; ``state`` is what the run is in now
    WAIT = "WAIT"  # not yet: propose again after ``retry_after`` seconds; nothing changed
    ABORT = "ABORT"  # the proposal can never be accepted; the caller should stop proposing it


@runtime_checkable
class ConcurrencySlots(Protocol):
    """Concurrency-limit slots, as the rules see them.

    ``acquire`` takes one slot in *every* named limit for ``holder`` (the flow run id) or none at all, and
    says whether it did. It must be idempotent: a holder that already holds its slots gets ``True`` without
    taking more. ``release`` gives back whatever ``holder`` holds in the named limits (a no-op if nothing).

    The database layer implements this over the limit rows it has locked for the transition, so the
    rules stay synchronous and pure; :class:`InMemoryConcurrencySlots` is the reference implementation.
    """

    def acquire(self, names: Sequence[str], holder: str) -> bool: ...

    def release(self, names: Sequence[str], holder: str) -> None: ...


class InMemoryConcurrencySlots:
    """Concurrency limits held in memory: ``limits`` maps a limit name to its number of slots.

    A name without a limit is unlimited. Useful as is for the embedded server's tests, and as the adapter
    a database layer fills from locked rows and writes back from ``holders``.
    """

    def __init__(self, limits: dict[str, int], holders: dict[str, set[str]] | None = None) -> None:
        self.limits = dict(limits)
        self.holders: dict[str, set[str]] = {name: set(h) for name, h in (holders or {}).items()}

    def acquire(self, names: Sequence[str], holder: str) -> bool:
        limited = [name for name in names if name in self.limits]
        for name in limited:
            held = self.holders.get(name, set())
            if holder not in held and len(held) >= self.limits[name]:
                return False
        for name in limited:
            self.holders.setdefault(name, set()).add(holder)
        return True

    def release(self, names: Sequence[str], holder: str) -> None:
        for name in names:
            self.holders.get(name, set()).discard(holder)


@dataclass(frozen=True)
class RunFacts:
    """The run-record fields orchestration maintains. In the context: before; in a decision: after.

    ``total_run_time`` is in seconds and counts only time spent Running (not Paused). Times come from
    the context's ``now`` (the server clock), never from the client's state timestamps.
    """

    run_count: int = 0
    start_time: datetime | None = None
    end_time: datetime | None = None
    total_run_time: float = 0.0
    next_scheduled_start_time: datetime | None = None
    pause_keys: frozenset[str] = frozenset()


@dataclass
class TransitionContext:
    """Everything a rule may consult about one proposed transition of one flow run.

    ``proposed`` is replaced as rules modify the proposal; ``initial_proposed`` keeps what the caller sent.
    ``scheduled_time`` overrides the time taken from the current Scheduled state, when the run record
    knows better. ``holder`` names the run to the concurrency slots (its id).
    """

    current: State | None
    proposed: State
    now: datetime = field(default_factory=utcnow)
    run: RunFacts = field(default_factory=RunFacts)
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    scheduled_time: datetime | None = None
    has_deployment: bool = False
    pause_timeout_seconds: float = 3600.0
    concurrency_limit_names: tuple[str, ...] = ()
    concurrency_slots: ConcurrencySlots | None = None
    holder: str = ""
    concurrency_retry_seconds: float = 30.0
    rng: random.Random = field(default=_RNG)
    initial_proposed: State | None = None

    def __post_init__(self) -> None:
        if self.initial_proposed is None:
            self.initial_proposed = self.proposed

    @property
    def current_type(self) -> StateType | None:
        return self.current.type if self.current is not None else None

    @property
    def effective_scheduled_time(self) -> datetime | None:
        """When the run may start: the override, else the current Scheduled state's time."""
        if self.scheduled_time is not None:
            return self.scheduled_time
        if self.current is not None and self.current.type is StateType.SCHEDULED:
            return self.current.state_details.scheduled_time
        return None


@dataclass(frozen=True)
class Decision:
    """The answer to a proposal.

    ``state`` is the state to answer the caller with. ``persist`` says whether it is *new* and must be
    written as the run's state (then ``run`` holds the run-record fields to write with it). A REJECT may
    persist a state of its own (a resume after the pause timed out fails the run); ACCEPT without
    ``persist`` is a replayed transition that was already applied. ``rule`` names the rule that decided
    (``None`` when every rule accepted) and ``modified_by`` the rules that changed the proposal on the way.
    """

    status: DecisionStatus
    state: State | None
    reason: str | None = None
    retry_after: float | None = None
    persist: bool = False
    rule: str | None = None
    modified_by: tuple[str, ...] = ()
    run: RunFacts | None = None

    @property
    def accepted(self) -> bool:
        return self.status is DecisionStatus.ACCEPT

    # Constructors for rules. Each takes the context so the "state to answer with" is always right.
    @classmethod
    def accept(cls, ctx: TransitionContext, state: State | None = None) -> Decision:
        """Let the proposal through; with ``state``, replace the proposal by it."""
        return cls(DecisionStatus.ACCEPT, state if state is not None else ctx.proposed, persist=True)

    @classmethod
    def already_applied(cls, ctx: TransitionContext, reason: str) -> Decision:
        return cls(DecisionStatus.ACCEPT, ctx.current, reason=reason, persist=False)

    @classmethod
    def reject(
        cls, ctx: TransitionContext, reason: str, state: State | None = None, retry_after: float | None = None
    ) -> Decision:
        """Refuse; with ``state``, that state is written instead (and answered), else the run is unchanged."""
        if state is None:
            return cls(DecisionStatus.REJECT, ctx.current, reason=reason, retry_after=retry_after)
        return cls(DecisionStatus.REJECT, state, reason=reason, retry_after=retry_after, persist=True)

    @classmethod
    def wait(cls, ctx: TransitionContext, reason: str, retry_after: float) -> Decision:
        return cls(DecisionStatus.WAIT, ctx.current, reason=reason, retry_after=max(0.0, retry_after))

    @classmethod
    def abort(cls, ctx: TransitionContext, reason: str) -> Decision:
        return cls(DecisionStatus.ABORT, ctx.current, reason=reason)


class Rule:
    """One named orchestration rule. Subclasses set ``from_types``/``to_types`` and implement ``apply``.

    A rule is consulted only for transitions it applies to (current type in ``from_types``, ``None``
    meaning "no state yet"; proposed type in ``to_types``), and answers with a :class:`Decision`. It may
    modify the proposal by returning ``Decision.accept(ctx, new_state)``; later rules see the new one.
    """

    from_types: frozenset[StateType | None] = ANY_STATE
    to_types: frozenset[StateType] = frozenset(StateType)

    @property
    def name(self) -> str:
        return type(self).__name__

    def applies_to(self, ctx: TransitionContext) -> bool:
        return ctx.current_type in self.from_types and ctx.proposed.type in self.to_types

    def apply(self, ctx: TransitionContext) -> Decision:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<rule {self.name}>"


def holds_concurrency_slot(state: State | None) -> bool:
    """Whether a run in ``state`` holds its concurrency slots: from its claim (Pending) until it stops.

    A run Paused in place keeps its slots (its process is alive and waiting); a suspended run (Paused
    with ``pause_reschedule``) gives them back, and takes them again when it is claimed once more.
    """
    if state is None:
        return False
    if state.type is StateType.PAUSED:
        return not state.state_details.pause_reschedule
    return state.type in {StateType.PENDING, StateType.RUNNING, StateType.CANCELLING}


def next_run_facts(current: State | None, new: State, before: RunFacts, now: datetime) -> RunFacts:
    """The run-record fields after ``current`` → ``new`` at ``now``: apply these with the new state.

    * entering Running increments ``run_count`` (not when resuming in place from Paused: that is the same
      attempt) and sets ``start_time`` the first time;
    * leaving Running adds the time spent since ``current.timestamp`` to ``total_run_time``;
    * entering a terminal state sets ``end_time``; any other state clears it;
    * ``next_scheduled_start_time`` is the new Scheduled state's time, ``None`` otherwise;
    * entering Paused with a ``pause_key`` records the key (a pause fires once);
    * a rerun (a Scheduled proposal with ``rerun`` from a terminal state) starts the counters afresh.
    """
    current_type = current.type if current is not None else None
    run_count, start_time, total, pause_keys = (
        before.run_count,
        before.start_time,
        before.total_run_time,
        before.pause_keys,
    )
    if new.type is StateType.SCHEDULED and new.state_details.rerun and current is not None and current.is_terminal:
        run_count, start_time, total, pause_keys = 0, None, 0.0, frozenset()
    if current is not None and current_type is StateType.RUNNING and new.type is not StateType.RUNNING:
        total += max(0.0, (now - current.timestamp).total_seconds())
    if new.type is StateType.RUNNING and current_type not in {StateType.RUNNING, StateType.PAUSED}:
        run_count += 1
    if new.type is StateType.RUNNING and start_time is None:
        start_time = now
    if new.type is StateType.PAUSED and new.state_details.pause_key:
        pause_keys = pause_keys | {new.state_details.pause_key}
    return RunFacts(
        run_count=run_count,
        start_time=start_time,
        end_time=now if new.is_terminal else None,
        total_run_time=total,
        next_scheduled_start_time=new.state_details.scheduled_time if new.type is StateType.SCHEDULED else None,
        pause_keys=pause_keys,
    )


def _settle(ctx: TransitionContext, decision: Decision) -> Decision:
    """Attach the run bookkeeping to a decision that writes a state, and give back slots it no longer holds."""
    if not decision.persist or decision.state is None:
        return decision
    new = decision.state
    if (
        ctx.concurrency_slots is not None
        and ctx.concurrency_limit_names
        and holds_concurrency_slot(ctx.current)
        and not holds_concurrency_slot(new)
    ):
        ctx.concurrency_slots.release(ctx.concurrency_limit_names, ctx.holder)
    return replace(decision, run=next_run_facts(ctx.current, new, ctx.run, ctx.now))


def orchestrate(ctx: TransitionContext, policy: Iterable[Rule]) -> Decision:
    """Apply ``policy``'s rules in order to ``ctx`` and return the decision.

    The first rule that does not accept decides (REJECT, WAIT, ABORT, or an already-applied replay);
    rules that accept with a modified state replace ``ctx.proposed`` for the rules after them. When
    every rule accepts, the (possibly modified) proposal is accepted. A decision that writes a state
    carries the run bookkeeping (:func:`next_run_facts`), and slots the run stops holding are released.
    """
    modified_by: list[str] = []
    for rule in policy:
        if not rule.applies_to(ctx):
            continue
        decision = rule.apply(ctx)
        if decision.status is DecisionStatus.ACCEPT and decision.persist:
            if decision.state is not None and decision.state is not ctx.proposed:
                ctx.proposed = decision.state
                modified_by.append(rule.name)
            continue
        return _settle(ctx, replace(decision, rule=rule.name, modified_by=tuple(modified_by)))
    return _settle(ctx, Decision(DecisionStatus.ACCEPT, ctx.proposed, persist=True, modified_by=tuple(modified_by)))
