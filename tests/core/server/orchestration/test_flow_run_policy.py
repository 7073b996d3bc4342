"""Whole-policy scenarios: a run driven through FLOW_RUN_POLICY as the API layer would drive it."""

from __future__ import annotations

import uuid
from datetime import timedelta

from headrace.retries import RetryPolicy, exponential_backoff
from headrace.schemas.states import StateType
from headrace.server.orchestration import DecisionStatus, InMemoryConcurrencySlots

S = StateType


def test_happy_path(make, run_record):
    run = run_record()
    assert run.propose(S.SCHEDULED, scheduled_time=make.now + timedelta(minutes=5)).accepted
    waiting = run.propose(S.PENDING)
    assert waiting.status is DecisionStatus.WAIT
    assert waiting.retry_after == 300
    run.advance(300)
    assert run.propose(S.PENDING).accepted
    assert run.propose(S.RUNNING).accepted
    run.advance(12)
    done = run.propose(S.COMPLETED)
    assert done.accepted
    assert run.names == ["Scheduled", "Pending", "Running", "Completed"]
    assert run.facts.run_count == 1
    assert run.facts.start_time == make.now + timedelta(seconds=300)
    assert run.facts.end_time == run.now
    assert run.facts.total_run_time == 12
    # and it stays Completed
    again = run.propose(S.RUNNING)
    assert again.status is DecisionStatus.REJECT
    assert run.state is not None
    assert run.state.type is S.COMPLETED


def test_failures_retry_until_one_succeeds(make, run_record):
    run = run_record(retry_policy=RetryPolicy.build(retries=3, retry_delay_seconds=exponential_backoff(10)))
    run.propose(S.SCHEDULED, scheduled_time=make.now)
    for attempt, delay in [(1, 10), (2, 20)]:
        assert run.propose(S.PENDING).accepted
        assert run.propose(S.RUNNING).accepted
        decision = run.propose(S.FAILED, message="boom")
        assert decision.accepted
        assert decision.modified_by == ("RetryFailedRuns",)
        assert run.state is not None
        assert run.state.name == "AwaitingRetry"
        assert run.state.message == f"Attempt {attempt} of 4 failed; retry {attempt} of 3 in {delay}s: boom"
        # too early: the claim waits for the retry time
        early = run.propose(S.PENDING)
        assert early.status is DecisionStatus.WAIT
        assert early.retry_after == delay
        run.advance(delay)
    assert run.propose(S.PENDING).accepted
    assert run.propose(S.RUNNING).accepted
    assert run.propose(S.COMPLETED).accepted
    assert run.facts.run_count == 3
    assert run.names == [
        "Scheduled",
        *["Pending", "Running", "AwaitingRetry"] * 2,
        "Pending",
        "Running",
        "Completed",
    ]


def test_retries_exhausted_the_run_fails(make, run_record):
    run = run_record(retry_policy=RetryPolicy(retries=1, retry_delay_seconds=0))
    run.propose(S.SCHEDULED, scheduled_time=make.now)
    for _ in range(2):
        run.propose(S.PENDING)
        run.propose(S.RUNNING)
        run.propose(S.FAILED)
    assert run.names == ["Scheduled", "Pending", "Running", "AwaitingRetry", "Pending", "Running", "Failed"]
    assert run.facts.run_count == 2
    assert run.facts.end_time == run.now
    # a manual retry is still possible, and an automatic one does not follow it
    assert run.propose(S.SCHEDULED, "AwaitingRetry").accepted
    run.propose(S.PENDING)
    run.propose(S.RUNNING)
    run.propose(S.FAILED)
    assert run.state is not None
    assert run.state.type is S.FAILED
    assert run.facts.run_count == 3


def test_a_rerun_gets_the_full_retry_budget_again(make, run_record):
    run = run_record(retry_policy=RetryPolicy(retries=1))
    run.propose(S.PENDING)
    run.propose(S.RUNNING)
    run.propose(S.FAILED)
    run.propose(S.PENDING)
    run.propose(S.RUNNING)
    run.propose(S.FAILED)
    assert run.state is not None
    assert run.state.type is S.FAILED
    assert run.propose(S.SCHEDULED, rerun=True).accepted
    assert run.facts.run_count == 0
    run.propose(S.PENDING)
    run.propose(S.RUNNING)
    run.propose(S.FAILED)
    assert run.state.name == "AwaitingRetry"


def test_a_retried_request_is_answered_the_same_way(make, run_record):
    run = run_record(retry_policy=RetryPolicy(retries=2, retry_delay_seconds=5))
    run.propose(S.PENDING)
    run.propose(S.RUNNING)
    tid = uuid.uuid4()
    first = run.propose(S.FAILED, transition_id=tid)
    replay = run.propose(S.FAILED, transition_id=tid)
    assert first.state is not None
    assert first.state.name == "AwaitingRetry"
    assert replay.accepted
    assert not replay.persist
    assert replay.state == run.state
    assert run.names == ["Pending", "Running", "AwaitingRetry"]


def test_cancelling_a_running_run(make, run_record):
    run = run_record(retry_policy=RetryPolicy(retries=3))
    run.propose(S.PENDING)
    run.propose(S.RUNNING)
    assert run.propose(S.CANCELLING).accepted
    # the process cannot go on, nor be claimed again
    assert run.propose(S.RUNNING).status is DecisionStatus.REJECT
    assert run.propose(S.PENDING).status is DecisionStatus.REJECT
    # it fails on its way out: not retried, it reads as Cancelled
    decision = run.propose(S.FAILED, message="KeyboardInterrupt")
    assert decision.accepted
    assert run.state is not None
    assert run.state.type is S.CANCELLED
    assert run.names == ["Pending", "Running", "Cancelling", "Cancelled"]
    assert run.propose(S.SCHEDULED, "AwaitingRetry").accepted  # a person may still retry it


