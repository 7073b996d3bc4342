"""RespectScheduledTime: no claim before the scheduled time; a Scheduled state always has a time."""

from __future__ import annotations

from datetime import timedelta

from headrace.schemas.states import StateType
from headrace.server.orchestration import DecisionStatus, RespectScheduledTime

RULE = RespectScheduledTime()


def test_claiming_early_waits_until_the_scheduled_time(make):
    current = make.state(StateType.SCHEDULED, scheduled_time=make.now + timedelta(seconds=90))
    decision = make.decide(RULE, current, make.state(StateType.PENDING))
    assert decision.status is DecisionStatus.WAIT
    assert decision.retry_after == 90
    assert decision.state == current
    assert not decision.persist
    assert decision.reason == "The run is scheduled for 2030-01-01T12:01:30+00:00: it cannot start for another 90s."


def test_claiming_at_or_after_the_scheduled_time_is_accepted(make):
    for offset in (0, -1, -3600):
        current = make.state(StateType.SCHEDULED, scheduled_time=make.now + timedelta(seconds=offset))
        assert make.decide(RULE, current, make.state(StateType.PENDING)).status is DecisionStatus.ACCEPT


def test_awaiting_retry_is_respected_too(make):
    current = make.state(StateType.SCHEDULED, "AwaitingRetry", scheduled_time=make.now + timedelta(seconds=2.5))
    decision = make.decide(RULE, current, make.state(StateType.PENDING))
    assert decision.status is DecisionStatus.WAIT
    assert decision.retry_after == 2.5


def test_the_context_can_override_the_scheduled_time(make):
    current = make.state(StateType.SCHEDULED, scheduled_time=make.now)
    later = make.now + timedelta(seconds=30)
    decision = make.decide(RULE, current, make.state(StateType.PENDING), scheduled_time=later)
    assert decision.status is DecisionStatus.WAIT
    assert decision.retry_after == 30


def test_a_scheduled_state_without_a_time_is_accepted(make):
    decision = make.decide(RULE, make.state(StateType.SCHEDULED), make.state(StateType.PENDING))
    assert decision.status is DecisionStatus.ACCEPT


def test_a_scheduled_proposal_without_a_time_is_scheduled_for_now(make):
    proposed = make.state(StateType.SCHEDULED)
    decision = make.decide(RULE, None, proposed)
    assert decision.status is DecisionStatus.ACCEPT
    assert decision.state is not None
    assert decision.state.state_details.scheduled_time == make.now
    assert decision.modified_by == ("RespectScheduledTime",)
    assert proposed.state_details.scheduled_time is None  # the caller's object is not changed


def test_a_scheduled_proposal_keeps_its_time(make):
    later = make.now + timedelta(days=1)
    decision = make.decide(RULE, None, make.state(StateType.SCHEDULED, scheduled_time=later))
    assert decision.state is not None
    assert decision.state.state_details.scheduled_time == later
    assert decision.modified_by == ()


def test_only_a_scheduled_current_state_makes_a_claim_wait(make):
    # A Paused run's pause timeout, or a Pending run's old schedule, is not a start time.
    current = make.state(StateType.PENDING, scheduled_time=make.now + timedelta(hours=1))
    assert make.decide(RULE, current, make.state(StateType.RUNNING)).status is DecisionStatus.ACCEPT
