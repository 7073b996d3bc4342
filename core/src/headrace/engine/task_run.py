"""Task runs: orchestrated here, in the process that runs them.

:func:`task_run_steps` is the whole life of a task run as one generator (see :mod:`headrace.engine.effects`):
wait for dependencies → resolve arguments → look up the cache → Running → call the function under its
timeout → on failure ask ``retry_condition_fn`` and :func:`headrace.retries.plan_retry`, wait, Retrying, call
again → persist the result → the final state → hooks. Every state change is one record reported through
:mod:`headrace.engine.reporting` (no API call).

The entry points are what ``Task.__call__``, ``Task.submit`` and ``Task.map`` call: :func:`call_task` drives
the steps in the caller (sync shell, or async shell for an async task in a running loop), and
:mod:`headrace.engine.submission` hands them to the flow's task runner once the run's dependencies are done,
where :func:`execute_call` drives them with the sync shell — in a pool thread or a worker process.

Records a run writes: Pending (submitted runs only, at submission), Running, AwaitingRetry and Retrying per
retry, and the final state (Completed, Cached, Failed, TimedOut, Crashed or Cancelled).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from headrace.context import (
    FlowRunContext,
    FlowRunInfo,
    RunDefaults,
    TaskRunContext,
    TaskRunInfo,
    reset_task_run_context,
    set_task_run_context,
    task_run_context,
)
from headrace.engine.effects import Await, Invoke, Sleep, Steps, drive_async, drive_sync
from headrace.engine.ids import new_id
from headrace.engine.reporting import report_task_run_state
from headrace.exceptions import TaskRunTimeoutError, UpstreamTaskError
from headrace.futures import HeadraceFuture
from headrace.retries import plan_retry, retry_state
from headrace.schemas.states import StateType
from headrace.states import (
    Cached,
    Cancelled,
    Completed,
    Crashed,
    Failed,
    Retrying,
    Running,
    State,
    TimedOut,
    to_sdk_state,
)
from headrace.tasks import unmapped

if TYPE_CHECKING:
    from headrace.results.storage import StorageBlock
    from headrace.results.store import ResultStore
    from headrace.settings import Settings
    from headrace.tasks import Task

__all__ = ["TaskCall", "call_task", "execute_call", "prepare_call", "task_run_steps"]

logger = logging.getLogger("headrace.engine")

_FAILED_TYPES = (StateType.FAILED, StateType.CRASHED, StateType.CANCELLED)


@dataclass
class TaskCall:
    """Everything one task run needs, picklable (it travels to process-pool workers)."""

    task: Task[..., Any]
    info: TaskRunInfo
    arguments: dict[str, Any]
    flow_run: FlowRunInfo | None
    settings: Settings
    defaults: RunDefaults
    wait_for: list[HeadraceFuture[Any]] = field(default_factory=list)
    upstream_error: UpstreamTaskError | None = None

    def __headrace_code_modules__(self) -> set[str]:
        """The modules holding this run's user code (for the process pool's pickling by value)."""
        functions = [self.task.fn, *self.task.on_completion_hooks, *self.task.on_failure_hooks]
        if self.task.retry_condition_fn is not None:
            functions.append(self.task.retry_condition_fn)
        return {module for fn in functions if isinstance(module := getattr(fn, "__module__", None), str)}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["wait_for"] = []  # futures stay in the submitting process; they are done by the time we travel
        return state


# -- preparing a call ------------------------------------------------------------------------------

_orphan_counter = itertools.count()


def prepare_call(task: Task[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], wait_for: Any) -> TaskCall:
    """Bind the arguments and name the run, in the current flow (or task) run's context."""
    arguments = task.bind(args, kwargs)
    flow_context = FlowRunContext.get()
    task_context = TaskRunContext.get()
    if flow_context is not None:
        flow_run: FlowRunInfo | None = flow_context.flow_run
        settings = flow_context.settings
        defaults = flow_context.defaults
        dynamic_key = flow_context.tracker.next_dynamic_key(task.task_key)
    elif task_context is not None:
        flow_run, settings, defaults = task_context.flow_run, task_context.settings, task_context.defaults
        dynamic_key = f"{task_context.task_run.id.hex[:8]}-{next(_orphan_counter)}"
    else:
        from headrace.engine.api import current_settings, prepare_process

        flow_run, settings, defaults = None, current_settings(), RunDefaults()
        prepare_process(settings)
        dynamic_key = str(next(_orphan_counter))
    info = TaskRunInfo(
        id=new_id(),
        name="",
        task_name=task.name,
        task_key=task.task_key,
        dynamic_key=dynamic_key,
        flow_run_id=flow_run.id if flow_run is not None else None,
        parameters=arguments,
        tags=_tags(task, flow_run),
    )
    call = TaskCall(
        task=task,
        info=info,
        arguments=arguments,
        flow_run=flow_run,
        settings=settings,
        defaults=defaults,
        wait_for=futures_in(list(wait_for)) if wait_for else [],
    )
    info.name = _run_name(call)
    return call


