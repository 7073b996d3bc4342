"""Flow runs: orchestrated by the server, one proposal per transition.

:func:`flow_run_steps` is the whole life of a flow run as one generator (see :mod:`headrace.engine.effects`).
Its API calls, for a run that simply runs and ends:

1. ``create_flow_run`` — created directly in Running (its parameters, tags and flow-level retry policy
   travel with it, so the server's ``RetryFailedRuns`` rule can retry it);
2. ``set_flow_run_state`` — the final state.

That is two calls for a whole flow run, whatever it does inside: task runs are reported as records through
the spool (:mod:`headrace.engine.reporting`), never one call each. Every answer is honoured: WAIT → sleep
``retry_after`` and propose again; REJECT → the returned state is the run's state (a concurrency limit
makes it AwaitingConcurrencySlot, and the engine waits and claims it again); a final Failed turned into
AwaitingRetry by the server → wait until its scheduled time, claim (Pending), Running, and run the function
again. Subflows are flow runs like any other, linked to the parent by a task run recorded in the parent.

How the final state is decided is :func:`final_state` (documented in ``docs/flows.md``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from headrace.context import (
    FlowRunContext,
    FlowRunInfo,
    RunDefaults,
    RunTracker,
    TaskRunContext,
    TaskRunInfo,
    flow_run_context,
)
from headrace.engine.effects import Api, Await, Invoke, Sleep, Steps, drive_async, drive_sync
from headrace.engine.ids import new_id
from headrace.engine.reporting import report_flow_run_state, report_task_run_state
from headrace.exceptions import FlowRunTimeoutError, ParameterValidationError
from headrace.futures import HeadraceFuture, resolved
from headrace.schemas.runs import OrchestrationStatus
from headrace.schemas.states import StateType
from headrace.states import Cancelled, Completed, Crashed, Failed, Pending, Running, State, TimedOut, to_sdk_state

if TYPE_CHECKING:
    from headrace.engine.api import EngineApi
    from headrace.flows import Flow
    from headrace.schemas.runs import FlowRun
    from headrace.settings import Settings

__all__ = ["call_flow", "final_state", "flow_run_steps"]

logger = logging.getLogger("headrace.engine")

_FAILED_TYPES = (StateType.FAILED, StateType.CRASHED, StateType.CANCELLED)


@dataclass
class FlowCall:
    flow: Flow[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    settings: Settings
    api: EngineApi
    parent_flow: FlowRunContext | None
    parent_task: TaskRunContext | None


# -- the final state ---------------------------------------------------------------------------------


def _states_in(value: Any, found: list[State]) -> None:
    if isinstance(value, HeadraceFuture):
        value.observed = True
        value.wait()
        found.append(value.state)
    elif isinstance(value, State):
        found.append(value)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _states_in(item, found)
    elif isinstance(value, dict):
        for item in value.values():
            _states_in(item, found)


def _first_error(states: list[State]) -> BaseException | None:
    for state in states:
        error = state.result(raise_on_failure=False) if state.type in _FAILED_TYPES else None
        if isinstance(error, BaseException):
            return error
    return None


def final_state(value: Any, error: BaseException | None, futures: list[HeadraceFuture[Any]]) -> State:  # noqa: PLR0911
    """How a flow run ended, from what its function did (see ``docs/flows.md``):

    1. it raised: Failed (TimedOut for its timeout; Crashed for ``KeyboardInterrupt``/``SystemExit``;
       Cancelled for task cancellation), holding the exception;
    2. it returned a state: that state;
    3. it returned futures or states (also inside lists, tuples, sets, dicts): Failed if any of them did
       not complete, else Completed with their results in place;
    4. otherwise Completed with the return value — unless a task run it *submitted* failed and its future
       was never looked at (no ``result()``, ``wait()``, ``state``, not passed on, not returned): a failure
       nobody handled fails the flow. Failures the flow handled (a caught exception from a task call, a
       future whose result it asked for) do not.
    """
    if error is not None:
        if isinstance(error, FlowRunTimeoutError):
            return TimedOut(message=str(error)).with_value(error)
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            return Crashed(message=f"Flow run was interrupted: {type(error).__name__}").with_value(error)
        if isinstance(error, asyncio.CancelledError):
            return Cancelled(message="Flow run was cancelled").with_value(error)
        return Failed(message=f"Flow run encountered an exception {type(error).__name__}: {error}").with_value(error)
    if isinstance(value, State):  # the flow's state follows it: same type, name, message, result
        state = State(type=value.type, name=value.name, message=value.message, data=value.data)
        if value.has_value:
            state.with_value(value.result(raise_on_failure=False))
        return state
    found: list[State] = []
    _states_in(value, found)
    if found:
        failed = [state for state in found if state.type in _FAILED_TYPES]
        if failed:
            return Failed(message=f"{len(failed)}/{len(found)} states failed.").with_value(_first_error(failed))
        return Completed().with_value(resolved(value))
    unhandled = [future for future in futures if not future.observed and future.peek_state().type in _FAILED_TYPES]
    if unhandled:
        names = ", ".join(repr(future.name) for future in unhandled[:5]) + (", …" if len(unhandled) > 5 else "")
        states = [future.peek_state() for future in unhandled]
        return Failed(
            message=f"{len(unhandled)} submitted task run(s) failed and their futures were never resolved: {names}"
        ).with_value(_first_error(states))
    return Completed().with_value(value)


# -- talking to the server ---------------------------------------------------------------------------


def _propose(api: EngineApi, info: FlowRunInfo, state: State) -> Steps[State]:
    """Propose ``state`` until the server decides; return the run's state afterwards."""
    state.state_details.flow_run_id = info.id
    state.state_details.transition_id = new_id()
    while True:
        answer = yield Api(api, "set_flow_run_state", (info.id, state))
        if answer.status is OrchestrationStatus.WAIT:
            yield Sleep(answer.retry_after if answer.retry_after is not None else 1.0)
            continue
        new = to_sdk_state(answer.state) if answer.state is not None else state
        if new.type is state.type and state.has_value and not new.has_value:
            new.with_value(state.result(raise_on_failure=False))
        if answer.status is OrchestrationStatus.ACCEPT or new.id != (info.state.id if info.state else None):
            report_flow_run_state(info, new)
        if answer.status is not OrchestrationStatus.ACCEPT:
            _flow_logger(info).debug(
                "Proposed %s; the server answered %s: %s", state.name, answer.status.value, answer.reason
            )
        return new


