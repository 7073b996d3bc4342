"""The task-runner contract: how ``task.submit()`` and ``task.map()`` execute work.

A task runner executes *zero-dependency work items*: by the time the engine hands it a call, every future
the task depends on has completed and been replaced by its result, so a runner never waits on another
task run (and a bounded pool cannot deadlock on its own queue). A runner therefore needs only to
run ``fn(*args)`` somewhere and return a ``concurrent.futures.Future`` of what it returns.

Implement :meth:`TaskRunner.submit`, :meth:`TaskRunner.start`, :meth:`TaskRunner.shutdown` and
:meth:`TaskRunner.duplicate`; register the class through the ``headrace_task_runners`` hook; and run
``headrace.testing.contracts.TaskRunnerContract`` against it. Capability flags tell the contract suite what
the runner does *not* do, instead of tests being skipped silently.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, ClassVar, TypeVar

__all__ = ["TaskRunner"]

T = TypeVar("T")
RunnerT = TypeVar("RunnerT", bound="TaskRunner")


class TaskRunner(abc.ABC):
    """Runs submitted work. Used as a context manager: started when a flow run begins, shut down when it ends."""

    #: The work runs in other processes: it must pickle (with cloudpickle), and it shares no memory with
    #: the flow (``memory://`` result storage, module globals and locks are per process).
    separate_processes: ClassVar[bool] = False
    #: Work items can run at the same time (more than one at once).
    concurrent: ClassVar[bool] = True

    def __init__(self) -> None:
        self._started = False

    @property
    def started(self) -> bool:
        return self._started

    @abc.abstractmethod
    def duplicate(self: RunnerT) -> RunnerT:
        """A new, unstarted runner with the same configuration (each flow run starts its own)."""

    def start(self) -> None:
        """Acquire resources (pools, connections). Called once, before the first ``submit``."""
        self._started = True

    def shutdown(self, wait: bool = True) -> None:
        """Release resources; with ``wait``, only after every submitted item has finished."""
        self._started = False

    def cancel_pending(self) -> None:  # noqa: B027 - optional: a runner that cannot cancel keeps the default
        """Cancel the submitted items that have not started, and start no more (best effort).

        The engine calls this when the flow run is cancelled or interrupted, before it waits for what is left;
        the futures of cancelled items end cancelled. The default does nothing: every item runs to its end.
        """

    @abc.abstractmethod
    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        """Run ``fn(*args)``; return a future of its return value (or of the exception it raised)."""

    def __enter__(self: RunnerT) -> RunnerT:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown(wait=True)

    def _require_started(self) -> None:
        if not self._started:
            raise RuntimeError(
                f"{type(self).__name__} is not started: use it as a context manager "
                "(`with runner:`), or let a flow start it (`@flow(task_runner=...)`)"
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
