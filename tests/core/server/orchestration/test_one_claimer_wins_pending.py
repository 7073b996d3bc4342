"""OneClaimerWinsPending: a run can be claimed (moved to Pending) once."""

from __future__ import annotations

import pytest

from headrace.schemas.states import StateType
from headrace.server.orchestration import DecisionStatus, OneClaimerWinsPending

RULE = OneClaimerWinsPending()


def test_a_scheduled_run_can_be_claimed(make):
    decision = make.decide(
        RULE, make.state(StateType.SCHEDULED, scheduled_time=make.now), make.state(StateType.PENDING)
    )
    assert decision.status is DecisionStatus.ACCEPT
    assert decision.persist
    assert decision.state is not None
    assert decision.state.type is StateType.PENDING


def test_a_new_run_can_start_pending(make):
    assert make.decide(RULE, None, make.state(StateType.PENDING)).status is DecisionStatus.ACCEPT


@pytest.mark.parametrize("claimed", [StateType.PENDING, StateType.RUNNING, StateType.PAUSED, StateType.CANCELLING])
def test_a_claimed_run_cannot_be_claimed_again(make, claimed):
    current = make.state(claimed)
    decision = make.decide(RULE, current, make.state(StateType.PENDING))
    assert decision.status is DecisionStatus.REJECT
    assert decision.state == current
    assert not decision.persist
    assert decision.reason == (
        f"The run was already claimed: it is {claimed.default_name}. Only one claimer wins Pending."
    )


def test_of_two_claimers_from_the_same_scheduled_state_only_the_first_wins(make, run_record):
    run = run_record()
    run.propose(StateType.SCHEDULED, scheduled_time=make.now)
    first = run.propose(StateType.PENDING)
    second = run.propose(StateType.PENDING)
    assert first.status is DecisionStatus.ACCEPT
    assert second.status is DecisionStatus.REJECT
    assert second.state is not None
    assert second.state.type is StateType.PENDING
    assert run.names == ["Scheduled", "Pending"]


def test_the_rule_ignores_other_proposals(make):
    assert not RULE.applies_to(make.ctx(make.state(StateType.PENDING), make.state(StateType.RUNNING)))
    assert not RULE.applies_to(make.ctx(make.state(StateType.COMPLETED), make.state(StateType.PENDING)))
