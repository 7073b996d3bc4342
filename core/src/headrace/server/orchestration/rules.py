"""The flow-run orchestration rules, each small and named, and the policy that orders them.

docs/orchestration.md is the prose version of this module: the order, the transition table, and what
every rejection says. Keep the two in step.
"""

from __future__ import annotations

from datetime import timedelta

from headrace.retries import plan_retry, retry_state
from headrace.schemas.states import TERMINAL_STATE_TYPES, State, StateDetails, StateType
from headrace.server.orchestration.core import ANY_STATE, Decision, Rule, TransitionContext, holds_concurrency_slot

__all__ = [
    "ALLOWED_TRANSITIONS",
    "FLOW_RUN_POLICY",
    "HandleCancellation",
    "HandlePausing",
    "HandleResuming",
    "HonourConcurrencyLimits",
    "KeepTerminalStatesTerminal",
    "OneClaimerWinsPending",
    "PreventDuplicateTransitions",
    "PreventIllegalTransitions",
    "RespectScheduledTime",
    "RetryFailedRuns",
]

S = StateType
AWAITING_RETRY = "AwaitingRetry"
AWAITING_CONCURRENCY_SLOT = "AwaitingConcurrencySlot"
_NON_TERMINAL: frozenset[StateType | None] = frozenset([None, *(t for t in S if not t.is_terminal)])

#: What a caller may propose from each non-terminal state (``None``: the run has no state yet). Terminal
#: states are :class:`KeepTerminalStatesTerminal`'s business. A same-type proposal that is a duplicate is
#: :class:`PreventDuplicateTransitions`' business; Scheduled → Scheduled is a reschedule (or Late).
ALLOWED_TRANSITIONS: dict[StateType | None, frozenset[StateType]] = {
    None: frozenset({S.SCHEDULED, S.PENDING, S.RUNNING, S.COMPLETED, S.FAILED, S.CRASHED, S.CANCELLED}),
    S.SCHEDULED: frozenset({S.SCHEDULED, S.PENDING, S.CANCELLING, S.CANCELLED}),
    S.PENDING: frozenset({S.SCHEDULED, S.RUNNING, S.COMPLETED, S.FAILED, S.CRASHED, S.CANCELLING, S.CANCELLED}),
    S.RUNNING: frozenset({S.PAUSED, S.COMPLETED, S.FAILED, S.CRASHED, S.CANCELLING, S.CANCELLED}),
    S.PAUSED: frozenset({S.SCHEDULED, S.RUNNING, S.FAILED, S.CRASHED, S.CANCELLING, S.CANCELLED}),
    S.CANCELLING: frozenset({S.CANCELLED, S.COMPLETED, S.FAILED, S.CRASHED}),
}

# What to do instead, for the illegal transitions people are most likely to try.
_HINTS: dict[tuple[StateType | None, StateType], str] = {
    (S.SCHEDULED, S.RUNNING): "claim it first by proposing Pending",
    (S.SCHEDULED, S.COMPLETED): "it has not started; cancel it instead",
    (S.SCHEDULED, S.FAILED): "it has not started; claim it (Pending) before reporting how it ended",
    (S.SCHEDULED, S.CRASHED): "it has not started, so there is no process to crash",
    (S.RUNNING, S.SCHEDULED): "propose Failed: the server decides whether the run retries",
    (S.PAUSED, S.PENDING): "resume it by proposing Running (or Scheduled, if it was suspended)",
    (S.PAUSED, S.COMPLETED): "resume it first",
}
_CANCELLING_HINT = "cancellation was requested, so the run can only end (as Cancelled)"
_NEW_RUN_HINT = "a new run starts as Scheduled, Pending or Running"


def _label(state: State | None) -> str:
    if state is None:
        return "(no state)"
    if state.name == state.type.default_name:
        return state.name
    return f"{state.name} ({state.type.default_name})"


def _seconds(value: float) -> str:
    return f"{value:.0f}s" if value == int(value) else f"{value:.1f}s"


def _with_details(state: State, **changes: object) -> State:
    return state.model_copy(update={"state_details": state.state_details.model_copy(update=changes)})


