"""Fixtures for the orchestration-rule tests.

``make`` builds states and contexts tersely. ``run_record`` is a small in-memory stand-in for the
database layer: it holds a run's current state and facts, calls ``orchestrate`` with the flow-run policy,
and applies the decision exactly as the API layer is meant to (write ``decision.state`` and
``decision.run`` when ``decision.persist``). No mocks: it is the real policy on real states.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from headrace.retries import RetryPolicy
from headrace.schemas.states import State, StateDetails, StateType
from headrace.server.orchestration import (
    FLOW_RUN_POLICY,
    ConcurrencySlots,
    Decision,
    Rule,
    RunFacts,
    TransitionContext,
    orchestrate,
)

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)


class Make:
    """Terse builders: ``make.state(StateType.RUNNING)``, ``make.ctx(current, proposed, run_count=1)``."""

    now = T0

    def state(self, type_: StateType, name: str = "", *, message: str | None = None, **details: Any) -> State:
        return State(type=type_, name=name, timestamp=self.now, message=message, state_details=StateDetails(**details))

    def ctx(self, current: State | None, proposed: State, *, run_count: int = 0, **kwargs: Any) -> TransitionContext:
        kwargs.setdefault("now", self.now)
        kwargs.setdefault("rng", random.Random(7))
        run = kwargs.pop("run", RunFacts(run_count=run_count))
        return TransitionContext(current=current, proposed=proposed, run=run, **kwargs)

    def decide(self, rule: Rule, current: State | None, proposed: State, **kwargs: Any) -> Decision:
        """One rule on its own, through ``orchestrate`` (so ``decision.rule`` is filled in)."""
        return orchestrate(self.ctx(current, proposed, **kwargs), [rule])


@pytest.fixture
def make() -> Make:
    return Make()


@dataclass
class RunRecord:
    """A flow run as the database would hold it, orchestrated through the full policy."""

    now: datetime = T0
    state: State | None = None
    facts: RunFacts = field(default_factory=RunFacts)
    history: list[State] = field(default_factory=list)
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    has_deployment: bool = False
    concurrency_limit_names: tuple[str, ...] = ()
    concurrency_slots: ConcurrencySlots | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    rng: random.Random = field(default_factory=lambda: random.Random(11))
    policy: tuple[Rule, ...] = FLOW_RUN_POLICY

    def propose(self, type_: StateType, name: str = "", *, message: str | None = None, **details: Any) -> Decision:
        proposed = State(
            type=type_, name=name, timestamp=self.now, message=message, state_details=StateDetails(**details)
        )
        return self.propose_state(proposed)

    def propose_state(self, proposed: State) -> Decision:
        ctx = TransitionContext(
            current=self.state,
            proposed=proposed,
            now=self.now,
            run=self.facts,
            retry_policy=self.retry_policy,
            has_deployment=self.has_deployment,
            concurrency_limit_names=self.concurrency_limit_names,
            concurrency_slots=self.concurrency_slots,
            holder=self.id,
            rng=self.rng,
        )
        decision = orchestrate(ctx, self.policy)
        if decision.persist:
            assert decision.state is not None
            assert decision.run is not None
            # The write path: the state is stamped with the server's clock when it is written.
            self.state = decision.state.model_copy(update={"timestamp": self.now})
            self.facts = decision.run
            self.history.append(self.state)
        return decision

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.history]


@pytest.fixture
def run_record() -> Callable[..., RunRecord]:
    return RunRecord
