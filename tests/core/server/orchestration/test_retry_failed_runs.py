"""RetryFailedRuns: a failure with retries left becomes AwaitingRetry, with the delay from headrace.retries."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

import pytest

from headrace.retries import RetryPolicy, exponential_backoff, next_retry_delay
from headrace.schemas.states import StateType
from headrace.server.orchestration import DecisionStatus, RetryFailedRuns

RULE = RetryFailedRuns()


def test_a_failure_with_retries_left_becomes_awaiting_retry(make):
    policy = RetryPolicy(retries=3, retry_delay_seconds=10)
    tid = uuid.uuid4()
    proposed = make.state(StateType.FAILED, message="ValueError: bad row", transition_id=tid)
    decision = make.decide(RULE, make.state(StateType.RUNNING), proposed, run_count=1, retry_policy=policy)
    assert decision.status is DecisionStatus.ACCEPT
    assert decision.persist
    state = decision.state
    assert state is not None
    assert (state.type, state.name) == (StateType.SCHEDULED, "AwaitingRetry")
    assert state.state_details.scheduled_time == make.now + timedelta(seconds=10)
    assert state.state_details.transition_id == tid
    assert state.message == "Attempt 1 of 4 failed; retry 1 of 3 in 10s: ValueError: bad row"
    assert decision.modified_by == ("RetryFailedRuns",)


def test_the_last_retry(make):
    policy = RetryPolicy(retries=2, retry_delay_seconds=[1, 5])
    decision = make.decide(
        RULE, make.state(StateType.RUNNING), make.state(StateType.FAILED), run_count=2, retry_policy=policy
    )
    assert decision.state is not None
    assert decision.state.name == "AwaitingRetry"
    assert decision.state.message == "Attempt 2 of 3 failed; retry 2 of 2 in 5s"
    assert decision.state.state_details.scheduled_time == make.now + timedelta(seconds=5)


def test_retries_exhausted_the_failure_stands(make):
    policy = RetryPolicy(retries=2, retry_delay_seconds=1)
    proposed = make.state(StateType.FAILED)
    decision = make.decide(RULE, make.state(StateType.RUNNING), proposed, run_count=3, retry_policy=policy)
    assert decision.status is DecisionStatus.ACCEPT
    assert decision.state == proposed


def test_no_retries_configured_the_failure_stands(make):
    proposed = make.state(StateType.FAILED)
    assert make.decide(RULE, make.state(StateType.RUNNING), proposed, run_count=1).state == proposed


def test_a_failure_marked_not_retriable_stands(make):
    proposed = make.state(StateType.FAILED, retriable=False)
    policy = RetryPolicy(retries=5)
    decision = make.decide(RULE, make.state(StateType.RUNNING), proposed, run_count=1, retry_policy=policy)
    assert decision.state == proposed


def test_a_failure_marked_retriable_is_retried(make):
    proposed = make.state(StateType.FAILED, retriable=True)
    policy = RetryPolicy(retries=1)
    decision = make.decide(RULE, make.state(StateType.RUNNING), proposed, run_count=1, retry_policy=policy)
    assert decision.state is not None
    assert decision.state.name == "AwaitingRetry"
    assert decision.state.state_details.retriable is None


def test_a_timeout_is_a_failure_and_is_retried(make):
    policy = RetryPolicy(retries=1)
    decision = make.decide(
        RULE, make.state(StateType.RUNNING), make.state(StateType.FAILED, "TimedOut"), run_count=1, retry_policy=policy
    )
    assert decision.state is not None
    assert decision.state.name == "AwaitingRetry"


def test_the_delay_is_exactly_the_shared_function_with_the_same_random_source(make):
    policy = RetryPolicy.build(retries=4, retry_delay_seconds=exponential_backoff(3), retry_jitter_factor=0.5)
    for attempt in range(1, 5):
        decision = make.decide(
            RULE,
            make.state(StateType.RUNNING),
            make.state(StateType.FAILED),
            run_count=attempt,
            retry_policy=policy,
            rng=random.Random(attempt),
        )
        assert decision.state is not None
        expected = next_retry_delay(policy, attempt, random.Random(attempt))
        assert decision.state.state_details.scheduled_time == make.now + timedelta(seconds=expected)
        base = 3 * 2 ** (attempt - 1)
        assert base <= expected <= base * 1.5


@pytest.mark.parametrize("source", [StateType.PENDING, StateType.PAUSED, StateType.CANCELLING])
def test_failures_outside_running_are_not_retried(make, source):
    ctx = make.ctx(make.state(source), make.state(StateType.FAILED), run_count=1, retry_policy=RetryPolicy(retries=3))
    assert not RULE.applies_to(ctx)


def test_crashes_are_not_retried(make):
    ctx = make.ctx(make.state(StateType.RUNNING), make.state(StateType.CRASHED), retry_policy=RetryPolicy(retries=3))
    assert not RULE.applies_to(ctx)
