"""PreventDuplicateTransitions: the same state twice is rejected, a replayed transition is accepted again."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from headrace.schemas.states import StateType
from headrace.server.orchestration import DecisionStatus, PreventDuplicateTransitions

RULE = PreventDuplicateTransitions()


@pytest.mark.parametrize("type_", [t for t in StateType if t is not StateType.SCHEDULED])
def test_same_type_and_name_is_rejected_with_the_current_state(make, type_):
    current = make.state(type_)
    decision = make.decide(RULE, current, make.state(type_))
    assert decision.status is DecisionStatus.REJECT
    assert decision.state == current
    assert not decision.persist
    assert decision.rule == "PreventDuplicateTransitions"
    assert decision.reason is not None
    assert f"already {type_.default_name}" in decision.reason


def test_running_to_running_says_so(make):
    decision = make.decide(RULE, make.state(StateType.RUNNING), make.state(StateType.RUNNING))
    assert decision.reason == "The run is already Running."


def test_a_second_pending_says_another_claimer_won(make):
    decision = make.decide(RULE, make.state(StateType.PENDING), make.state(StateType.PENDING))
    assert decision.status is DecisionStatus.REJECT
    assert decision.reason == "The run is already Pending: another claimer won it."


def test_same_type_with_another_name_is_not_a_duplicate(make):
    current = make.state(StateType.SCHEDULED, scheduled_time=make.now)
    decision = make.decide(RULE, current, make.state(StateType.SCHEDULED, "Late", scheduled_time=make.now))
    assert decision.status is DecisionStatus.ACCEPT
    assert decision.persist


def test_another_type_is_not_a_duplicate(make):
    decision = make.decide(RULE, make.state(StateType.PENDING), make.state(StateType.RUNNING))
    assert decision.status is DecisionStatus.ACCEPT


def test_scheduled_at_another_time_is_a_reschedule(make):
    current = make.state(StateType.SCHEDULED, scheduled_time=make.now)
    later = make.now + timedelta(hours=1)
    decision = make.decide(RULE, current, make.state(StateType.SCHEDULED, scheduled_time=later))
    assert decision.status is DecisionStatus.ACCEPT
    assert decision.state is not None
    assert decision.state.state_details.scheduled_time == later


def test_scheduled_at_the_same_time_is_a_duplicate(make):
    current = make.state(StateType.SCHEDULED, scheduled_time=make.now)
    decision = make.decide(RULE, current, make.state(StateType.SCHEDULED, scheduled_time=make.now))
    assert decision.status is DecisionStatus.REJECT


def test_a_replay_of_the_same_transition_is_accepted_without_writing(make):
    tid = uuid.uuid4()
    current = make.state(StateType.RUNNING, transition_id=tid)
    decision = make.decide(RULE, current, make.state(StateType.RUNNING, transition_id=tid))
    assert decision.status is DecisionStatus.ACCEPT
    assert not decision.persist
    assert decision.state == current
    assert decision.run is None
    assert decision.reason == f"Transition {tid} was already applied."


def test_a_replay_is_recognised_even_when_the_types_differ(make):
    # The server turned the proposed Failed into AwaitingRetry; the client's replay of Failed must get that back.
    tid = uuid.uuid4()
    current = make.state(StateType.SCHEDULED, "AwaitingRetry", transition_id=tid, scheduled_time=make.now)
    decision = make.decide(RULE, current, make.state(StateType.FAILED, transition_id=tid))
    assert decision.status is DecisionStatus.ACCEPT
    assert not decision.persist
    assert decision.state == current


def test_another_transition_id_is_still_a_duplicate(make):
    current = make.state(StateType.RUNNING, transition_id=uuid.uuid4())
    decision = make.decide(RULE, current, make.state(StateType.RUNNING, transition_id=uuid.uuid4()))
    assert decision.status is DecisionStatus.REJECT


def test_no_transition_ids_are_not_a_replay(make):
    decision = make.decide(RULE, make.state(StateType.RUNNING), make.state(StateType.RUNNING))
    assert decision.status is DecisionStatus.REJECT


def test_a_new_run_has_nothing_to_duplicate(make):
    decision = make.decide(RULE, None, make.state(StateType.SCHEDULED, scheduled_time=make.now))
    assert decision.status is DecisionStatus.ACCEPT
    assert decision.persist
