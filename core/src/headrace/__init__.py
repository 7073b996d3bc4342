"""headrace: plugin-based workflow orchestration for Python.

::

    from headrace import flow, task, get_run_logger

Importing this package is kept cheap (see ``benchmarks/bench_startup.py``): the names below are imported
from their modules when first used, never here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headrace.__about__ import __version__

if TYPE_CHECKING:
    from headrace.context import get_run_context
    from headrace.flows import Flow, flow
    from headrace.futures import HeadraceFuture, HeadraceFutureList, as_completed, wait
    from headrace.run_logging import get_run_logger
    from headrace.states import State
    from headrace.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner
    from headrace.tasks import Task, task, unmapped

__all__ = [
    "Flow",
    "HeadraceFuture",
    "HeadraceFutureList",
    "ProcessPoolTaskRunner",
    "State",
    "Task",
    "TaskRunner",
    "ThreadPoolTaskRunner",
    "__version__",
    "as_completed",
    "flow",
    "get_run_context",
    "get_run_logger",
    "task",
    "unmapped",
    "wait",
]

_LAZY: dict[str, str] = {
    "Flow": "headrace.flows",
    "flow": "headrace.flows",
    "Task": "headrace.tasks",
    "task": "headrace.tasks",
    "unmapped": "headrace.tasks",
    "HeadraceFuture": "headrace.futures",
    "HeadraceFutureList": "headrace.futures",
    "as_completed": "headrace.futures",
    "wait": "headrace.futures",
    "get_run_logger": "headrace.run_logging",
    "get_run_context": "headrace.context",
    "State": "headrace.states",
    "TaskRunner": "headrace.task_runners",
    "ThreadPoolTaskRunner": "headrace.task_runners",
    "ProcessPoolTaskRunner": "headrace.task_runners",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
