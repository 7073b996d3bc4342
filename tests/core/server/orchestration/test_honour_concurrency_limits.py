"""HonourConcurrencyLimits (and InMemoryConcurrencySlots): slots taken on claim, given back on leaving."""

from __future__ import annotations

from datetime import timedelta

import pytest

from headrace.schemas.states import StateType
from headrace.server.orchestration import (
    ConcurrencySlots,
    DecisionStatus,
    HonourConcurrencyLimits,
    InMemoryConcurrencySlots,
    holds_concurrency_slot,
)

RULE = HonourConcurrencyLimits()


class TestInMemoryConcurrencySlots:
    def test_it_satisfies_the_protocol(self):
        assert isinstance(InMemoryConcurrencySlots({}), ConcurrencySlots)

    def test_acquire_up_to_the_limit(self):
        slots = InMemoryConcurrencySlots({"etl": 2})
        assert slots.acquire(["etl"], "a")
        assert slots.acquire(["etl"], "b")
        assert not slots.acquire(["etl"], "c")
        assert slots.holders["etl"] == {"a", "b"}

    def test_acquire_is_idempotent_per_holder(self):
        slots = InMemoryConcurrencySlots({"etl": 1})
        assert slots.acquire(["etl"], "a")
        assert slots.acquire(["etl"], "a")
        assert slots.holders["etl"] == {"a"}

    def test_acquire_is_all_or_nothing(self):
        slots = InMemoryConcurrencySlots({"etl": 1, "db": 1}, holders={"db": {"x"}})
        assert not slots.acquire(["etl", "db"], "a")
        assert slots.holders.get("etl", set()) == set()

    def test_release_frees_a_slot(self):
        slots = InMemoryConcurrencySlots({"etl": 1})
        slots.acquire(["etl"], "a")
        slots.release(["etl"], "a")
        assert slots.acquire(["etl"], "b")

    def test_a_name_without_a_limit_is_unlimited(self):
        slots = InMemoryConcurrencySlots({})
        assert all(slots.acquire(["free"], str(i)) for i in range(100))


class TestHonourConcurrencyLimits:
    def test_a_claim_takes_a_slot(self, make):
        slots = InMemoryConcurrencySlots({"etl": 1})
        decision = make.decide(
            RULE,
            make.state(StateType.SCHEDULED),
            make.state(StateType.PENDING),
            concurrency_limit_names=("etl",),
            concurrency_slots=slots,
            holder="run-1",
        )
        assert decision.status is DecisionStatus.ACCEPT
        assert slots.holders["etl"] == {"run-1"}

    def test_no_free_slot_rejects_into_awaiting_concurrency_slot(self, make):
        slots = InMemoryConcurrencySlots({"etl": 1}, holders={"etl": {"other"}})
        decision = make.decide(
            RULE,
            make.state(StateType.SCHEDULED),
            make.state(StateType.PENDING),
            concurrency_limit_names=("etl",),
            concurrency_slots=slots,
            holder="run-1",
            concurrency_retry_seconds=15,
        )
        assert decision.status is DecisionStatus.REJECT
        assert decision.persist
        assert decision.retry_after == 15
        state = decision.state
        assert state is not None
        assert (state.type, state.name) == (StateType.SCHEDULED, "AwaitingConcurrencySlot")
        assert state.state_details.scheduled_time == make.now + timedelta(seconds=15)
        assert decision.reason == (
            "No free slot in concurrency limit etl: the run waits as AwaitingConcurrencySlot "
            "until 2030-01-01T12:00:15+00:00."
        )
        assert state.message == decision.reason
        assert slots.holders["etl"] == {"other"}

    def test_a_run_that_holds_its_slots_does_not_acquire_again(self, make):
        # Full limit, but the run already holds a slot (it is Pending): Running must not be refused.
        slots = InMemoryConcurrencySlots({"etl": 1}, holders={"etl": {"run-1"}})
        decision = make.decide(
            RULE,
            make.state(StateType.PENDING),
            make.state(StateType.RUNNING),
            concurrency_limit_names=("etl",),
            concurrency_slots=slots,
            holder="run-1",
        )
        assert decision.status is DecisionStatus.ACCEPT

    def test_a_new_run_started_directly_takes_a_slot(self, make):
        slots = InMemoryConcurrencySlots({"etl": 1})
        decision = make.decide(
            RULE,
            None,
            make.state(StateType.RUNNING),
            concurrency_limit_names=("etl",),
            concurrency_slots=slots,
            holder="run-1",
        )
        assert decision.status is DecisionStatus.ACCEPT
        assert slots.holders["etl"] == {"run-1"}

    def test_without_limits_the_rule_accepts(self, make):
        decision = make.decide(RULE, make.state(StateType.SCHEDULED), make.state(StateType.PENDING))
        assert decision.status is DecisionStatus.ACCEPT

    def test_a_holder_is_required(self, make):
        with pytest.raises(ValueError, match="holder"):
            make.decide(
                RULE,
                make.state(StateType.SCHEDULED),
                make.state(StateType.PENDING),
                concurrency_limit_names=("etl",),
                concurrency_slots=InMemoryConcurrencySlots({"etl": 1}),
            )

    @pytest.mark.parametrize(
        "ending",
        [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED],
    )
    def test_leaving_for_a_terminal_state_releases_the_slot(self, make, ending):
        slots = InMemoryConcurrencySlots({"etl": 1}, holders={"etl": {"run-1"}})
        decision = make.decide(
            RULE,
            make.state(StateType.RUNNING),
            make.state(ending),
            concurrency_limit_names=("etl",),
            concurrency_slots=slots,
            holder="run-1",
        )
        assert decision.persist
        assert slots.holders["etl"] == set()

    def test_a_rejected_proposal_keeps_the_slot(self, make):
        from headrace.server.orchestration import PreventIllegalTransitions

        slots = InMemoryConcurrencySlots({"etl": 1}, holders={"etl": {"run-1"}})
        decision = make.decide(
            PreventIllegalTransitions(),
            make.state(StateType.RUNNING),
            make.state(StateType.PENDING),
            concurrency_limit_names=("etl",),
            concurrency_slots=slots,
            holder="run-1",
        )
        assert decision.status is DecisionStatus.REJECT
        assert slots.holders["etl"] == {"run-1"}


def test_which_states_hold_slots(make):
    assert not holds_concurrency_slot(None)
    held = {t for t in StateType if holds_concurrency_slot(make.state(t))}
    assert held == {StateType.PENDING, StateType.RUNNING, StateType.CANCELLING, StateType.PAUSED}
    assert not holds_concurrency_slot(make.state(StateType.PAUSED, pause_reschedule=True))
