"""Retry semantics: the one place that says whether a run retries, after how long, and with what jitter.

Everything that retries calls into this module, so that a retry means the same thing everywhere:

* the server's flow-run orchestration rule ``RetryFailedRuns`` (a proposed Failed becomes AwaitingRetry);
* the SDK engine, which orchestrates task runs in-process and builds the flow-run policy it sends;
* the HTTP client, which retries failed API requests with :func:`capped_exponential` + :func:`jittered`.

Vocabulary
----------

``attempt``
    The number of the *retry*, counted from 1: the first retry of a run is attempt 1. A run that has
    run ``run_count`` times and just failed is about to make retry number ``run_count``.

``retry_delay_seconds``
    A number (the same delay for every retry), a list of numbers (``delays[attempt - 1]``; attempts past
    the end of the list reuse its last entry), or a callable ``attempt -> seconds`` such as
    ``exponential_backoff(backoff_factor=10)``. Every delay is clamped to ``[0, MAX_DELAY_SECONDS]``.

``retry_jitter_factor``
    A non-negative fraction ``f``. The delay actually used is drawn uniformly from ``[d, d * (1 + f)]``
    (see :func:`jittered`): jitter only ever *adds* to the configured delay, so a configured minimum
    wait is honoured and runs that failed together spread out instead of retrying in lockstep.

Conditions
----------

A retry condition (the SDK's ``retry_condition_fn``) needs the live exception and run, so it is evaluated
in the process that ran the code. Its answer travels on the failed state as
``state.state_details.retriable``: ``False`` means "do not retry", ``None`` or ``True`` means "retry if
retries remain". :func:`plan_retry` is where that answer and the remaining budget are combined.

Wire form
---------

:class:`RetryPolicy` is what is stored with a run and sent over the wire, so it holds only numbers: a
callable delay is *materialized* by :meth:`RetryPolicy.build` into the list of its values for attempts
``1..retries`` (the only attempts that can ever happen). The server therefore computes exactly the delays
the user's callable would have produced, without running user code.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, field_validator

from headrace.schemas.states import State, StateType

__all__ = [
    "MAX_DELAY_SECONDS",
    "ExponentialBackoff",
    "RetryDelay",
    "RetryPlan",
    "RetryPolicy",
    "capped_exponential",
    "delay_for_attempt",
    "exponential_backoff",
    "jittered",
    "next_retry_delay",
    "plan_retry",
    "retry_state",
]

# What a user may pass as ``retry_delay_seconds``.
RetryDelay: TypeAlias = float | Sequence[float] | Callable[[int], float]

NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]


#: The longest delay any retry waits: one year. Longer ones (an uncapped backoff after many retries)
#: are clamped to it, which also keeps ``now + delay`` a valid datetime.
MAX_DELAY_SECONDS = 365 * 24 * 3600.0


def _check_finite(seconds: float, what: str) -> float:
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"{what} must be a finite number of seconds, got {seconds!r}")
    return float(seconds)


def _clamp(seconds: float, what: str = "a retry delay") -> float:
    """A delay clamped to ``[0, MAX_DELAY_SECONDS]``: negative means "at once"; NaN is an error."""
    if math.isnan(seconds):
        raise ValueError(f"{what} must be a number of seconds, got NaN")
    return min(max(0.0, float(seconds)), MAX_DELAY_SECONDS)


def jittered(delay: float, factor: float, rng: random.Random | None = None) -> float:
    """``delay`` spread upward by up to ``factor`` of itself: uniform on ``[d, d * (1 + factor)]``.

    Exactly: ``d = min(max(0, delay), MAX_DELAY_SECONDS)``; result ``= d * (1 + factor * u)`` with
    ``u = rng.random()`` in ``[0, 1)``. A negative ``delay`` is clamped to 0 (and stays 0); a factor of 0
    returns ``d`` unchanged.
    ``rng`` makes the spread reproducible (tests, simulations); without it the module's generator is used.
    """
    if factor < 0 or math.isnan(factor) or math.isinf(factor):
        raise ValueError(f"the jitter factor must be a finite number >= 0, got {factor!r}")
    base = _clamp(delay)
    if base == 0.0 or factor == 0.0:
        return base
    u = (rng or random).random()
    return base * (1.0 + factor * u)


def capped_exponential(attempt: int, base: float, cap: float | None = None) -> float:
    """``base * 2 ** (attempt - 1)``, at most ``cap``: 1 → base, 2 → 2·base, 3 → 4·base, …

    The building block of :class:`ExponentialBackoff` and of the HTTP client's request retries (which add
    :func:`jittered` with ``HEADRACE_CLIENT_RETRY_JITTER_FACTOR`` on top). ``attempt`` counts from 1.
    Large attempts saturate at ``cap`` instead of overflowing; without a cap, a value too large for a
    float is a ``ValueError`` (never infinity).
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    base = max(0.0, _check_finite(base, "the backoff base"))
    if cap is not None:
        cap = max(0.0, _check_finite(cap, "the backoff cap"))
    if attempt - 1 > 1023:  # 2.0 ** 1024 overflows a float
        if cap is None:
            raise ValueError(f"an uncapped exponential backoff overflows at attempt {attempt}; give it a cap")
        return cap if base > 0 else 0.0
    value = base * 2.0 ** (attempt - 1)
    if cap is not None and value > cap:
        return cap
    if math.isinf(value):
        raise ValueError(f"an uncapped exponential backoff overflows at attempt {attempt}; give it a cap")
    return value


