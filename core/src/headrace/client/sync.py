"""The process's one long-lived event loop, and the synchronous face of the orchestration client.

headrace runs every piece of async machinery a process needs (the HTTP client's connection pool, the
embedded database's engines, the run-record shipper's requests) on **one** event loop that lives in a
daemon thread, created on first use and reused by everything: never one loop per call or per task.

- :func:`run_sync` runs a coroutine on that loop from any other thread and returns its result.
- :class:`SyncClient` wraps an :class:`~headrace.client.base.OrchestrationClient` so that synchronous
  code (the sync engine, the CLI) calls it as ordinary methods.

The loop belongs to one process: a child made by ``fork`` (a process-pool worker) starts without one
and creates its own on first use. Calling :func:`run_sync` *on* the loop thread would wait for itself,
so it raises instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import logging
import os
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

if TYPE_CHECKING:
    from collections.abc import Sequence

    from headrace.client.base import OrchestrationClient
    from headrace.schemas.base import Page, RecordKind
    from headrace.schemas.logs import Log, LogCreate, LogFilter
    from headrace.schemas.runs import (
        Flow,
        FlowRun,
        FlowRunCreate,
        FlowRunFilter,
        IngestResult,
        OrchestrationResult,
        TaskRun,
        TaskRunFilter,
        TaskRunRecord,
    )
    from headrace.schemas.states import State
    from headrace.settings import Settings

__all__ = ["SyncClient", "freeze_start_up_objects", "get_loop", "in_loop_thread", "on_exit", "run_sync"]

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_pid: int | None = None


def get_loop() -> asyncio.AbstractEventLoop:
    """The process's event loop, running in the daemon thread ``headrace-loop`` (started on first call)."""
    global _loop, _thread, _pid
    loop = _loop
    if loop is not None and _pid == os.getpid() and not loop.is_closed():
        return loop
    with _lock:
        if _loop is not None and _pid == os.getpid() and not _loop.is_closed():
            return _loop
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        thread = threading.Thread(target=serve, name="headrace-loop", daemon=True)
        thread.start()
        ready.wait()
        _loop, _thread, _pid = loop, thread, os.getpid()
        return loop


def in_loop_thread() -> bool:
    """Whether the caller runs on the process loop's own thread."""
    return _thread is not None and _pid == os.getpid() and threading.current_thread() is _thread


