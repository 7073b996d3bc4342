"""Task runners: where submitted tasks run. Built-ins: ``thread-pool`` (the default) and ``process-pool``.

``@flow(task_runner=...)`` takes an instance, or the name of any runner registered through the
``headrace_task_runners`` hook (plugins add ``dask``, ``ray``, …). See :mod:`headrace.task_runners.base` for
the contract a runner implements.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headrace.task_runners.base import TaskRunner

if TYPE_CHECKING:
    from headrace.task_runners.process import ProcessPoolTaskRunner
    from headrace.task_runners.thread import ThreadPoolTaskRunner

__all__ = ["ProcessPoolTaskRunner", "TaskRunner", "ThreadPoolTaskRunner", "resolve_task_runner"]


def resolve_task_runner(spec: TaskRunner | str | type[TaskRunner] | None) -> TaskRunner:
    """The runner for ``@flow(task_runner=spec)``: an instance, a class, a registered name, or the default."""
    if spec is None:
        from headrace.task_runners.thread import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner()
    if isinstance(spec, TaskRunner):
        return spec
    if isinstance(spec, type) and issubclass(spec, TaskRunner):
        return spec()
    if isinstance(spec, str):
        from headrace.plugins import get_plugin_manager

        implementation = get_plugin_manager().select("headrace_task_runners", spec).load()
        if not (isinstance(implementation, type) and issubclass(implementation, TaskRunner)):
            raise TypeError(f"task runner {spec!r} does not name a TaskRunner subclass: {implementation!r}")
        return implementation()
    raise TypeError(f"task_runner must be a TaskRunner, a TaskRunner class or a registered name; got {spec!r}")


def __getattr__(name: str) -> Any:
    if name == "ThreadPoolTaskRunner":
        from headrace.task_runners.thread import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner
    if name == "ProcessPoolTaskRunner":
        from headrace.task_runners.process import ProcessPoolTaskRunner

        return ProcessPoolTaskRunner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
