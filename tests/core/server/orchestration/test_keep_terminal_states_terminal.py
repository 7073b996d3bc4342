"""KeepTerminalStatesTerminal: nothing leaves Completed/Failed/Crashed/Cancelled but a retry or a rerun."""

from __future__ import annotations

import pytest

from headrace.schemas.states import TERMINAL_STATE_TYPES, StateType
from headrace.server.orchestration import DecisionStatus, KeepTerminalStatesTerminal

RULE = KeepTerminalStatesTerminal()
TERMINAL = sorted(TERMINAL_STATE_TYPES, key=lambda t: t.value)


@pytest.mark.parametrize("terminal", TERMINAL)
@pytest.mark.parametrize("target", list(StateType))
def test_an_ordinary_proposal_is_rejected(make, terminal, target):
    current = make.state(terminal)
    decision = make.decide(RULE, current, make.state(target))
    assert decision.status is DecisionStatus.REJECT
    assert decision.state == current
    assert not decision.persist
    assert decision.reason is not None
    assert decision.reason.startswith(f"The run is {terminal.default_name}, a terminal state, and stays so.")
    assert "AwaitingRetry" in decision.reason
    assert "rerun" in decision.reason


@pytest.mark.parametrize("terminal", TERMINAL)
def test_a_retry_is_accepted(make, terminal):
    decision = make.decide(RULE, make.state(terminal), make.state(StateType.SCHEDULED, "AwaitingRetry"))
    assert decision.status is DecisionStatus.ACCEPT
    assert decision.persist


@pytest.mark.parametrize("terminal", TERMINAL)
def test_a_rerun_is_accepted(make, terminal):
    decision = make.decide(RULE, make.state(terminal), make.state(StateType.SCHEDULED, rerun=True))
    assert decision.status is DecisionStatus.ACCEPT


def test_a_rerun_flag_on_something_other_than_scheduled_is_rejected(make):
    decision = make.decide(RULE, make.state(StateType.FAILED), make.state(StateType.RUNNING, rerun=True))
    assert decision.status is DecisionStatus.REJECT


def test_a_late_state_is_not_a_retry(make):
    decision = make.decide(RULE, make.state(StateType.FAILED), make.state(StateType.SCHEDULED, "Late"))
    assert decision.status is DecisionStatus.REJECT


def test_the_rule_only_looks_at_terminal_states(make):
    assert not RULE.applies_to(make.ctx(make.state(StateType.RUNNING), make.state(StateType.SCHEDULED)))
    assert not RULE.applies_to(make.ctx(None, make.state(StateType.SCHEDULED)))
