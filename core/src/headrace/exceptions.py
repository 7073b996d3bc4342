"""Exceptions the SDK raises: what went wrong with a run, its parameters, its result or its context.

Client errors (the API could not be reached or refused a request) live in :mod:`headrace.client.base`.
"""

from __future__ import annotations

__all__ = [
    "CancelledRun",
    "CrashedRun",
    "FailedRun",
    "FlowRunTimeoutError",
    "HeadraceError",
    "MissingContextError",
    "MissingResult",
    "ParameterValidationError",
    "RunTimeoutError",
    "TaskRunTimeoutError",
    "UnfinishedRun",
    "UpstreamTaskError",
]


class HeadraceError(Exception):
    """Base of the SDK's own errors."""


class FailedRun(HeadraceError):
    """A run failed and the exception that failed it is not available in this process.

    Raised by ``state.result()`` for a Failed state read back from the API; a state the engine produced in
    this process raises the original exception instead.
    """


class CrashedRun(HeadraceError):
    """A run crashed: its process was interrupted or died (``KeyboardInterrupt``, ``SystemExit``, a kill)."""


class CancelledRun(HeadraceError):
    """A run was cancelled."""


class UnfinishedRun(HeadraceError):
    """A result was asked of a run that has not finished."""


class MissingResult(HeadraceError):
    """A run completed but its result is neither in memory nor persisted (``persist_result=True`` keeps it)."""


class MissingContextError(HeadraceError):
    """Something that needs a running flow or task (``get_run_logger()``, ``task.submit()``) was called outside one."""


class ParameterValidationError(HeadraceError, TypeError):
    """The parameters of a flow call do not match the flow's signature or type hints.

    ``errors`` holds one line per bad parameter, already in the message.
    """

    def __init__(self, flow_name: str, errors: list[str]) -> None:
        self.flow_name = flow_name
        self.errors = errors
        lines = "\n".join(f"  - {error}" for error in errors)
        super().__init__(f"invalid parameters for flow {flow_name!r}:\n{lines}")


class UpstreamTaskError(HeadraceError):
    """A task did not run because a task it depends on (a future passed in, or ``wait_for``) did not complete."""


class RunTimeoutError(TimeoutError):
    """A run exceeded its ``timeout_seconds``; its state is TimedOut (a Failed state)."""


class TaskRunTimeoutError(RunTimeoutError):
    """A task run exceeded its ``timeout_seconds``."""


class FlowRunTimeoutError(RunTimeoutError):
    """A flow run exceeded its ``timeout_seconds``."""
