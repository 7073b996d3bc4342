"""orchestrate() and next_run_facts(): the loop over rules, and the run bookkeeping it attaches."""

from __future__ import annotations

from datetime import timedelta

from headrace.schemas.states import StateType
from headrace.server.orchestration import (
    FLOW_RUN_POLICY,
    Decision,
    DecisionStatus,
    HonourConcurrencyLimits,
    Rule,
    RunFacts,
    TransitionContext,
    next_run_facts,
    orchestrate,
)


class Rename(Rule):
    """Renames the proposal, and records the name it saw: a real rule, small enough to reason about."""

    def __init__(self, new_name: str, seen: list[str]) -> None:
        self.new_name, self.seen = new_name, seen

    def apply(self, ctx: TransitionContext) -> Decision:
        self.seen.append(ctx.proposed.name)
        return Decision.accept(ctx, ctx.proposed.model_copy(update={"name": self.new_name}))


class Refuse(Rule):
    to_types = frozenset({StateType.COMPLETED})

    def apply(self, ctx: TransitionContext) -> Decision:
        return Decision.reject(ctx, "no")


class TestOrchestrate:
    def test_no_rules_accepts_the_proposal_as_is(self, make):
        proposed = make.state(StateType.RUNNING)
        decision = orchestrate(make.ctx(make.state(StateType.PENDING), proposed), [])
        assert decision.status is DecisionStatus.ACCEPT
        assert decision.state is proposed
        assert decision.persist
        assert decision.rule is None
        assert decision.modified_by == ()

    def test_modifications_are_seen_by_later_rules_and_recorded(self, make):
        seen: list[str] = []
        ctx = make.ctx(make.state(StateType.PENDING), make.state(StateType.COMPLETED))
        decision = orchestrate(ctx, [Rename("Cached", seen), Rename("Done", seen)])
        assert seen == ["Completed", "Cached"]
        assert decision.state is not None
        assert decision.state.name == "Done"
        assert decision.modified_by == ("Rename", "Rename")
        assert ctx.initial_proposed is not None
        assert ctx.initial_proposed.name == "Completed"

    def test_the_first_refusal_decides_and_later_rules_are_not_consulted(self, make):
        seen: list[str] = []
        current = make.state(StateType.RUNNING)
        decision = orchestrate(make.ctx(current, make.state(StateType.COMPLETED)), [Refuse(), Rename("x", seen)])
        assert decision.status is DecisionStatus.REJECT
        assert decision.rule == "Refuse"
        assert decision.reason == "no"
        assert decision.state is current
        assert decision.run is None
        assert seen == []

    def test_rules_that_do_not_apply_are_skipped(self, make):
        decision = orchestrate(make.ctx(make.state(StateType.PENDING), make.state(StateType.RUNNING)), [Refuse()])
        assert decision.status is DecisionStatus.ACCEPT

    def test_an_accepted_decision_carries_the_bookkeeping(self, make):
        decision = orchestrate(
            make.ctx(make.state(StateType.PENDING), make.state(StateType.RUNNING), run_count=0), FLOW_RUN_POLICY
        )
        assert decision.run == RunFacts(run_count=1, start_time=make.now)

    def test_the_flow_run_policy_is_in_its_documented_order_and_ends_with_concurrency(self):
        assert [rule.name for rule in FLOW_RUN_POLICY] == [
            "PreventDuplicateTransitions",
            "OneClaimerWinsPending",
            "KeepTerminalStatesTerminal",
            "PreventIllegalTransitions",
            "RespectScheduledTime",
            "HandleCancellation",
            "RetryFailedRuns",
            "HandlePausing",
            "HandleResuming",
            "HonourConcurrencyLimits",
        ]
        assert isinstance(FLOW_RUN_POLICY[-1], HonourConcurrencyLimits)


class TestNextRunFacts:
    def test_entering_running_counts_a_run_and_starts_the_clock_once(self, make):
        facts = next_run_facts(make.state(StateType.PENDING), make.state(StateType.RUNNING), RunFacts(), make.now)
        assert (facts.run_count, facts.start_time) == (1, make.now)
        later = make.now + timedelta(hours=1)
        again = next_run_facts(
            make.state(StateType.PENDING), make.state(StateType.RUNNING), RunFacts(1, start_time=make.now), later
        )
        assert (again.run_count, again.start_time) == (2, make.now)

    def test_resuming_in_place_is_the_same_run(self, make):
        facts = next_run_facts(make.state(StateType.PAUSED), make.state(StateType.RUNNING), RunFacts(1), make.now)
        assert facts.run_count == 1

    def test_time_spent_running_is_added_when_running_ends(self, make):
        running = make.state(StateType.RUNNING)
        end = make.now + timedelta(seconds=42)
        facts = next_run_facts(running, make.state(StateType.COMPLETED), RunFacts(1, total_run_time=8.0), end)
        assert facts.total_run_time == 50.0
        assert facts.end_time == end

    def test_leaving_a_terminal_state_clears_the_end_time(self, make):
        before = RunFacts(1, end_time=make.now)
        facts = next_run_facts(
            make.state(StateType.FAILED), make.state(StateType.SCHEDULED, "AwaitingRetry"), before, make.now
        )
        assert facts.end_time is None
        assert facts.run_count == 1

    def test_a_scheduled_state_sets_the_next_start(self, make):
        when = make.now + timedelta(minutes=3)
        facts = next_run_facts(None, make.state(StateType.SCHEDULED, scheduled_time=when), RunFacts(), make.now)
        assert facts.next_scheduled_start_time == when
        after = next_run_facts(make.state(StateType.SCHEDULED), make.state(StateType.PENDING), facts, make.now)
        assert after.next_scheduled_start_time is None

    def test_a_pause_key_is_remembered(self, make):
        facts = next_run_facts(
            make.state(StateType.RUNNING), make.state(StateType.PAUSED, pause_key="k"), RunFacts(1), make.now
        )
        assert facts.pause_keys == frozenset({"k"})

    def test_a_rerun_starts_afresh(self, make):
        before = RunFacts(3, start_time=make.now, end_time=make.now, total_run_time=9.0, pause_keys=frozenset("a"))
        facts = next_run_facts(
            make.state(StateType.COMPLETED), make.state(StateType.SCHEDULED, rerun=True), before, make.now
        )
        assert facts == RunFacts(next_scheduled_start_time=None)
