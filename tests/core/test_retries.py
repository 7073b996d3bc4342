"""headrace.retries: the one implementation of retry delays, backoff, jitter and conditions."""

from __future__ import annotations

import math
import random
import statistics
import uuid
from datetime import datetime, timedelta, timezone

import pydantic
import pytest

from headrace.retries import (
    MAX_DELAY_SECONDS,
    ExponentialBackoff,
    RetryPlan,
    RetryPolicy,
    capped_exponential,
    delay_for_attempt,
    exponential_backoff,
    jittered,
    next_retry_delay,
    plan_retry,
    retry_state,
)
from headrace.schemas.states import State, StateDetails, StateType

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)


class TestJittered:
    @pytest.mark.parametrize(("delay", "factor"), [(10.0, 0.2), (1.0, 1.0), (3.5, 0.05), (100.0, 2.0)])
    def test_values_stay_within_d_and_d_times_one_plus_factor_and_cover_the_range(self, delay, factor):
        rng = random.Random(1234)
        samples = [jittered(delay, factor, rng) for _ in range(20_000)]
        assert all(delay <= s <= delay * (1 + factor) for s in samples)
        spread = delay * factor
        # uniform: the extremes are approached and the mean is in the middle (20k samples, seeded)
        assert min(samples) < delay + 0.01 * spread
        assert max(samples) > delay + 0.99 * spread
        assert statistics.fmean(samples) == pytest.approx(delay + spread / 2, rel=0.01)

    def test_jitter_is_applied(self):
        rng = random.Random(5)
        assert len({jittered(10, 0.5, rng) for _ in range(50)}) == 50

    def test_the_same_seed_gives_the_same_delays(self):
        a, b = random.Random(99), random.Random(99)
        assert [jittered(7, 0.3, a) for _ in range(10)] == [jittered(7, 0.3, b) for _ in range(10)]

    def test_the_exact_formula(self):
        u = random.Random(3).random()
        assert jittered(8, 0.25, random.Random(3)) == 8 * (1 + 0.25 * u)

    def test_no_factor_no_jitter(self):
        assert jittered(10, 0, random.Random(1)) == 10

    def test_negative_delay_is_clamped_to_zero(self):
        assert jittered(-5, 0.5, random.Random(1)) == 0

    def test_without_a_generator_it_still_stays_in_bounds(self):
        assert all(2 <= jittered(2, 0.5) <= 3 for _ in range(1000))

    @pytest.mark.parametrize("factor", [-0.1, math.nan, math.inf])
    def test_bad_factors_are_errors(self, factor):
        with pytest.raises(ValueError, match="jitter factor"):
            jittered(1, factor)

    def test_nan_delays_are_errors(self):
        with pytest.raises(ValueError, match="NaN"):
            jittered(math.nan, 0.1)

    def test_delays_are_clamped_to_the_maximum(self):
        assert jittered(math.inf, 0) == MAX_DELAY_SECONDS
        assert jittered(10 * MAX_DELAY_SECONDS, 0) == MAX_DELAY_SECONDS


class TestCappedExponential:
    def test_doubles_from_the_base(self):
        assert [capped_exponential(a, 0.5) for a in range(1, 6)] == [0.5, 1, 2, 4, 8]

    def test_is_capped(self):
        assert [capped_exponential(a, 1, cap=5) for a in range(1, 6)] == [1, 2, 4, 5, 5]

    def test_huge_attempts_saturate_at_the_cap(self):
        assert capped_exponential(10_000, 1, cap=60) == 60

    @pytest.mark.parametrize(("attempt", "base"), [(10_000, 1), (1024, 4)])
    def test_huge_attempts_without_a_cap_are_an_error_not_infinity(self, attempt, base):
        with pytest.raises(ValueError, match="overflows"):
            capped_exponential(attempt, base)

    def test_attempts_count_from_one(self):
        with pytest.raises(ValueError, match="from 1"):
            capped_exponential(0, 1)

    def test_as_the_http_client_uses_it(self):
        rng = random.Random(8)
        delays = [jittered(capped_exponential(a, 2, cap=10), 0.2, rng) for a in range(1, 6)]
        for attempt, delay in enumerate(delays, start=1):
            base = min(10, 2 * 2 ** (attempt - 1))
            assert base <= delay <= base * 1.2


class TestExponentialBackoff:
    def test_delays(self):
        backoff = exponential_backoff(backoff_factor=10)
        assert isinstance(backoff, ExponentialBackoff)
        assert [backoff(a) for a in range(1, 5)] == [10, 20, 40, 80]

    def test_many_retries_saturate_at_the_maximum_delay(self):
        assert exponential_backoff(10)(200) == MAX_DELAY_SECONDS
        assert exponential_backoff(10)(5000) == MAX_DELAY_SECONDS

    def test_max_delay(self):
        backoff = exponential_backoff(backoff_factor=10, max_delay=25)
        assert [backoff(a) for a in range(1, 5)] == [10, 20, 25, 25]

    @pytest.mark.parametrize("factor", [-1, math.nan])
    def test_bad_factors_are_errors(self, factor):
        with pytest.raises(ValueError, match="backoff_factor"):
            exponential_backoff(factor)


