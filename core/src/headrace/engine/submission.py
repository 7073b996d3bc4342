"""Submitting task runs: ``Task.submit`` and ``Task.map``.

:func:`submit_task` records the run Pending at once, and hands it to the flow's task runner only when its
dependencies (futures among the arguments, ``wait_for``) are done — their results replacing the futures —
so a runner only ever executes ready work and a bounded pool never waits on its own queue. The runner
runs :func:`headrace.engine.task_run.execute_call`. :func:`map_task` submits one run per element.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from headrace.context import FlowRunContext
from headrace.engine.reporting import report_task_run_state
from headrace.engine.task_run import (
    TaskCall,
    call_arguments,
    execute_call,
    futures_in,
    prepare_call,
    resolve_arguments,
)
from headrace.exceptions import UpstreamTaskError
from headrace.futures import HeadraceFuture, HeadraceFutureList
from headrace.states import Cancelled, Pending, State
from headrace.tasks import unmapped

if TYPE_CHECKING:
    from headrace.context import TaskRunInfo
    from headrace.task_runners import TaskRunner
    from headrace.tasks import Task

__all__ = ["map_task", "submit_task"]


_fallback_runner: TaskRunner | None = None
_fallback_lock = threading.Lock()


def _runner() -> tuple[TaskRunner, FlowRunContext | None]:
    global _fallback_runner  # noqa: PLW0603 - one shared pool for submissions outside a flow
    context = FlowRunContext.get()
    if context is not None:
        runner = context.task_runner
        if not runner.started:  # started on the first submission: a flow that submits nothing pays nothing
            with _fallback_lock:
                if not runner.started:
                    runner.start()
        return runner, context
    with _fallback_lock:
        if _fallback_runner is None:
            from headrace.task_runners.thread import ThreadPoolTaskRunner

            _fallback_runner = ThreadPoolTaskRunner()
            _fallback_runner.start()
        return _fallback_runner, None


def submit_task(
    task: Task[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], *, wait_for: Iterable[Any] | None
) -> HeadraceFuture[Any]:
    """``task.submit(...)``: record Pending now; start on the task runner once the dependencies are done."""
    runner, flow_context = _runner()
    call = prepare_call(task, args, kwargs, wait_for)
    upstream = [*call.wait_for, *futures_in(call.arguments)]
    for dependency in upstream:
        dependency.observed = True
    report_task_run_state(call.info, Pending())
    outcome: concurrent.futures.Future[State] = concurrent.futures.Future()
    info = call.info
    future: HeadraceFuture[Any] = HeadraceFuture(info.id, info.name, outcome, current=lambda: info.state)
    if flow_context is not None:
        flow_context.tracker.add(future)

    def launch() -> None:
        try:
            launched = call
            if upstream:  # done by now: their results replace them (futures never travel to a runner)
                try:
                    launched = replace(call, arguments=resolve_arguments(call), wait_for=[])
                except UpstreamTaskError as exc:
                    launched = replace(call, wait_for=[], upstream_error=exc, arguments=_strip_futures(call))
                call.info.parameters = launched.arguments
            _relay(runner.submit(execute_call, launched), outcome, info)
        except BaseException as exc:
            outcome.set_exception(exc)

    _when_done(upstream, launch)
    return future


def _strip_futures(call: TaskCall) -> dict[str, Any]:
    """The arguments with futures (which cannot travel to other processes) replaced by ``None``."""

    def strip(value: Any) -> Any:
        if isinstance(value, HeadraceFuture):
            return None
        if isinstance(value, unmapped):
            return strip(value.value)
        if isinstance(value, (list, tuple, set, frozenset)) and not hasattr(value, "_fields"):
            return type(value)(strip(item) for item in value)
        if isinstance(value, dict):
            return type(value)((key, strip(item)) for key, item in value.items())
        return value

    return {name: strip(value) for name, value in call.arguments.items()}


def _relay(
    source: concurrent.futures.Future[State], target: concurrent.futures.Future[State], info: TaskRunInfo
) -> None:
    def copy(done: concurrent.futures.Future[State]) -> None:
        if done.cancelled():  # the runner cancelled it (the flow run was cancelled): it ends Cancelled
            state = Cancelled(message="Task run was cancelled by its task runner")
            report_task_run_state(info, state)
            target.set_result(state)
            return
        try:
            target.set_result(done.result())
        except BaseException as exc:
            target.set_exception(exc)

    source.add_done_callback(copy)


def _when_done(futures: list[HeadraceFuture[Any]], then: Callable[[], None]) -> None:
    """Call ``then()`` once every future is done: now, if they all are."""
    remaining = [future for future in futures if not future.done()]
    if not remaining:
        then()
        return
    count = [len(remaining)]
    lock = threading.Lock()

    def one_done(_: Any) -> None:
        with lock:
            count[0] -= 1
            last = count[0] == 0
        if last:
            then()

    for future in remaining:
        future.wrapped.add_done_callback(one_done)


def _iterable(value: Any) -> bool:
    if isinstance(value, (str, bytes, bytearray, dict)):
        return False
    return isinstance(value, Iterable)


def map_task(
    task: Task[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], *, wait_for: Iterable[Any] | None
) -> HeadraceFutureList[Any]:
    """``task.map(...)``: one submitted run per element of the iterable arguments."""
    try:
        bound = task.signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"task {task.name!r}: {exc}") from None
    mapped: dict[str, list[Any]] = {}
    static: dict[str, Any] = {}
    for name, given in bound.arguments.items():
        if isinstance(given, unmapped):
            static[name] = given.value
            continue
        value = given.result() if isinstance(given, HeadraceFuture) else given  # a future maps over its result
        if _iterable(value):
            mapped[name] = list(value)
        else:
            static[name] = given
    if not mapped:
        raise TypeError(
            f"task {task.name!r}: map() needs at least one iterable argument; wrap values that every run gets in "
            "unmapped(...)"
        )
    lengths = {name: len(values) for name, values in mapped.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{name} has {length}" for name, length in lengths.items())
        raise ValueError(f"task {task.name!r}: map() got iterables of different lengths: {detail}")
    count = next(iter(lengths.values()))
    wait_list = list(wait_for) if wait_for else None
    futures: HeadraceFutureList[Any] = HeadraceFutureList()
    for index in range(count):
        arguments = dict(bound.arguments)
        arguments.update(static)
        for name, values in mapped.items():
            arguments[name] = values[index]
        call_args, call_kwargs = call_arguments(task, arguments)
        futures.append(submit_task(task, call_args, call_kwargs, wait_for=wait_list))
    return futures
