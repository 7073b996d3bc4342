"""HandleCancellation: cancellation ends as Cancelled."""

from __future__ import annotations

import pytest

from headrace.schemas.states import StateType
from headrace.server.orchestration import DecisionStatus, HandleCancellation

RULE = HandleCancellation()


def test_cancelling_to_cancelled_is_accepted_as_is(make):
    proposed = make.state(StateType.CANCELLED, message="stopped by the worker")
    decision = make.decide(RULE, make.state(StateType.CANCELLING), proposed)
    assert decision.status is DecisionStatus.ACCEPT
    assert decision.state == proposed
    assert decision.modified_by == ()


@pytest.mark.parametrize("ended", [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED])
def test_ending_otherwise_while_cancelling_becomes_cancelled(make, ended):
    proposed = make.state(ended, message="boom").model_copy(update={"data": {"ref": "result-1"}})
    decision = make.decide(RULE, make.state(StateType.CANCELLING), proposed)
    assert decision.status is DecisionStatus.ACCEPT
    assert decision.persist
    assert decision.state is not None
    assert decision.state.type is StateType.CANCELLED
    assert decision.state.message == f"Cancelled: the run ended as {ended.default_name} after cancellation: boom"
    assert decision.state.data == {"ref": "result-1"}
    assert decision.modified_by == ("HandleCancellation",)


def test_cancelling_a_scheduled_run_cancels_it_at_once(make):
    decision = make.decide(RULE, make.state(StateType.SCHEDULED), make.state(StateType.CANCELLING))
    assert decision.state is not None
    assert decision.state.type is StateType.CANCELLED
    assert decision.state.message == "Cancelled before it started."


def test_cancelling_a_suspended_run_cancels_it_at_once(make):
    current = make.state(StateType.PAUSED, pause_reschedule=True)
    decision = make.decide(RULE, current, make.state(StateType.CANCELLING))
    assert decision.state is not None
    assert decision.state.type is StateType.CANCELLED
    assert decision.state.message == "Cancelled while suspended."


@pytest.mark.parametrize("source", [StateType.PENDING, StateType.RUNNING])
def test_a_run_with_a_process_goes_through_cancelling(make, source):
    proposed = make.state(StateType.CANCELLING)
    decision = make.decide(RULE, make.state(source), proposed)
    assert decision.state == proposed


def test_a_run_paused_in_place_goes_through_cancelling(make):
    proposed = make.state(StateType.CANCELLING)
    decision = make.decide(RULE, make.state(StateType.PAUSED), proposed)
    assert decision.state == proposed


def test_a_paused_run_may_still_fail(make):
    proposed = make.state(StateType.FAILED)
    assert make.decide(RULE, make.state(StateType.PAUSED), proposed).state == proposed