def _tags(task: Task[..., Any], flow_run: FlowRunInfo | None) -> list[str]:
    if flow_run is None or not flow_run.tags:
        return task.tags
    return list(dict.fromkeys([*flow_run.tags, *task.tags]))


def _run_name(call: TaskCall) -> str:
    template = call.task.task_run_name
    if template is None:
        return f"{call.task.name}-{call.info.dynamic_key}"[:200]
    try:
        if callable(template):
            with task_run_context(_context(call, call.arguments)):
                name = str(template())
        else:
            name = template.format(**call.arguments)
    except (KeyError, IndexError, AttributeError, ValueError) as exc:
        raise ValueError(f"task {call.task.name!r}: task_run_name {template!r} cannot be filled in: {exc}") from None
    return (name or call.task.name)[:200]


def _context(call: TaskCall, arguments: dict[str, Any]) -> TaskRunContext:
    return TaskRunContext(
        task=call.task,
        task_run=call.info,
        parameters=arguments,
        flow_run=call.flow_run,
        settings=call.settings,
        defaults=call.defaults,
    )


# -- futures and states among arguments ------------------------------------------------------------


def futures_in(value: Any, found: list[HeadraceFuture[Any]] | None = None) -> list[HeadraceFuture[Any]]:
    """Every future in ``value`` (looking inside lists, tuples, sets, dicts and ``unmapped``)."""
    found = [] if found is None else found
    if isinstance(value, HeadraceFuture):
        found.append(value)
    elif isinstance(value, unmapped):
        futures_in(value.value, found)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            futures_in(item, found)
    elif isinstance(value, dict):
        for item in value.values():
            futures_in(item, found)
    return found


def _needs_resolving(value: Any) -> bool:
    if isinstance(value, (HeadraceFuture, State, unmapped)):
        return True
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_needs_resolving(item) for item in value)
    if isinstance(value, dict):
        return any(_needs_resolving(item) for item in value.values())
    return False


def _resolve(value: Any) -> Any:  # noqa: PLR0911 - one branch per kind of container
    """``value`` with finished futures and states replaced by their results; a failed one raises
    :class:`UpstreamTaskError`."""
    if isinstance(value, HeadraceFuture):
        value.observed = True
        return _upstream_result(value.state, f"upstream task run {value.name!r}")
    if isinstance(value, State):
        return _upstream_result(value, f"upstream state {value.name}")
    if isinstance(value, unmapped):
        return _resolve(value.value)
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_resolve(item) for item in value]
        if isinstance(value, tuple) and hasattr(value, "_fields"):
            return type(value)(*items)
        return type(value)(items)
    if isinstance(value, dict):
        return type(value)((key, _resolve(item)) for key, item in value.items())
    return value


def _upstream_result(state: State, what: str) -> Any:
    if state.type is StateType.COMPLETED:
        return state.result()
    raise UpstreamTaskError(f"{what} did not complete: it ended {state.name}" + _message(state))


def _message(state: State) -> str:
    return f" ({state.message})" if state.message else ""


def resolve_arguments(call: TaskCall) -> dict[str, Any]:
    for future in call.wait_for:
        future.observed = True
        state = future.state
        if state.type is not StateType.COMPLETED:
            raise UpstreamTaskError(
                f"task run {future.name!r} in wait_for did not complete: it ended {state.name}{_message(state)}"
            )
    if not any(_needs_resolving(value) for value in call.arguments.values()):
        return call.arguments
    return {name: _resolve(value) for name, value in call.arguments.items()}


# -- results and caching -----------------------------------------------------------------------------


def default_storage_url(settings: Settings) -> str:
    """Where results go when neither the task nor its flow says: ``$HEADRACE_HOME/storage``."""
    from pathlib import Path

    return (Path(settings.home).expanduser().resolve() / "storage").as_uri()


def result_store(
    storage: str | StorageBlock | None, serializer: Any, defaults: RunDefaults, settings: Settings
) -> ResultStore:
    from headrace.results import ResultStore, as_result_storage

    target = storage or defaults.storage or default_storage_url(settings)
    return ResultStore(as_result_storage(target), serializer or defaults.serializer or "pickle")


