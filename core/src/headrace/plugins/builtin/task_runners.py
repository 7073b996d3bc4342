"""Built-in task runners: a bounded thread pool (the default) and a process pool (cloudpickle)."""

from __future__ import annotations

from collections.abc import Iterable

from headrace.plugins import hookimpl
from headrace.plugins.types import TaskRunner


@hookimpl
def headrace_task_runners() -> Iterable[TaskRunner]:
    return [
        TaskRunner(
            name="thread-pool",
            implementation="headrace.task_runners.thread:ThreadPoolTaskRunner",
            description="Runs submitted tasks on a bounded pool of threads in the flow's process (the default).",
        ),
        TaskRunner(
            name="process-pool",
            implementation="headrace.task_runners.process:ProcessPoolTaskRunner",
            description="Runs submitted tasks in a pool of worker processes; work travels with cloudpickle.",
        ),
    ]
