"""PreventIllegalTransitions: the transition table for runs that have not finished."""

from __future__ import annotations

import itertools

import pytest

from headrace.schemas.states import StateType
from headrace.server.orchestration import DecisionStatus, PreventIllegalTransitions

RULE = PreventIllegalTransitions()

# The table, written out independently of the implementation: "from -> to" pairs a caller may propose.
LEGAL = {
    "None -> SCHEDULED", "None -> PENDING", "None -> RUNNING",
    "None -> COMPLETED", "None -> FAILED", "None -> CRASHED", "None -> CANCELLED",
    "SCHEDULED -> SCHEDULED", "SCHEDULED -> PENDING", "SCHEDULED -> CANCELLING", "SCHEDULED -> CANCELLED",
    "PENDING -> SCHEDULED", "PENDING -> RUNNING", "PENDING -> COMPLETED", "PENDING -> FAILED",
    "PENDING -> CRASHED", "PENDING -> CANCELLING", "PENDING -> CANCELLED",
    "RUNNING -> PAUSED", "RUNNING -> COMPLETED", "RUNNING -> FAILED", "RUNNING -> CRASHED",
    "RUNNING -> CANCELLING", "RUNNING -> CANCELLED",
    "PAUSED -> SCHEDULED", "PAUSED -> RUNNING", "PAUSED -> FAILED", "PAUSED -> CRASHED",
    "PAUSED -> CANCELLING", "PAUSED -> CANCELLED",
    "CANCELLING -> CANCELLED", "CANCELLING -> COMPLETED", "CANCELLING -> FAILED", "CANCELLING -> CRASHED",
}  # fmt: skip
SOURCES = [None, *(t for t in StateType if not t.is_terminal)]


def _key(source, target):
    return f"{source.value if source else None} -> {target.value}"


@pytest.mark.parametrize(("source", "target"), list(itertools.product(SOURCES, StateType)), ids=str)
def test_the_table(make, source, target):
    current = make.state(source) if source is not None else None
    decision = make.decide(RULE, current, make.state(target))
    if _key(source, target) in LEGAL:
        assert decision.status is DecisionStatus.ACCEPT, decision.reason
        assert decision.persist
    else:
        assert decision.status is DecisionStatus.REJECT
        assert decision.state == current
        assert not decision.persist
        assert decision.reason is not None
        assert decision.reason.startswith("Illegal transition ")


def test_the_reason_names_both_states_gives_a_hint_and_lists_what_is_allowed(make):
    decision = make.decide(RULE, make.state(StateType.SCHEDULED), make.state(StateType.RUNNING))
    assert decision.reason == (
        "Illegal transition Scheduled → Running: claim it first by proposing Pending. "
        "Allowed from Scheduled: Cancelled, Cancelling, Pending, Scheduled."
    )


def test_a_named_state_is_shown_with_its_type(make):
    decision = make.decide(RULE, make.state(StateType.SCHEDULED, "Late"), make.state(StateType.COMPLETED, "Cached"))
    assert decision.reason is not None
    assert decision.reason.startswith("Illegal transition Late (Scheduled) → Cached (Completed): ")


def test_running_to_scheduled_points_at_the_retry_rule(make):
    decision = make.decide(RULE, make.state(StateType.RUNNING), make.state(StateType.SCHEDULED))
    assert decision.reason is not None
    assert "propose Failed: the server decides whether the run retries" in decision.reason


def test_cancelling_says_the_run_can_only_end(make):
    decision = make.decide(RULE, make.state(StateType.CANCELLING), make.state(StateType.RUNNING))
    assert decision.reason is not None
    assert "cancellation was requested" in decision.reason


@pytest.mark.parametrize("source", SOURCES, ids=str)
def test_awaiting_retry_cannot_be_proposed_for_a_run_that_has_not_finished(make, source):
    current = make.state(source) if source is not None else None
    decision = make.decide(RULE, current, make.state(StateType.SCHEDULED, "AwaitingRetry"))
    assert decision.status is DecisionStatus.REJECT
    assert decision.reason is not None
    assert "AwaitingRetry may only be proposed to retry a finished run" in decision.reason


def test_rerun_is_only_for_finished_runs(make):
    decision = make.decide(RULE, make.state(StateType.SCHEDULED), make.state(StateType.SCHEDULED, rerun=True))
    assert decision.status is DecisionStatus.REJECT
    assert decision.reason == "Only a finished run can be rerun; the run is Scheduled."


def test_terminal_sources_are_left_to_the_terminal_rule(make):
    assert not RULE.applies_to(make.ctx(make.state(StateType.COMPLETED), make.state(StateType.RUNNING)))