def _should_persist(task: Task[..., Any], defaults: RunDefaults) -> bool:
    if task.persist_result is not None:
        return task.persist_result
    if task.caches:
        return True
    return bool(defaults.persist_result)


def _storage_key(task: Task[..., Any], info: TaskRunInfo, arguments: dict[str, Any], cache_key: str | None) -> str:
    if cache_key is not None:
        return cache_key
    if task.result_storage_key is not None:
        try:
            return task.result_storage_key.format(**arguments, task_run=info)
        except (KeyError, IndexError, AttributeError, ValueError) as exc:
            raise ValueError(f"result_storage_key {task.result_storage_key!r} cannot be filled in: {exc}") from None
    return new_id().hex


def _now() -> datetime:
    return datetime.now(timezone.utc)


# -- the run itself ------------------------------------------------------------------------------------


def task_run_steps(call: TaskCall) -> Steps[State]:  # noqa: PLR0912, PLR0915 - one readable story, top to bottom
    """The life of one task run (see the module docstring). Returns its final state."""
    task, info = call.task, call.info

    # 1. dependencies: wait for them, then put their results in place of the futures
    upstream = [*call.wait_for, *futures_in(call.arguments)]
    pending = [future.wrapped for future in upstream if not future.done()]
    if pending:
        yield Await(pending)
    try:
        if call.upstream_error is not None:
            raise call.upstream_error
        arguments = resolve_arguments(call)
    except UpstreamTaskError as exc:
        state = Failed(message=f"Not run: {exc}").with_value(exc)
        report_task_run_state(info, state)
        yield from _hooks(task.on_failure_hooks, call, state)
        return state
    context = _context(call, arguments)

    # 2. the cache
    store: ResultStore | None = None
    expiration = _now() + task.cache_expiration if task.cache_expiration is not None else None
    if task.caches:
        assert task.cache_policy is not None
        flow_parameters = call.flow_run.parameters if call.flow_run is not None else {}
        try:
            info.cache_key = task.cache_policy.compute_key(context, arguments, flow_parameters)
        except Exception as exc:
            _task_logger(call).warning("Not caching this run: its cache key could not be computed: %r", exc)
            info.cache_key = None
        if info.cache_key is not None:
            store = result_store(task.result_storage, task.result_serializer, call.defaults, call.settings)
            refresh = task.refresh_cache if task.refresh_cache is not None else False
            if not refresh:
                cached = _read_cache(call, store, info.cache_key)
                if cached is not None:
                    reference, record = cached
                    state = Cached(
                        cache_key=info.cache_key, cache_expiration=record.expiration, data=reference.to_data()
                    ).with_value(record.value)
                    report_task_run_state(info, state)
                    yield from _hooks(task.on_completion_hooks, call, state)
                    return state

    # 3. run, retrying as the policy says
    args, kwargs = call_arguments(task, arguments)
    timeout_message = f"Task run {info.name!r} exceeded its timeout of {task.timeout_seconds} s"
    log_prints = task.log_prints if task.log_prints is not None else call.defaults.log_prints
    while True:
        info.run_count += 1
        report_task_run_state(info, Running() if info.run_count == 1 else Retrying())
        failed: State | None = None
        context_token = set_task_run_context(context)
        prints_token = _log_prints_on(log_prints)
        try:
            value = yield Invoke(
                task.fn, args, kwargs, task.timeout_seconds, TaskRunTimeoutError, timeout_message, task.isasync
            )
        except TaskRunTimeoutError as exc:
            failed = TimedOut(message=str(exc)).with_value(exc)
        except Exception as exc:
            failed = Failed(message=f"Task run encountered an exception {type(exc).__name__}: {exc}").with_value(exc)
        except (KeyboardInterrupt, SystemExit) as exc:
            state = Crashed(message=f"Task run was interrupted: {type(exc).__name__}").with_value(exc)
            report_task_run_state(info, state)
            raise
        except asyncio.CancelledError as exc:
            state = Cancelled(message="Task run was cancelled").with_value(exc)
            report_task_run_state(info, state)
            raise
        else:
            if isinstance(value, State) and value.type in _FAILED_TYPES:
                failed = value if value.has_value else value.with_value(None)
        finally:
            _log_prints_off(prints_token)
            reset_task_run_context(context_token)
        if failed is None:
            break
        retriable: bool | None = None
        if task.retry_condition_fn is not None and info.run_count <= task.retries:
            try:
                with task_run_context(context):
                    retriable = bool((yield Invoke(task.retry_condition_fn, (task, info, failed))))
            except Exception:
                _task_logger(call).exception("retry_condition_fn raised; the run is not retried")
                retriable = False
        failed.state_details.retriable = retriable
        plan = plan_retry(task.retry_policy, info.run_count, retriable=retriable)
        if plan is None:
            error = failed.result(raise_on_failure=False)
            _task_logger(call).error(
                "Finished in state %s", failed.name, exc_info=error if isinstance(error, BaseException) else None
            )
            state = failed
            report_task_run_state(info, state)
            yield from _hooks(task.on_failure_hooks, call, state)
            return state
        waiting = to_sdk_state(retry_state(failed, plan, _now()))
        report_task_run_state(info, waiting)
        _task_logger(call).warning("%s", waiting.message)
        yield Sleep(plan.delay_seconds)

    # 4. the result
    if isinstance(value, State):  # the task returned a state of its own (not a failed one)
        state = value
    else:
        state = Completed()
        if _should_persist(task, call.defaults):
            try:
                store = store or result_store(task.result_storage, task.result_serializer, call.defaults, call.settings)
                key = _storage_key(task, info, arguments, info.cache_key)
                reference = store.write(value, key=key, expiration=expiration, cache_key=info.cache_key)
            except Exception as exc:
                state = Failed(message=f"The task run's result could not be persisted: {exc}").with_value(exc)
                report_task_run_state(info, state)
                yield from _hooks(task.on_failure_hooks, call, state)
                return state
            state.data = reference.to_data()
            state.state_details.cache_key = info.cache_key
            state.state_details.cache_expiration = expiration if info.cache_key else None
        state.with_value(value)
    report_task_run_state(info, state)
    yield from _hooks(task.on_completion_hooks, call, state)
    return state