def test_cancelling_a_scheduled_run_cancels_it_at_once(make, run_record):
    run = run_record()
    run.propose(S.SCHEDULED, scheduled_time=make.now + timedelta(days=1))
    assert run.propose(S.CANCELLING).accepted
    assert run.names == ["Scheduled", "Cancelled"]


def test_pause_and_resume_in_place(make, run_record):
    run = run_record()
    run.propose(S.PENDING)
    run.propose(S.RUNNING)
    run.advance(10)
    assert run.propose(S.PAUSED, pause_key="approval").accepted
    assert run.state is not None
    assert run.state.state_details.pause_timeout == run.now + timedelta(hours=1)
    run.advance(600)
    assert run.propose(S.RUNNING).accepted
    assert run.facts.run_count == 1
    # the same pause point does not pause twice
    again = run.propose(S.PAUSED, pause_key="approval")
    assert again.status is DecisionStatus.REJECT
    assert run.state.type is S.RUNNING
    run.advance(5)
    run.propose(S.COMPLETED)
    assert run.facts.total_run_time == 15


def test_a_pause_that_times_out_fails_the_run(make, run_record):
    run = run_record()
    run.propose(S.PENDING)
    run.propose(S.RUNNING)
    run.propose(S.PAUSED, pause_timeout=make.now + timedelta(minutes=1))
    run.advance(61)
    decision = run.propose(S.RUNNING)
    assert decision.status is DecisionStatus.REJECT
    assert decision.rule == "HandleResuming"
    assert run.state is not None
    assert run.state.type is S.FAILED
    assert run.names == ["Pending", "Running", "Paused", "Failed"]


def test_suspend_and_resume_through_a_new_claim(make, run_record):
    slots = InMemoryConcurrencySlots({"etl": 1})
    run = run_record(has_deployment=True, concurrency_limit_names=("etl",), concurrency_slots=slots)
    run.propose(S.SCHEDULED, scheduled_time=make.now)
    run.propose(S.PENDING)
    run.propose(S.RUNNING)
    assert slots.holders["etl"] == {run.id}
    assert run.propose(S.PAUSED, pause_reschedule=True).accepted
    assert slots.holders["etl"] == set()  # a suspended run holds no slot
    assert run.propose(S.SCHEDULED).accepted
    assert run.propose(S.PENDING).accepted
    assert slots.holders["etl"] == {run.id}
    assert run.propose(S.RUNNING).accepted
    assert run.names == ["Scheduled", "Pending", "Running", "Paused", "Scheduled", "Pending", "Running"]


def test_concurrency_limit_makes_the_second_run_wait_for_the_first(make, run_record):
    slots = InMemoryConcurrencySlots({"tag:etl": 1})
    first = run_record(concurrency_limit_names=("tag:etl",), concurrency_slots=slots)
    second = run_record(concurrency_limit_names=("tag:etl",), concurrency_slots=slots)
    for run in (first, second):
        run.propose(S.SCHEDULED, scheduled_time=make.now)
    assert first.propose(S.PENDING).accepted
    refused = second.propose(S.PENDING)
    assert refused.status is DecisionStatus.REJECT
    assert refused.retry_after == 30
    assert second.state is not None
    assert second.state.name == "AwaitingConcurrencySlot"
    # claiming before its new time waits; the first run finishing frees the slot
    assert second.propose(S.PENDING).status is DecisionStatus.WAIT
    first.propose(S.RUNNING)
    first.propose(S.COMPLETED)
    assert slots.holders["tag:etl"] == set()
    second.advance(30)
    assert second.propose(S.PENDING).accepted
    assert slots.holders["tag:etl"] == {second.id}


def test_a_crash_releases_the_slot(make, run_record):
    slots = InMemoryConcurrencySlots({"etl": 1})
    run = run_record(concurrency_limit_names=("etl",), concurrency_slots=slots, retry_policy=RetryPolicy(retries=3))
    run.propose(S.PENDING)
    run.propose(S.RUNNING)
    assert run.propose(S.CRASHED).accepted
    assert run.state is not None
    assert run.state.type is S.CRASHED  # crashes are not retried
    assert slots.holders["etl"] == set()


def test_a_retry_gives_the_slot_back_while_it_waits(make, run_record):
    slots = InMemoryConcurrencySlots({"etl": 1})
    run = run_record(concurrency_limit_names=("etl",), concurrency_slots=slots, retry_policy=RetryPolicy(retries=1))
    run.propose(S.PENDING)
    run.propose(S.RUNNING)
    run.propose(S.FAILED)
    assert run.state is not None
    assert run.state.name == "AwaitingRetry"
    assert slots.holders["etl"] == set()


def test_a_paused_run_that_times_out_releases_its_slot(make, run_record):
    slots = InMemoryConcurrencySlots({"etl": 1})
    run = run_record(concurrency_limit_names=("etl",), concurrency_slots=slots)
    run.propose(S.PENDING)
    run.propose(S.RUNNING)
    run.propose(S.PAUSED, pause_timeout=make.now + timedelta(seconds=1))
    assert slots.holders["etl"] == {run.id}  # paused in place: still holds it
    run.advance(2)
    run.propose(S.RUNNING)
    assert run.state is not None
    assert run.state.type is S.FAILED
    assert slots.holders["etl"] == set()