class PreventDuplicateTransitions(Rule):
    """A proposal of the state the run is already in is rejected; a replay of the same transition is not.

    * the proposal's ``transition_id`` equals the current state's (a client retrying a request whose
      answer it lost): accepted again without writing anything, answered with the current state;
    * same type and name as the current state: rejected with "The run is already <name>". A Scheduled
      proposal with a different ``scheduled_time`` is a reschedule, not a duplicate.
    """

    from_types = frozenset(S)

    def apply(self, ctx: TransitionContext) -> Decision:
        current, proposed = ctx.current, ctx.proposed
        assert current is not None  # from_types excludes "no state"
        tid = proposed.state_details.transition_id
        if tid is not None and tid == current.state_details.transition_id:
            return Decision.already_applied(ctx, f"Transition {tid} was already applied.")
        if current.type is not proposed.type or current.name != proposed.name:
            return Decision.accept(ctx)
        if (
            proposed.type is S.SCHEDULED
            and proposed.state_details.scheduled_time is not None
            and proposed.state_details.scheduled_time != current.state_details.scheduled_time
        ):
            return Decision.accept(ctx)
        if proposed.type is S.PENDING:
            return Decision.reject(ctx, "The run is already Pending: another claimer won it.")
        return Decision.reject(ctx, f"The run is already {_label(current)}.")


class OneClaimerWinsPending(Rule):
    """Pending is the claim: only a run that is not yet claimed (Scheduled, or new) can enter it.

    A Pending proposal for a run that is Pending, Running, Paused or Cancelling is rejected: someone
    else claimed it first. The database layer makes the read-decide-write atomic (row lock), so of two
    concurrent claimers exactly one sees Scheduled.
    """

    from_types = frozenset({S.PENDING, S.RUNNING, S.PAUSED, S.CANCELLING})
    to_types = frozenset({S.PENDING})

    def apply(self, ctx: TransitionContext) -> Decision:
        return Decision.reject(
            ctx, f"The run was already claimed: it is {_label(ctx.current)}. Only one claimer wins Pending."
        )


class KeepTerminalStatesTerminal(Rule):
    """Completed, Failed, Crashed and Cancelled are final, except for an explicit retry or rerun.

    Accepted out of a terminal state: a Scheduled state named AwaitingRetry (a manual retry, which keeps
    the run count) or a Scheduled state with ``state_details.rerun`` (a rerun, which starts the counters
    afresh). Everything else is rejected.
    """

    from_types = frozenset(TERMINAL_STATE_TYPES)

    def apply(self, ctx: TransitionContext) -> Decision:
        proposed = ctx.proposed
        if proposed.type is S.SCHEDULED and (proposed.name == AWAITING_RETRY or proposed.state_details.rerun):
            return Decision.accept(ctx)
        return Decision.reject(
            ctx,
            f"The run is {_label(ctx.current)}, a terminal state, and stays so. To run it again propose "
            "AwaitingRetry (a retry) or a Scheduled state with rerun set (a rerun).",
        )


class PreventIllegalTransitions(Rule):
    """Only the transitions in :data:`ALLOWED_TRANSITIONS` may be proposed from a non-terminal state.

    Also: AwaitingRetry is not proposed by callers of a run that has not finished (the retry rule makes
    it out of a Failed proposal), and ``rerun`` is only for finished runs.
    """

    from_types = _NON_TERMINAL

    def apply(self, ctx: TransitionContext) -> Decision:
        current, proposed = ctx.current, ctx.proposed
        source = ctx.current_type
        if proposed.name == AWAITING_RETRY and proposed.type is S.SCHEDULED:
            return Decision.reject(
                ctx,
                f"Illegal transition {_label(current)} → AwaitingRetry: a run that has not finished retries "
                "when it fails (propose Failed and the retry rule decides); AwaitingRetry may only be proposed "
                "to retry a finished run.",
            )
        if proposed.type not in ALLOWED_TRANSITIONS[source]:
            if source is None:
                hint = _NEW_RUN_HINT
            elif source is S.CANCELLING:
                hint = _CANCELLING_HINT
            else:
                hint = _HINTS.get((source, proposed.type), "")
            allowed = ", ".join(sorted(t.default_name for t in ALLOWED_TRANSITIONS[source]))
            return Decision.reject(
                ctx,
                f"Illegal transition {_label(current)} → {_label(proposed)}"
                + (f": {hint}." if hint else ".")
                + f" Allowed from {_label(current)}: {allowed}.",
            )
        if proposed.state_details.rerun:
            return Decision.reject(ctx, f"Only a finished run can be rerun; the run is {_label(current)}.")
        return Decision.accept(ctx)


