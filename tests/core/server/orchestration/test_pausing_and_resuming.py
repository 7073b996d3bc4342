"""HandlePausing and HandleResuming: pause with a timeout, resume before it, fail after it."""

from __future__ import annotations

from datetime import timedelta

from headrace.schemas.states import StateType
from headrace.server.orchestration import DecisionStatus, HandlePausing, HandleResuming, RunFacts

PAUSE = HandlePausing()
RESUME = HandleResuming()


class TestHandlePausing:
    def test_a_pause_without_timeout_gets_the_default(self, make):
        decision = make.decide(PAUSE, make.state(StateType.RUNNING), make.state(StateType.PAUSED))
        assert decision.status is DecisionStatus.ACCEPT
        assert decision.state is not None
        assert decision.state.state_details.pause_timeout == make.now + timedelta(hours=1)
        assert decision.modified_by == ("HandlePausing",)

    def test_the_default_timeout_comes_from_the_context(self, make):
        decision = make.decide(
            PAUSE, make.state(StateType.RUNNING), make.state(StateType.PAUSED), pause_timeout_seconds=60
        )
        assert decision.state is not None
        assert decision.state.state_details.pause_timeout == make.now + timedelta(seconds=60)

    def test_a_given_timeout_is_kept(self, make):
        timeout = make.now + timedelta(minutes=5)
        proposed = make.state(StateType.PAUSED, pause_timeout=timeout)
        decision = make.decide(PAUSE, make.state(StateType.RUNNING), proposed)
        assert decision.state == proposed

    def test_a_timeout_in_the_past_is_rejected(self, make):
        current = make.state(StateType.RUNNING)
        proposed = make.state(StateType.PAUSED, pause_timeout=make.now - timedelta(seconds=1))
        decision = make.decide(PAUSE, current, proposed)
        assert decision.status is DecisionStatus.REJECT
        assert decision.state == current
        assert decision.reason == ("The pause timeout 2030-01-01T11:59:59+00:00 has already passed; the run continues.")

    def test_a_pause_key_fires_once(self, make):
        current = make.state(StateType.RUNNING)
        proposed = make.state(StateType.PAUSED, pause_key="approve")
        decision = make.decide(PAUSE, current, proposed, run=RunFacts(run_count=1, pause_keys=frozenset({"approve"})))
        assert decision.status is DecisionStatus.REJECT
        assert decision.state == current
        assert decision.reason == "The pause 'approve' has already fired; the run continues."
        other = make.decide(PAUSE, current, make.state(StateType.PAUSED, pause_key="other"))
        assert other.status is DecisionStatus.ACCEPT

    def test_suspending_needs_a_deployment(self, make):
        proposed = make.state(StateType.PAUSED, pause_reschedule=True)
        decision = make.decide(PAUSE, make.state(StateType.RUNNING), proposed)
        assert decision.status is DecisionStatus.ABORT
        assert not decision.persist
        assert decision.reason == (
            "A run can be suspended (paused with reschedule) only if it has a deployment to run it again."
        )
        deployed = make.decide(PAUSE, make.state(StateType.RUNNING), proposed, has_deployment=True)
        assert deployed.status is DecisionStatus.ACCEPT


class TestHandleResuming:
    def test_resuming_in_place_before_the_timeout(self, make):
        current = make.state(StateType.PAUSED, pause_timeout=make.now + timedelta(seconds=1))
        proposed = make.state(StateType.RUNNING)
        decision = make.decide(RESUME, current, proposed)
        assert decision.status is DecisionStatus.ACCEPT
        assert decision.state == proposed

    def test_resuming_after_the_timeout_fails_the_run(self, make):
        current = make.state(StateType.PAUSED, pause_timeout=make.now)
        decision = make.decide(RESUME, current, make.state(StateType.RUNNING))
        assert decision.status is DecisionStatus.REJECT
        assert decision.persist
        assert decision.state is not None
        assert decision.state.type is StateType.FAILED
        assert decision.reason == (
            "The pause timed out at 2030-01-01T12:00:00+00:00; the run can no longer be resumed."
        )
        assert decision.state.message == decision.reason
        assert decision.run is not None
        assert decision.run.end_time == make.now

    def test_a_suspended_run_resumes_through_scheduled(self, make):
        current = make.state(StateType.PAUSED, pause_reschedule=True, pause_timeout=make.now + timedelta(hours=1))
        ok = make.decide(RESUME, current, make.state(StateType.SCHEDULED, scheduled_time=make.now))
        assert ok.status is DecisionStatus.ACCEPT
        refused = make.decide(RESUME, current, make.state(StateType.RUNNING))
        assert refused.status is DecisionStatus.REJECT
        assert refused.reason == (
            "The run was suspended and has no process to resume it: propose Scheduled to resume it."
        )

    def test_a_run_paused_in_place_resumes_through_running(self, make):
        current = make.state(StateType.PAUSED, pause_timeout=make.now + timedelta(hours=1))
        refused = make.decide(RESUME, current, make.state(StateType.SCHEDULED))
        assert refused.status is DecisionStatus.REJECT
        assert refused.reason == (
            "The run is paused in place and its process is waiting: propose Running to resume it."
        )

    def test_a_pause_without_timeout_can_always_resume(self, make):
        decision = make.decide(RESUME, make.state(StateType.PAUSED), make.state(StateType.RUNNING))
        assert decision.status is DecisionStatus.ACCEPT