@dataclass(frozen=True)
class ExponentialBackoff:
    """A delay callable: ``backoff_factor * 2 ** (attempt - 1)`` seconds, at most ``max_delay``
    (and never more than ``MAX_DELAY_SECONDS``).

    With ``backoff_factor=10``: 10 s, 20 s, 40 s, 80 s, … Made by :func:`exponential_backoff`.
    """

    backoff_factor: float
    max_delay: float | None = None

    def __post_init__(self) -> None:
        for what, value in (("backoff_factor", self.backoff_factor), ("max_delay", self.max_delay)):
            if value is not None and _check_finite(value, what) < 0:
                raise ValueError(f"{what} must be >= 0, got {value}")

    def __call__(self, attempt: int) -> float:
        cap = MAX_DELAY_SECONDS if self.max_delay is None else min(self.max_delay, MAX_DELAY_SECONDS)
        return capped_exponential(attempt, self.backoff_factor, cap)


def exponential_backoff(backoff_factor: float, max_delay: float | None = None) -> ExponentialBackoff:
    """Delays that double with each retry, for ``retry_delay_seconds=exponential_backoff(backoff_factor=10)``."""
    return ExponentialBackoff(backoff_factor=backoff_factor, max_delay=max_delay)


def delay_for_attempt(delay: RetryDelay, attempt: int) -> float:
    """The configured delay (before jitter) of retry number ``attempt`` (counted from 1), clamped to
    ``[0, MAX_DELAY_SECONDS]``."""
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    if callable(delay):
        return _clamp(delay(attempt))
    if isinstance(delay, (int, float)):
        return _clamp(delay)
    delays = list(delay)
    if not delays:
        return 0.0
    return _clamp(delays[min(attempt, len(delays)) - 1])


class RetryPolicy(BaseModel):
    """How a run retries, in wire form: numbers only, so the server can apply it without user code.

    Build one from SDK arguments with :meth:`build`, which materializes a callable delay.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    retries: int = Field(default=0, ge=0, description="How many times a failed run is retried.")
    retry_delay_seconds: NonNegative | list[NonNegative] = Field(
        default=0.0,
        description="Seconds before each retry: one number for all, or one per retry (the last one repeats).",
    )
    retry_jitter_factor: NonNegative | None = Field(
        default=None,
        description="Each delay is drawn uniformly from [d, d * (1 + factor)]. None or 0: no jitter.",
    )

    @field_validator("retry_delay_seconds", mode="before")
    @classmethod
    def _clamp_negative(cls, value: object) -> object:
        # Negative delays mean "retry at once"; clamp them here so every consumer sees the same number.
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return _clamp(value)
        if isinstance(value, (list, tuple)):
            return [_clamp(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in value]
        return value

    @classmethod
    def build(
        cls,
        retries: int = 0,
        retry_delay_seconds: RetryDelay = 0.0,
        retry_jitter_factor: float | None = None,
    ) -> RetryPolicy:
        """The policy for SDK-style arguments. A callable delay is evaluated for attempts ``1..retries``."""
        delay: float | list[float]
        if callable(retry_delay_seconds):
            delay = [delay_for_attempt(retry_delay_seconds, attempt) for attempt in range(1, retries + 1)]
        elif isinstance(retry_delay_seconds, (int, float)):
            delay = float(retry_delay_seconds)
        else:
            delay = [float(d) for d in retry_delay_seconds]
        return cls(retries=retries, retry_delay_seconds=delay, retry_jitter_factor=retry_jitter_factor)


def next_retry_delay(policy: RetryPolicy, attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``attempt``: the configured delay, then :func:`jittered`."""
    return jittered(delay_for_attempt(policy.retry_delay_seconds, attempt), policy.retry_jitter_factor or 0.0, rng)


@dataclass(frozen=True)
class RetryPlan:
    """The decision to retry: which retry this is, out of how many, and after how long."""

    attempt: int
    retries: int
    delay_seconds: float

    @property
    def message(self) -> str:
        """``"Attempt 1 of 4 failed; retry 1 of 3 in 10s"``: what the AwaitingRetry state says."""
        return (
            f"Attempt {self.attempt} of {self.retries + 1} failed; "
            f"retry {self.attempt} of {self.retries} in {_seconds(self.delay_seconds)}"
        )


def _seconds(value: float) -> str:
    return f"{value:.0f}s" if value == int(value) else f"{value:.1f}s"


def plan_retry(
    policy: RetryPolicy,
    run_count: int,
    *,
    retriable: bool | None = None,
    rng: random.Random | None = None,
) -> RetryPlan | None:
    """Whether a run that has now run ``run_count`` times and failed retries, and after how long.

    It retries when ``retriable`` is not ``False`` (the retry condition did not veto it) and
    ``run_count <= policy.retries`` (retries remain); the retry is attempt number ``run_count``.
    Returns ``None`` when it does not retry.
    """
    if retriable is False or run_count < 1 or run_count > policy.retries:
        return None
    return RetryPlan(attempt=run_count, retries=policy.retries, delay_seconds=next_retry_delay(policy, run_count, rng))


def retry_state(failed: State, plan: RetryPlan, now: datetime) -> State:
    """The AwaitingRetry state that replaces ``failed``: scheduled ``plan.delay_seconds`` after ``now``.

    Keeps the failure's data (its result reference) and its details (so a replayed proposal with the same
    ``transition_id`` is recognised), and puts the failure's own message after the retry message.
    """
    message = plan.message if not failed.message else f"{plan.message}: {failed.message}"
    details = failed.state_details.model_copy(
        update={"scheduled_time": now + timedelta(seconds=plan.delay_seconds), "retriable": None}
    )
    return State(
        type=StateType.SCHEDULED,
        name="AwaitingRetry",
        timestamp=now,
        message=message,
        state_details=details,
        data=failed.data,
    )