def _read_cache(call: TaskCall, store: ResultStore, key: str) -> Any:
    from headrace.results.store import ResultReference

    try:
        record = store.read_fresh(key)
    except Exception as exc:
        _task_logger(call).warning("Ignoring the cached result at %r, which cannot be read: %r", key, exc)
        return None
    if record is None:
        return None
    reference = ResultReference(storage=store.storage.url, key=key, serializer=record.serializer)
    return reference, record


def call_arguments(task: Task[..., Any], arguments: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if task.positional_only_call and len(arguments) == len(task.signature.parameters):
        return tuple(arguments.values()), {}  # bound in parameter order: a plain positional call
    bound = inspect.BoundArguments(task.signature, arguments)
    return bound.args, bound.kwargs


def _log_prints_on(enabled: bool) -> Any:
    if not enabled:
        return None
    from headrace.run_logging import set_log_prints

    return set_log_prints(True)


def _log_prints_off(token: Any) -> None:
    if token is not None:
        from headrace.run_logging import reset_log_prints

        reset_log_prints(token)


def _task_logger(call: TaskCall) -> logging.LoggerAdapter[logging.Logger]:
    from headrace.run_logging import task_run_logger

    return task_run_logger(call.info, call.flow_run)


def _hooks(hooks: list[Callable[..., Any]], call: TaskCall, state: State) -> Steps[None]:
    for hook in hooks:
        try:
            with task_run_context(_context(call, call.info.parameters)):
                yield Invoke(hook, (call.task, call.info, state))
        except Exception:
            name = getattr(hook, "__name__", repr(hook))
            _task_logger(call).exception("State hook %s raised; the run's state is unchanged", name)


# -- entry points --------------------------------------------------------------------------------------


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def call_task(
    task: Task[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], *, return_state: bool, wait_for: Any
) -> Any:
    """``task(...)``: run now. An async task gives an awaitable, except inside a running synchronous run
    (a sync flow or task, with no event loop running here), where it runs to completion."""
    if task.isasync and (_loop_running() or (FlowRunContext.get() is None and TaskRunContext.get() is None)):
        return _call_task_async(task, args, kwargs, return_state, wait_for)
    state = drive_sync(task_run_steps(prepare_call(task, args, kwargs, wait_for)))
    return state if return_state else state.result()


async def _call_task_async(
    task: Task[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], return_state: bool, wait_for: Any
) -> Any:
    state = await drive_async(task_run_steps(prepare_call(task, args, kwargs, wait_for)))
    return state if return_state else state.result()


def execute_call(call: TaskCall) -> State:
    """Run a submitted call to its final state (in a pool thread or a worker process).

    In a process-pool worker the process is first pointed at the flow's settings, so that its records and
    logs go where the flow's do (settings and the plugin manager are rebuilt per process, never pickled).
    """
    from headrace.task_runners import process

    if process.IN_WORKER:
        from headrace.engine.api import prepare_process

        prepare_process(call.settings)
        process.deliver_records_at_exit()
    return drive_sync(task_run_steps(call))