class RespectScheduledTime(Rule):
    """A Scheduled run is not claimed before its time; a Scheduled proposal always has a time.

    * Pending (or Running) proposed for a Scheduled run whose scheduled time is later than ``now``:
      WAIT, with ``retry_after`` the seconds until then;
    * a Scheduled proposal without ``scheduled_time`` is scheduled for ``now``.
    """

    to_types = frozenset({S.SCHEDULED, S.PENDING, S.RUNNING})

    def apply(self, ctx: TransitionContext) -> Decision:
        proposed = ctx.proposed
        if proposed.type is S.SCHEDULED:
            if proposed.state_details.scheduled_time is None:
                return Decision.accept(ctx, _with_details(proposed, scheduled_time=ctx.now))
            return Decision.accept(ctx)
        if ctx.current_type is not S.SCHEDULED:
            return Decision.accept(ctx)
        when = ctx.effective_scheduled_time
        if when is None or when <= ctx.now:
            return Decision.accept(ctx)
        seconds = (when - ctx.now).total_seconds()
        return Decision.wait(
            ctx,
            f"The run is scheduled for {when.isoformat()}: it cannot start for another {_seconds(seconds)}.",
            retry_after=seconds,
        )


class HandleCancellation(Rule):
    """Cancellation ends as Cancelled.

    * Cancelling proposed for a run with no process (Scheduled, or suspended) becomes Cancelled at once:
      nothing would ever acknowledge the Cancelling;
    * Completed, Failed or Crashed proposed for a Cancelling run becomes Cancelled: the run ended before
      it noticed, but the user asked for it to stop, so it is not retried and reads as Cancelled. The
      message says how it ended, and the state keeps its data.
    """

    from_types = frozenset({S.SCHEDULED, S.PAUSED, S.CANCELLING})
    to_types = frozenset({S.CANCELLING, S.COMPLETED, S.FAILED, S.CRASHED})

    def apply(self, ctx: TransitionContext) -> Decision:
        current, proposed = ctx.current, ctx.proposed
        assert current is not None
        if proposed.type is S.CANCELLING:
            suspended = current.type is S.PAUSED and current.state_details.pause_reschedule
            if current.type is S.SCHEDULED or suspended:
                where = "before it started" if current.type is S.SCHEDULED else "while suspended"
                return Decision.accept(ctx, self._cancelled(proposed, f"Cancelled {where}"))
            return Decision.accept(ctx)
        if current.type is S.CANCELLING:
            return Decision.accept(
                ctx, self._cancelled(proposed, f"Cancelled: the run ended as {proposed.name} after cancellation")
            )
        return Decision.accept(ctx)

    @staticmethod
    def _cancelled(proposed: State, message: str) -> State:
        return State(
            type=S.CANCELLED,
            message=f"{message}: {proposed.message}" if proposed.message else f"{message}.",
            state_details=proposed.state_details,
            data=proposed.data,
        )


class RetryFailedRuns(Rule):
    """A Running run that fails with retries left becomes AwaitingRetry, scheduled after the retry delay.

    Retries remain when ``run.run_count <= retry_policy.retries``, and the failure is retriable unless
    its ``state_details.retriable`` is ``False`` (the SDK's retry condition said no). Delay, backoff and
    jitter come from :mod:`headrace.retries` (``plan_retry``), the same function the SDK uses. Crashed
    runs are not retried (the process died, not the code), nor are failures before Running.
    """

    from_types = frozenset({S.RUNNING})
    to_types = frozenset({S.FAILED})

    def apply(self, ctx: TransitionContext) -> Decision:
        plan = plan_retry(
            ctx.retry_policy, ctx.run.run_count, retriable=ctx.proposed.state_details.retriable, rng=ctx.rng
        )
        if plan is None:
            return Decision.accept(ctx)
        return Decision.accept(ctx, retry_state(ctx.proposed, plan, ctx.now))


class HandlePausing(Rule):
    """Running → Paused: a pause has a timeout, fires once per key, and suspends only deployed runs.

    * no ``pause_timeout``: it is set to ``now + pause_timeout_seconds`` (default one hour);
    * a ``pause_timeout`` already past: rejected, the run keeps running;
    * a ``pause_key`` the run has paused on before: rejected ("already fired"), the run keeps running;
    * ``pause_reschedule`` (suspend: the process exits and the run is rescheduled on resume) without a
      deployment to run it again: ABORT.
    """

    from_types = frozenset({S.RUNNING})
    to_types = frozenset({S.PAUSED})

    def apply(self, ctx: TransitionContext) -> Decision:
        details = ctx.proposed.state_details
        if details.pause_reschedule and not ctx.has_deployment:
            return Decision.abort(
                ctx, "A run can be suspended (paused with reschedule) only if it has a deployment to run it again."
            )
        if details.pause_key is not None and details.pause_key in ctx.run.pause_keys:
            return Decision.reject(ctx, f"The pause {details.pause_key!r} has already fired; the run continues.")
        if details.pause_timeout is None:
            timeout = ctx.now + timedelta(seconds=ctx.pause_timeout_seconds)
            return Decision.accept(ctx, _with_details(ctx.proposed, pause_timeout=timeout))
        if details.pause_timeout <= ctx.now:
            return Decision.reject(
                ctx, f"The pause timeout {details.pause_timeout.isoformat()} has already passed; the run continues."
            )
        return Decision.accept(ctx)


