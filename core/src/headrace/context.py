"""The run context: which flow run and task run the code that is running belongs to.

The engine sets a :class:`FlowRunContext` around a flow's function and a :class:`TaskRunContext` around a
task's, in context variables, so that they follow the code into threads the engine starts and into
coroutines. ``get_run_context()`` returns the innermost one; :mod:`headrace.runtime` offers the same facts
as plain attributes (``headrace.runtime.task_run.attempt``).

:class:`FlowRunInfo` and :class:`TaskRunInfo` are what hooks, ``retry_condition_fn`` and cache-key
functions receive as ``flow_run`` and ``task_run``. They are plain, picklable records, so they travel to
process-pool workers with the task.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

from headrace.exceptions import MissingContextError

if TYPE_CHECKING:
    from headrace.engine.api import EngineApi
    from headrace.flows import Flow
    from headrace.futures import HeadraceFuture
    from headrace.results.storage import StorageBlock
    from headrace.settings import Settings
    from headrace.states import State
    from headrace.task_runners import TaskRunner
    from headrace.tasks import Task

__all__ = [
    "FlowRunContext",
    "FlowRunInfo",
    "RunDefaults",
    "RunTracker",
    "TaskRunContext",
    "TaskRunInfo",
    "get_run_context",
]


@dataclass
class FlowRunInfo:
    """A flow run as the code inside it sees it."""

    id: UUID
    name: str
    flow_name: str
    parameters: dict[str, Any]
    tags: list[str] = field(default_factory=list)
    run_count: int = 1
    parent_task_run_id: UUID | None = None
    state: State | None = None

    @property
    def attempt(self) -> int:
        """Which try this is, from 1 (the same as ``run_count``)."""
        return self.run_count


@dataclass
class TaskRunInfo:
    """A task run as the code inside it (and its hooks and conditions) sees it."""

    id: UUID
    name: str
    task_name: str
    task_key: str
    dynamic_key: str
    flow_run_id: UUID | None
    parameters: dict[str, Any]
    tags: list[str] = field(default_factory=list)
    run_count: int = 0
    cache_key: str | None = None
    state: State | None = None

    @property
    def attempt(self) -> int:
        """Which try this is, from 1 (the same as ``run_count``)."""
        return self.run_count


@dataclass(frozen=True)
class RunDefaults:
    """What a flow run's tasks and subflows inherit unless they say otherwise."""

    persist_result: bool | None = None
    storage: str | StorageBlock | None = None
    serializer: Any = None
    log_prints: bool = False


class RunTracker:
    """What a flow run submitted: its futures (waited for at the end) and each task's next dynamic key."""

    def __init__(self) -> None:
        self.futures: list[HeadraceFuture[Any]] = []
        self._counters: dict[str, Iterator[int]] = {}
        self._lock = threading.Lock()

    def next_dynamic_key(self, task_key: str) -> str:
        counter = self._counters.get(task_key)
        if counter is None:
            with self._lock:
                counter = self._counters.setdefault(task_key, itertools.count())
        return str(next(counter))

    def add(self, future: HeadraceFuture[Any]) -> None:
        self.futures.append(future)


@dataclass
class FlowRunContext:
    """Set while a flow's function runs."""

    flow: Flow[..., Any]
    flow_run: FlowRunInfo
    settings: Settings
    api: EngineApi
    task_runner: TaskRunner
    tracker: RunTracker
    defaults: RunDefaults

    @staticmethod
    def get() -> FlowRunContext | None:
        return _flow_run_context.get()


@dataclass
class TaskRunContext:
    """Set while a task's function runs (in whichever thread or process runs it)."""

    task: Task[..., Any]
    task_run: TaskRunInfo
    parameters: dict[str, Any]
    flow_run: FlowRunInfo | None
    settings: Settings
    defaults: RunDefaults

    @staticmethod
    def get() -> TaskRunContext | None:
        return _task_run_context.get()


_flow_run_context: ContextVar[FlowRunContext | None] = ContextVar("headrace_flow_run", default=None)
_task_run_context: ContextVar[TaskRunContext | None] = ContextVar("headrace_task_run", default=None)


def get_run_context() -> TaskRunContext | FlowRunContext:
    """The innermost run context: the task run's inside a task, else the flow run's.

    Raises :class:`~headrace.exceptions.MissingContextError` outside any run.
    """
    context: TaskRunContext | FlowRunContext | None = _task_run_context.get() or _flow_run_context.get()
    if context is None:
        raise MissingContextError("there is no run context here: call this from inside a @flow or @task")
    return context


@contextmanager
def flow_run_context(context: FlowRunContext) -> Iterator[FlowRunContext]:
    """Make ``context`` current (and no task run) for the duration of the block."""
    flow_token = _flow_run_context.set(context)
    task_token = _task_run_context.set(None)
    try:
        yield context
    finally:
        _task_run_context.reset(task_token)
        _flow_run_context.reset(flow_token)


def set_task_run_context(context: TaskRunContext) -> Token[TaskRunContext | None]:
    """Make ``context`` the current task run; undo with :func:`reset_task_run_context` (the engine's hot path)."""
    return _task_run_context.set(context)


def reset_task_run_context(token: Token[TaskRunContext | None]) -> None:
    _task_run_context.reset(token)


@contextmanager
def task_run_context(context: TaskRunContext) -> Iterator[TaskRunContext]:
    """Make ``context`` the current task run for the duration of the block."""
    token = _task_run_context.set(context)
    try:
        yield context
    finally:
        _task_run_context.reset(token)