def run_sync(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run ``coro`` on the process loop and wait for its result (or its exception).

    ``timeout`` bounds the wait in seconds: when it passes, the coroutine is cancelled and
    :class:`TimeoutError` is raised. Raises :class:`RuntimeError` when called from the loop's own
    thread, where waiting would deadlock: ``await`` the coroutine there instead.
    """
    if in_loop_thread():
        coro.close()
        raise RuntimeError(
            "run_sync() was called on headrace's event-loop thread, where it would wait for itself; await instead"
        )
    future = asyncio.run_coroutine_threadsafe(coro, get_loop())
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:  # a distinct class from TimeoutError on Python 3.10
        future.cancel()
        raise TimeoutError(f"the call did not finish within {timeout} s") from None


_exit_callbacks: list[tuple[int, Callable[[], None]]] = []
_exit_hook_pid: int | None = None


def on_exit(callback: Callable[[], None], order: int = 0) -> None:
    """Call ``callback`` when this process exits, lowest ``order`` first (run records flush at 0, the
    embedded database closes at 100).

    The callbacks run in ``threading``'s exit hook: after the main thread finished, but before
    non-daemon threads are joined (an open aiosqlite connection is one, and would otherwise keep the
    process alive), before ``concurrent.futures`` stops accepting work (DNS lookups need it), and before
    ``atexit``. Multiprocessing workers run it too, where ``atexit`` is skipped. Each callback runs once,
    in the process that registered it; an exception in one is logged and the others still run.
    """
    global _exit_hook_pid  # noqa: PLW0603 - the hook is registered once per process
    _exit_callbacks.append((order, callback))
    if _exit_hook_pid == os.getpid():
        return
    _exit_hook_pid = os.getpid()
    import concurrent.futures.thread  # noqa: F401 - its exit callback must be registered before ours

    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        try:
            register(_run_exit_callbacks)
            return
        except RuntimeError:  # the interpreter already shuts its threads down
            pass
    import atexit

    atexit.register(_run_exit_callbacks)


def _run_exit_callbacks() -> None:
    callbacks = sorted(_exit_callbacks, key=lambda item: item[0])
    _exit_callbacks.clear()
    for _, callback in callbacks:
        try:
            callback()
        except Exception:
            logging.getLogger("headrace.client").exception("an exit callback of headrace failed")


_frozen_stages: set[tuple[int, str]] = set()


def freeze_start_up_objects(stage: str, *, after: str | None = None) -> None:
    """Take every object alive now out of the garbage collector's scans, once per process and ``stage``.

    Why: what the SDK loads to run flows (pydantic models, httpx, and in embedded mode SQLAlchemy and the
    server's service layer) is tens to hundreds of thousands of long-lived objects. CPython scans them
    all in each full collection, which a flow of a thousand task runs triggers about once: 30-90 ms,
    up to a fifth of such a flow's time. After one full collection (so that no garbage of the moment is
    kept for good), :func:`gc.freeze` moves the survivors to the permanent generation, which later
    collections skip; they are still freed by reference counting when they die.

    The engine calls this when it opens its API client (``"engine"``); the embedded client when it has
    opened its database (``"embedded-database"``, ``after="engine"``: only in a process that runs flows,
    so that a short command reading a database does not pay for a collection). The later call only
    scans what appeared since. Nothing is done when the program switched the collector off.
    """
    pid = os.getpid()
    if (pid, stage) in _frozen_stages or not gc.isenabled():
        return
    if after is not None and (pid, after) not in _frozen_stages:
        return
    _frozen_stages.add((pid, stage))
    gc.collect()
    gc.freeze()


def _forget_loop_after_fork() -> None:
    # The loop thread does not exist in the child; the child builds its own loop when it needs one.
    # The parent's exit callbacks are not the child's business.
    global _loop, _thread, _pid, _lock, _exit_hook_pid  # noqa: PLW0603 - per-process state, reset in a child
    _loop, _thread, _pid = None, None, None
    _lock = threading.Lock()
    _exit_callbacks.clear()
    _exit_hook_pid = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_loop_after_fork)


class SyncClient:
    """A blocking facade over an :class:`OrchestrationClient`: same methods, run on the process loop.

    ::

        with SyncClient.from_settings(get_settings()) as client:
            run = client.create_flow_run(FlowRunCreate(flow_name="etl"))

    Thread-safe: any number of threads may share one instance (the calls interleave on the loop).
    """

    def __init__(self, client: OrchestrationClient) -> None:
        self.client = client
        self._entered = False

    @classmethod
    def from_settings(cls, settings: Settings) -> SyncClient:
        """The client :func:`headrace.client.get_client` picks for ``settings``, made synchronous."""
        from headrace.client import get_client

        return cls(get_client(settings))

    def __enter__(self) -> SyncClient:
        run_sync(self.client.__aenter__())
        self._entered = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._entered:
            self._entered = False
            run_sync(self.client.__aexit__(*exc_info))

    def close(self) -> None:
        """Release the client's connections (what leaving the ``with`` block does)."""
        self.__exit__(None, None, None)

    # flows and flow runs
    def create_flow_run(self, data: FlowRunCreate) -> FlowRun:
        return run_sync(self.client.create_flow_run(data))

    def read_flow_run(self, flow_run_id: UUID) -> FlowRun:
        return run_sync(self.client.read_flow_run(flow_run_id))

    def read_flow_runs(self, flow_run_filter: FlowRunFilter) -> Page[FlowRun]:
        return run_sync(self.client.read_flow_runs(flow_run_filter))

    def read_flow(self, flow_id: UUID) -> Flow:
        return run_sync(self.client.read_flow(flow_id))

    def set_flow_run_state(self, flow_run_id: UUID, state: State, *, force: bool = False) -> OrchestrationResult:
        return run_sync(self.client.set_flow_run_state(flow_run_id, state, force=force))

    def read_flow_run_states(self, flow_run_id: UUID) -> list[State]:
        return run_sync(self.client.read_flow_run_states(flow_run_id))

    # task runs
    def ingest_task_run_records(self, records: list[TaskRunRecord]) -> IngestResult:
        return run_sync(self.client.ingest_task_run_records(records))

    def read_task_run(self, task_run_id: UUID) -> TaskRun:
        return run_sync(self.client.read_task_run(task_run_id))

    def read_task_runs(self, task_run_filter: TaskRunFilter) -> Page[TaskRun]:
        return run_sync(self.client.read_task_runs(task_run_filter))

    def read_task_run_states(self, task_run_id: UUID) -> list[State]:
        return run_sync(self.client.read_task_run_states(task_run_id))

    # logs
    def ingest_logs(self, logs: list[LogCreate]) -> IngestResult:
        return run_sync(self.client.ingest_logs(logs))

    def read_logs(self, log_filter: LogFilter) -> Page[Log]:
        return run_sync(self.client.read_logs(log_filter))

    def ingest_serialized(self, kind: RecordKind, payloads: Sequence[bytes]) -> IngestResult:
        return run_sync(self.client.ingest_serialized(kind, payloads))