def _until_running(api: EngineApi, info: FlowRunInfo, state: State | None) -> Steps[State]:
    """From wherever the run is (Scheduled, AwaitingRetry, AwaitingConcurrencySlot, Pending) to Running."""
    while state is None or state.type is not StateType.RUNNING:
        if state is not None and (state.is_final() or state.type is StateType.PAUSED):
            return state
        if state is not None and state.type is StateType.CANCELLING:
            return (yield from _propose(api, info, Cancelled(message="Cancelled before it started running")))
        if state is None or state.type is StateType.SCHEDULED:
            when = state.state_details.scheduled_time if state is not None else None
            if when is not None:
                wait = (when - datetime.now(timezone.utc)).total_seconds()
                if wait > 0:
                    yield Sleep(wait)
            state = yield from _propose(api, info, Pending())
        else:  # Pending
            state = yield from _propose(api, info, Running())
    return state


def _flow_logger(info: FlowRunInfo) -> logging.LoggerAdapter[logging.Logger]:
    from headrace.run_logging import flow_run_logger

    return flow_run_logger(info)


# -- the run itself ------------------------------------------------------------------------------------


def flow_run_steps(call: FlowCall) -> Steps[State]:  # noqa: PLR0912, PLR0915 - one readable story, top to bottom
    """The life of one flow run (see the module docstring). Returns its final state."""
    from headrace.schemas.runs import FlowRunCreate
    from headrace.task_runners import resolve_task_runner

    flow, api = call.flow, call.api
    parent_context = call.parent_task or call.parent_flow
    parent_flow_run = (
        call.parent_task.flow_run if call.parent_task else (call.parent_flow.flow_run if call.parent_flow else None)
    )
    inherited = parent_context.defaults if parent_context is not None else RunDefaults()
    defaults = RunDefaults(
        persist_result=flow.persist_result if flow.persist_result is not None else inherited.persist_result,
        storage=flow.result_storage or inherited.storage,
        serializer=flow.result_serializer or inherited.serializer,
        log_prints=flow.log_prints if flow.log_prints is not None else inherited.log_prints,
    )
    tags = list(dict.fromkeys([*(parent_flow_run.tags if parent_flow_run else []), *flow.tags]))
    info = FlowRunInfo(id=new_id(), name="", flow_name=flow.name, parameters={}, tags=tags)
    policy = flow.retry_policy
    create = {
        "id": info.id,
        "flow_name": flow.name,
        "tags": tags,
        "max_retries": policy.retries,
        "retry_delay_seconds": policy.retry_delay_seconds or 0.0,
        "retry_jitter_factor": policy.retry_jitter_factor,
    }

    # 1. parameters: a bad call is recorded as a failed run, then raised
    try:
        info.parameters = flow.validate_parameters(flow.bind(call.args, call.kwargs))
    except ParameterValidationError as exc:
        info.name = _name_or_default(flow, info, None)
        failed = Failed(message=f"Validation of flow parameters failed: {exc}")
        yield Api(api, "create_flow_run", (FlowRunCreate(**create, name=info.name, state=failed),))
        raise
    tracker = RunTracker()
    context = FlowRunContext(
        flow=flow,
        flow_run=info,
        settings=call.settings,
        api=api,
        task_runner=resolve_task_runner(flow.task_runner).duplicate(),
        tracker=tracker,
        defaults=defaults,
    )
    info.name = _name_or_default(flow, info, context)

    # 2. a subflow is a task run of its parent, too
    parent_task_run: TaskRunInfo | None = None
    if parent_flow_run is not None:
        key = f"subflow:{flow.name}"[:400]
        parent_task_run = TaskRunInfo(
            id=new_id(),
            name=info.name,
            task_name=flow.name,
            task_key=key,
            dynamic_key=call.parent_flow.tracker.next_dynamic_key(key) if call.parent_flow else new_id().hex[:8],
            flow_run_id=parent_flow_run.id,
            parameters=info.parameters,
            tags=tags,
            run_count=1,
        )
        info.parent_task_run_id = parent_task_run.id
        report_task_run_state(parent_task_run, Running())

    # 3. create it, Running
    running = Running()
    running.state_details.transition_id = new_id()
    try:
        flow_run: FlowRun = yield Api(
            api,
            "create_flow_run",
            (
                FlowRunCreate(
                    **create,
                    name=info.name,
                    parameters=_jsonable(info.parameters),
                    state=running,
                    parent_task_run_id=info.parent_task_run_id,
                ),
            ),
        )
    except Exception as exc:
        if parent_task_run is not None:
            report_task_run_state(parent_task_run, Crashed(message=f"The subflow run could not be created: {exc}"))
        raise
    info.run_count = max(flow_run.run_count, 1)
    state = yield from _until_running(api, info, to_sdk_state(flow_run.state) if flow_run.state else None)
    if state.type is StateType.RUNNING:
        report_flow_run_state(info, state)
    log = _flow_logger(info)

    # 4. run the function, as often as the server's retry rule says
    error: BaseException | None = None
    while state.type is StateType.RUNNING:
        log.info("Beginning flow run %r for flow %r", info.name, flow.name)
        args, kwargs = _call_arguments(flow, info.parameters)
        value: Any = None
        error = None
        try:
            with flow_run_context(context):
                token = _log_prints_on(defaults.log_prints)
                try:
                    value = yield Invoke(
                        flow.fn,
                        args,
                        kwargs,
                        flow.timeout_seconds,
                        FlowRunTimeoutError,
                        f"Flow run {info.name!r} exceeded its timeout of {flow.timeout_seconds} s",
                    )
                finally:
                    _log_prints_off(token)
        except GeneratorExit:
            raise
        except BaseException as exc:
            error = exc
        if isinstance(error, (asyncio.CancelledError, KeyboardInterrupt, SystemExit)) and context.task_runner.started:
            context.task_runner.cancel_pending()  # a cancelled or interrupted flow run starts nothing more
        # every task run it submitted finishes before the flow run does (runs submitted by its tasks too)
        while pending := [future.wrapped for future in tracker.futures if not future.done()]:
            try:
                yield Await(pending)
            except BaseException as exc:
                error = error or exc
                break
        if context.task_runner.started:
            context.task_runner.shutdown(wait=True)
        outcome = final_state(value, error, tracker.futures)
        if outcome.type is StateType.COMPLETED and defaults.persist_result and outcome.data is None:
            outcome = _persisted(outcome, defaults, call.settings, log)
        state = yield from _propose(api, info, outcome)
        if state.type is StateType.SCHEDULED:  # the server's retry rule: AwaitingRetry
            log.warning("%s", state.message)
            state = yield from _until_running(api, info, state)
            info.run_count += 1
            tracker = RunTracker()
            context.tracker = tracker
            context.task_runner = context.task_runner.duplicate()
            continue
        if state.type in _FAILED_TYPES:
            # the traceback only for the flow's own exception: a task's was logged by its task run
            log.error("Finished in state %s: %s", state.name, state.message, exc_info=error if error else None)
        else:
            log.info("Finished in state %s", state.name)

    # 5. tell the parent and the hooks
    if parent_task_run is not None:
        parent_state = Completed() if state.type is StateType.COMPLETED else Failed(message=state.message)
        if state.type is StateType.CRASHED:
            parent_state = Crashed(message=state.message)
        report_task_run_state(parent_task_run, parent_state)
    hooks = {
        StateType.COMPLETED: flow.on_completion_hooks,
        StateType.FAILED: flow.on_failure_hooks,
        StateType.CRASHED: flow.on_crashed_hooks,
        StateType.CANCELLED: flow.on_cancellation_hooks,
    }.get(state.type, [])
    for hook in hooks:
        try:
            with flow_run_context(context):
                yield Invoke(hook, (flow, info, state))
        except Exception:
            log.exception("State hook %s raised; the run's state is unchanged", getattr(hook, "__name__", hook))
    if isinstance(error, (KeyboardInterrupt, SystemExit, asyncio.CancelledError)):
        raise error
    return state


