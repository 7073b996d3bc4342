"""The default task runner: a bounded pool of threads in the flow's process."""

from __future__ import annotations

import contextvars
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from headrace.task_runners.base import TaskRunner

__all__ = ["ThreadPoolTaskRunner", "default_max_workers"]

T = TypeVar("T")


def default_max_workers() -> int:
    """``min(32, cpu_count + 4)``: the bound the standard library uses for I/O-bound pools."""
    return min(32, (os.cpu_count() or 1) + 4)


class ThreadPoolTaskRunner(TaskRunner):
    """Runs submitted tasks on at most ``max_workers`` threads (default ``min(32, cpu_count + 4)``).

    Each item runs in a copy of the submitter's context, so context variables (the run context among
    them) follow the work into the pool. Async tasks run on the process's one event loop, with the pool
    thread waiting for them.
    """

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__()
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        self.max_workers = max_workers or default_max_workers()
        self._executor: ThreadPoolExecutor | None = None

    def duplicate(self) -> ThreadPoolTaskRunner:
        return type(self)(max_workers=self.max_workers)

    def start(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.max_workers, thread_name_prefix="headrace-task")
        super().start()

    def shutdown(self, wait: bool = True) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=not wait)
        super().shutdown(wait)

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        self._require_started()
        assert self._executor is not None
        context = contextvars.copy_context()
        return self._executor.submit(context.run, fn, *args)

    def __repr__(self) -> str:
        return f"ThreadPoolTaskRunner(max_workers={self.max_workers})"
