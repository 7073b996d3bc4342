"""Facts about the current run as plain attributes, for code that does not want to pass a context around::

    from headrace import runtime

    @task(retries=2)
    def load():
        print(runtime.flow_run.name, runtime.task_run.attempt)

Outside a run every attribute is ``None`` (``parameters`` is an empty dict), so this module is safe to use
in code that also runs on its own.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from headrace.context import FlowRunContext, FlowRunInfo, TaskRunContext

__all__ = ["flow_run", "task_run"]


def _flow_run_info() -> FlowRunInfo | None:
    task_context = TaskRunContext.get()
    if task_context is not None and task_context.flow_run is not None:
        return task_context.flow_run
    flow_context = FlowRunContext.get()
    return flow_context.flow_run if flow_context is not None else None


class _FlowRunFacts:
    """The current flow run (also inside its tasks, in any thread or worker process)."""

    @property
    def id(self) -> UUID | None:
        info = _flow_run_info()
        return info.id if info else None

    @property
    def name(self) -> str | None:
        info = _flow_run_info()
        return info.name if info else None

    @property
    def flow_name(self) -> str | None:
        info = _flow_run_info()
        return info.flow_name if info else None

    @property
    def parameters(self) -> dict[str, Any]:
        info = _flow_run_info()
        return dict(info.parameters) if info else {}

    @property
    def tags(self) -> list[str]:
        info = _flow_run_info()
        return list(info.tags) if info else []

    @property
    def run_count(self) -> int | None:
        info = _flow_run_info()
        return info.run_count if info else None

    @property
    def attempt(self) -> int | None:
        """Which try of the flow run this is, from 1."""
        return self.run_count

    @property
    def parent_task_run_id(self) -> UUID | None:
        info = _flow_run_info()
        return info.parent_task_run_id if info else None


class _TaskRunFacts:
    """The current task run."""

    @property
    def id(self) -> UUID | None:
        context = TaskRunContext.get()
        return context.task_run.id if context else None

    @property
    def name(self) -> str | None:
        context = TaskRunContext.get()
        return context.task_run.name if context else None

    @property
    def task_name(self) -> str | None:
        context = TaskRunContext.get()
        return context.task_run.task_name if context else None

    @property
    def parameters(self) -> dict[str, Any]:
        context = TaskRunContext.get()
        return dict(context.parameters) if context else {}

    @property
    def tags(self) -> list[str]:
        context = TaskRunContext.get()
        return list(context.task_run.tags) if context else []

    @property
    def run_count(self) -> int | None:
        context = TaskRunContext.get()
        return context.task_run.run_count if context else None

    @property
    def attempt(self) -> int | None:
        """Which try of the task run this is, from 1."""
        return self.run_count


flow_run = _FlowRunFacts()
task_run = _TaskRunFacts()