def _name_or_default(flow: Flow[..., Any], info: FlowRunInfo, context: FlowRunContext | None) -> str:
    from headrace.flows import generate_run_name

    template = flow.flow_run_name
    if template is None or context is None:
        return generate_run_name()
    try:
        if callable(template):
            with flow_run_context(context):
                name = str(template())
        else:
            name = template.format(**info.parameters)
    except (KeyError, IndexError, AttributeError, ValueError) as exc:
        raise ValueError(f"flow {flow.name!r}: flow_run_name {template!r} cannot be filled in: {exc}") from None
    return (name or generate_run_name())[:200]


def _call_arguments(flow: Flow[..., Any], parameters: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    import inspect

    bound = inspect.BoundArguments(flow.signature, parameters)
    return bound.args, bound.kwargs


def _jsonable(parameters: dict[str, Any]) -> dict[str, Any]:
    from pydantic_core import to_jsonable_python

    return dict(to_jsonable_python(parameters, fallback=repr))


def _persisted(state: State, defaults: RunDefaults, settings: Settings, log: logging.LoggerAdapter[Any]) -> State:
    from headrace.engine.task_run import result_store

    value = state.result()
    try:
        reference = result_store(None, None, defaults, settings).write(value)
    except Exception as exc:
        return Failed(message=f"The flow run's result could not be persisted: {exc}").with_value(exc)
    state.data = reference.to_data()
    return state


def _log_prints_on(enabled: bool) -> Any:
    if not enabled:
        return None
    from headrace.run_logging import set_log_prints

    return set_log_prints(True)


def _log_prints_off(token: Any) -> None:
    if token is not None:
        from headrace.run_logging import reset_log_prints

        reset_log_prints(token)


# -- entry points --------------------------------------------------------------------------------------


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _prepare(flow: Flow[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> FlowCall:
    parent_flow = FlowRunContext.get()
    parent_task = TaskRunContext.get()
    if parent_flow is not None:
        settings, api = parent_flow.settings, parent_flow.api
    else:
        from headrace.engine.api import current_settings, engine_api, prepare_process

        settings = parent_task.settings if parent_task is not None else current_settings()
        prepare_process(settings)
        api = engine_api(settings)
    return FlowCall(flow, args, kwargs, settings, api, parent_flow, parent_task)


def call_flow(flow: Flow[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], *, return_state: bool) -> Any:
    """``flow(...)``: run it. An async flow gives a coroutine, except inside a running synchronous run."""
    in_run = FlowRunContext.get() is not None or TaskRunContext.get() is not None
    if flow.isasync and (_loop_running() or not in_run):
        return _call_flow_async(flow, args, kwargs, return_state)
    state = drive_sync(flow_run_steps(_prepare(flow, args, kwargs)))
    return state if return_state else state.result()


async def _call_flow_async(
    flow: Flow[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], return_state: bool
) -> Any:
    state = await drive_async(flow_run_steps(_prepare(flow, args, kwargs)))
    return state if return_state else state.result()
