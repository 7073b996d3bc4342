"""The one engine core and its two shells.

A run (flow or task) is a *generator* that holds all of the run's logic — states, retries, caching,
results, hooks — and never does I/O that differs between sync and async code itself. Where it needs such
I/O it yields an *effect* and receives the outcome:

=================  ======================================================================================
effect             what the shell does
=================  ======================================================================================
:class:`Invoke`    call user code (a function or a coroutine function) under an optional timeout
:class:`Sleep`     wait (between retries, or when the server says WAIT)
:class:`Api`       call the orchestration client (``create_flow_run``, ``set_flow_run_state``)
:class:`Await`     wait until some task-run futures are done
=================  ======================================================================================

:func:`drive_sync` performs effects with blocking calls in the calling thread; :func:`drive_async`
performs them with ``await``. Each is a dozen lines: the two shells cannot drift apart, because there is
nothing in them to drift. An exception from an effect is thrown back into the generator at its ``yield``,
so the run's ``try``/``except`` sees user exceptions exactly where it made the call.

Coroutines in a synchronous run execute on the process's one long-lived event loop
(:func:`headrace.client.sync.get_loop`), never on a loop of their own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from headrace.engine.timeouts import sync_timeout
from headrace.exceptions import RunTimeoutError, TaskRunTimeoutError

__all__ = ["Api", "Await", "Effect", "Invoke", "Sleep", "Steps", "drive_async", "drive_sync"]

T = TypeVar("T")


class Effect:
    """Something a run needs done by its shell."""

    __slots__ = ()


@dataclass(slots=True)
class Invoke(Effect):
    """Call ``fn(*args, **kwargs)``; awaitables are awaited. Raise ``timeout_error`` after ``timeout`` seconds."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None
    timeout_error: type[RunTimeoutError] = TaskRunTimeoutError
    timeout_message: str = ""
    is_async: bool | None = None
    """Whether ``fn`` is a coroutine function, when the caller knows (saves inspecting it on every call)."""


@dataclass(slots=True)
class Sleep(Effect):
    seconds: float


@dataclass(slots=True)
class Api(Effect):
    """Call ``method`` of the orchestration client (through :class:`~headrace.engine.api.EngineApi`)."""

    api: Any
    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Await(Effect):
    """Wait until every future in ``futures`` (``concurrent.futures.Future``) is done; results are not taken."""

    futures: Sequence[concurrent.futures.Future[Any]]


Steps = Generator[Effect, Any, T]
"""A run: yields effects, receives their outcomes, returns its final value (a State)."""


# -- the synchronous shell -------------------------------------------------------------------------


def drive_sync(steps: Steps[T]) -> T:
    """Run ``steps`` to completion in this thread, performing each effect with blocking calls."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        error = None
        try:
            value = _perform_sync(effect)
        except BaseException as exc:  # thrown back into the run, which decides
            value, error = None, exc


def _perform_sync(effect: Effect) -> Any:
    if isinstance(effect, Invoke):
        return _invoke_sync(effect)
    if isinstance(effect, Api):
        return getattr(effect.api, effect.method)(*effect.args, **effect.kwargs)
    if isinstance(effect, Sleep):
        if effect.seconds > 0:
            time.sleep(effect.seconds)
        return None
    if isinstance(effect, Await):
        concurrent.futures.wait(effect.futures)
        return None
    raise TypeError(f"unknown effect {effect!r}")


def _invoke_sync(effect: Invoke) -> Any:
    if effect.is_async if effect.is_async is not None else inspect.iscoroutinefunction(effect.fn):
        return run_coroutine_blocking(effect.fn(*effect.args, **effect.kwargs), effect)
    with sync_timeout(effect.timeout, effect.timeout_error, effect.timeout_message):
        result = effect.fn(*effect.args, **effect.kwargs)
    if inspect.isawaitable(result):
        return run_coroutine_blocking(result, effect)
    return result


def run_coroutine_blocking(awaitable: Awaitable[T], effect: Invoke | None = None) -> T:
    """Run ``awaitable`` on the process's event loop, in this thread's context, and wait for it.

    On the loop's own thread (sync code called from an async task the loop is running) waiting would
    deadlock, so the coroutine then runs on a short-lived loop in a helper thread: the one exception to
    "one event loop per process", reached only by that unusual nesting.
    """
    from headrace.client.sync import get_loop, in_loop_thread

    coroutine = _with_context(awaitable, contextvars.copy_context())
    if effect is not None and effect.timeout is not None:
        coroutine = _with_timeout(coroutine, effect)
    if in_loop_thread():
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="headrace-nested-loop") as pool:
            return pool.submit(asyncio.run, coroutine).result()
    return asyncio.run_coroutine_threadsafe(coroutine, get_loop()).result()


async def _with_context(awaitable: Awaitable[T], context: contextvars.Context) -> T:
    # A task on the process loop starts from the loop thread's context; take the caller's run context along.
    for variable, value in context.items():
        variable.set(value)
    return await awaitable


async def _with_timeout(awaitable: Coroutine[Any, Any, T], effect: Invoke) -> T:
    try:
        return await asyncio.wait_for(awaitable, effect.timeout)
    except asyncio.TimeoutError:
        raise effect.timeout_error(effect.timeout_message) from None


# -- the asynchronous shell ------------------------------------------------------------------------


async def drive_async(steps: Steps[T]) -> T:
    """Run ``steps`` to completion in the running event loop, performing each effect with ``await``."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        error = None
        try:
            value = await _perform_async(effect)
        except BaseException as exc:
            value, error = None, exc


async def _perform_async(effect: Effect) -> Any:
    if isinstance(effect, Invoke):
        return await _invoke_async(effect)
    if isinstance(effect, Api):
        return await effect.api.call_async(effect.method, *effect.args, **effect.kwargs)
    if isinstance(effect, Sleep):
        await asyncio.sleep(max(0.0, effect.seconds))
        return None
    if isinstance(effect, Await):
        pending = [future for future in effect.futures if not future.done()]
        if pending:
            await asyncio.wait([asyncio.wrap_future(future) for future in pending])
        return None
    raise TypeError(f"unknown effect {effect!r}")


async def _invoke_async(effect: Invoke) -> Any:
    if effect.is_async if effect.is_async is not None else inspect.iscoroutinefunction(effect.fn):
        coroutine = effect.fn(*effect.args, **effect.kwargs)
        if effect.timeout is None:
            return await coroutine
        return await _with_timeout(coroutine, effect)
    # A synchronous function inside an async run runs right here, as it would without headrace.
    with sync_timeout(effect.timeout, effect.timeout_error, effect.timeout_message):
        result = effect.fn(*effect.args, **effect.kwargs)
    if inspect.isawaitable(result):
        return await result
    return result