class HandleResuming(Rule):
    """Paused → Running or Scheduled: a resume, allowed only before the pause times out.

    * past ``pause_timeout``: rejected, and the run is failed ("The pause timed out …");
    * a run paused in place (its process waits) resumes by proposing Running;
    * a suspended run (``pause_reschedule``: no process) resumes by proposing Scheduled, so that it is
      claimed and started again.
    """

    from_types = frozenset({S.PAUSED})
    to_types = frozenset({S.RUNNING, S.SCHEDULED})

    def apply(self, ctx: TransitionContext) -> Decision:
        current = ctx.current
        assert current is not None
        timeout = current.state_details.pause_timeout
        if timeout is not None and ctx.now >= timeout:
            failed = State(
                type=S.FAILED,
                timestamp=ctx.now,
                message=f"The pause timed out at {timeout.isoformat()}; the run can no longer be resumed.",
                state_details=StateDetails(flow_run_id=current.state_details.flow_run_id),
            )
            return Decision.reject(ctx, failed.message or "", state=failed)
        suspended = current.state_details.pause_reschedule
        if suspended and ctx.proposed.type is S.RUNNING:
            return Decision.reject(
                ctx, "The run was suspended and has no process to resume it: propose Scheduled to resume it."
            )
        if not suspended and ctx.proposed.type is S.SCHEDULED:
            return Decision.reject(
                ctx, "The run is paused in place and its process is waiting: propose Running to resume it."
            )
        return Decision.accept(ctx)


class HonourConcurrencyLimits(Rule):
    """A run takes its concurrency slots when claimed (Pending, or Running with no claim before).

    When there is no free slot the claim is rejected *into* ``AwaitingConcurrencySlot`` (a Scheduled
    state ``concurrency_retry_seconds`` from now, written), and ``retry_after`` says when to try again:
    the run is visibly waiting, and claimers come back at its new scheduled time. Slots are given back
    when the run leaves the states that hold them, whichever rule decided that (see
    :func:`~headrace.server.orchestration.core.holds_concurrency_slot`). Keep this rule last: after it
    acquires, nothing may refuse.
    """

    from_types = ANY_STATE
    to_types = frozenset({S.PENDING, S.RUNNING})

    def apply(self, ctx: TransitionContext) -> Decision:
        slots, names = ctx.concurrency_slots, ctx.concurrency_limit_names
        if slots is None or not names or holds_concurrency_slot(ctx.current):
            return Decision.accept(ctx)
        if not ctx.holder:
            raise ValueError("TransitionContext.holder (the flow run id) is required with concurrency limits")
        if slots.acquire(names, ctx.holder):
            return Decision.accept(ctx)
        delay = max(0.0, ctx.concurrency_retry_seconds)
        when = ctx.now + timedelta(seconds=delay)
        reason = (
            f"No free slot in concurrency limit {', '.join(names)}: the run waits as AwaitingConcurrencySlot "
            f"until {when.isoformat()}."
        )
        waiting = State(
            type=S.SCHEDULED,
            name=AWAITING_CONCURRENCY_SLOT,
            timestamp=ctx.now,
            message=reason,
            state_details=StateDetails(flow_run_id=ctx.proposed.state_details.flow_run_id, scheduled_time=when),
        )
        return Decision.reject(ctx, reason, state=waiting, retry_after=delay)


#: The flow-run policy, in order. Validation first (duplicates, claims, terminal, table), then the rules
#: that shape an accepted proposal, and concurrency last because it takes slots.
FLOW_RUN_POLICY: tuple[Rule, ...] = (
    PreventDuplicateTransitions(),
    OneClaimerWinsPending(),
    KeepTerminalStatesTerminal(),
    PreventIllegalTransitions(),
    RespectScheduledTime(),
    HandleCancellation(),
    RetryFailedRuns(),
    HandlePausing(),
    HandleResuming(),
    HonourConcurrencyLimits(),
)