class TestDelayForAttempt:
    def test_a_number_is_every_delay(self):
        assert [delay_for_attempt(3, a) for a in (1, 2, 9)] == [3, 3, 3]

    def test_a_list_is_indexed_by_attempt_and_its_last_entry_repeats(self):
        assert [delay_for_attempt([1, 5, 30], a) for a in range(1, 6)] == [1, 5, 30, 30, 30]

    def test_an_empty_list_is_no_delay(self):
        assert delay_for_attempt([], 1) == 0

    def test_a_callable_is_called_with_the_attempt(self):
        assert [delay_for_attempt(lambda a: a * 1.5, a) for a in (1, 2, 3)] == [1.5, 3, 4.5]

    def test_negative_delays_are_clamped(self):
        assert delay_for_attempt(-1, 1) == 0
        assert delay_for_attempt([-1, 2], 1) == 0
        assert delay_for_attempt(lambda a: -a, 2) == 0

    def test_attempts_count_from_one(self):
        with pytest.raises(ValueError, match="from 1"):
            delay_for_attempt(1, 0)


class TestRetryPolicy:
    def test_defaults_mean_no_retries(self):
        policy = RetryPolicy()
        assert (policy.retries, policy.retry_delay_seconds, policy.retry_jitter_factor) == (0, 0, None)

    def test_build_materializes_a_callable_for_every_possible_retry(self):
        policy = RetryPolicy.build(retries=4, retry_delay_seconds=exponential_backoff(2), retry_jitter_factor=0.1)
        assert policy.retry_delay_seconds == [2, 4, 8, 16]
        assert policy.retry_jitter_factor == 0.1

    def test_build_keeps_numbers_and_lists(self):
        assert RetryPolicy.build(2, 7).retry_delay_seconds == 7
        assert RetryPolicy.build(2, (1, 2)).retry_delay_seconds == [1, 2]

    def test_negative_delays_are_clamped(self):
        assert RetryPolicy(retries=1, retry_delay_seconds=-3).retry_delay_seconds == 0
        assert RetryPolicy(retries=1, retry_delay_seconds=[-3, 4]).retry_delay_seconds == [0, 4]

    def test_it_travels_as_json(self):
        policy = RetryPolicy.build(retries=3, retry_delay_seconds=lambda a: 10 * a, retry_jitter_factor=0.5)
        again = RetryPolicy.model_validate_json(policy.model_dump_json())
        assert again == policy
        assert again.retry_delay_seconds == [10, 20, 30]

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"retries": -1},
            {"retry_jitter_factor": -0.5},
            {"retry_delay_seconds": math.nan},
            {"retry_delay_seconds": "x"},
        ],
    )
    def test_invalid_policies_are_refused(self, kwargs):
        with pytest.raises(pydantic.ValidationError):
            RetryPolicy(**kwargs)


class TestNextRetryDelay:
    def test_without_jitter_it_is_the_configured_delay(self):
        policy = RetryPolicy(retries=3, retry_delay_seconds=[1, 2, 3])
        assert [next_retry_delay(policy, a) for a in (1, 2, 3)] == [1, 2, 3]

    def test_with_jitter_it_stays_in_bounds(self):
        policy = RetryPolicy.build(retries=5, retry_delay_seconds=exponential_backoff(4), retry_jitter_factor=0.3)
        rng = random.Random(42)
        for attempt in range(1, 6):
            base = 4 * 2 ** (attempt - 1)
            for _ in range(500):
                assert base <= next_retry_delay(policy, attempt, rng) <= base * 1.3


class TestPlanRetry:
    POLICY = RetryPolicy(retries=2, retry_delay_seconds=[5, 50])

    def test_retries_while_the_budget_lasts(self):
        assert plan_retry(self.POLICY, 1) == RetryPlan(attempt=1, retries=2, delay_seconds=5)
        assert plan_retry(self.POLICY, 2) == RetryPlan(attempt=2, retries=2, delay_seconds=50)
        assert plan_retry(self.POLICY, 3) is None

    def test_the_condition_can_veto(self):
        assert plan_retry(self.POLICY, 1, retriable=False) is None
        assert plan_retry(self.POLICY, 1, retriable=True) is not None

    def test_a_run_that_never_ran_does_not_retry(self):
        assert plan_retry(self.POLICY, 0) is None

    def test_no_retries_configured(self):
        assert plan_retry(RetryPolicy(), 1) is None

    def test_the_message(self):
        assert RetryPlan(attempt=1, retries=3, delay_seconds=10).message == "Attempt 1 of 4 failed; retry 1 of 3 in 10s"
        assert (
            RetryPlan(attempt=3, retries=3, delay_seconds=2.25).message == "Attempt 3 of 4 failed; retry 3 of 3 in 2.2s"
        )


class TestRetryState:
    def test_it_is_awaiting_retry_at_now_plus_the_delay(self):
        tid = uuid.uuid4()
        failed = State(
            type=StateType.FAILED,
            message="boom",
            state_details=StateDetails(transition_id=tid, retriable=True),
            data={"ref": "x"},
        )
        state = retry_state(failed, RetryPlan(attempt=1, retries=2, delay_seconds=7.5), NOW)
        assert (state.type, state.name) == (StateType.SCHEDULED, "AwaitingRetry")
        assert state.state_details.scheduled_time == NOW + timedelta(seconds=7.5)
        assert state.state_details.transition_id == tid
        assert state.state_details.retriable is None
        assert state.data == {"ref": "x"}
        assert state.message == "Attempt 1 of 3 failed; retry 1 of 2 in 7.5s: boom"
        assert failed.state_details.scheduled_time is None

    def test_the_longest_delay_is_still_a_valid_time(self):
        policy = RetryPolicy.build(retries=300, retry_delay_seconds=exponential_backoff(10), retry_jitter_factor=1)
        plan = plan_retry(policy, 300, rng=random.Random(0))
        assert plan is not None
        state = retry_state(State(type=StateType.FAILED), plan, NOW)
        assert state.state_details.scheduled_time is not None
        assert state.state_details.scheduled_time <= NOW + timedelta(seconds=2 * MAX_DELAY_SECONDS)
