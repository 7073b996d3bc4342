"""Run loggers: ``get_run_logger()`` inside a flow or task, and ``log_prints``.

``get_run_logger()`` returns a :class:`logging.LoggerAdapter` on the logger ``headrace.task_runs`` (inside
a task) or ``headrace.flow_runs`` (inside a flow) whose records carry the run's ids in ``extra``
(``flow_run_id``, ``task_run_id``, and the names), so that the log shipper can attach each line to its run
and the console can say which run wrote it::

    12:00:01.204 | INFO    | Task run 'fetch-3' - fetched 12 rows

The console handler is added once per process, to the ``headrace`` logger, only when the program has not
configured that logger itself; its level is ``HEADRACE_LOGGING_LEVEL``. Shipping run logs to the API is the
log handler's business (``headrace.records``), not this module's.

``log_prints=True`` on a flow or task sends what ``print()`` writes to standard output inside it to the run
logger instead (at INFO), so that it is shipped with the run's logs.
"""

from __future__ import annotations

import builtins
import logging
import sys
import threading
from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from headrace.context import FlowRunContext, FlowRunInfo, TaskRunContext, TaskRunInfo
from headrace.exceptions import MissingContextError

if TYPE_CHECKING:
    from headrace.settings import Settings

__all__ = [
    "FLOW_RUN_LOGGER",
    "TASK_RUN_LOGGER",
    "RunLoggerAdapter",
    "flow_run_logger",
    "get_run_logger",
    "task_run_logger",
]

FLOW_RUN_LOGGER = "headrace.flow_runs"
TASK_RUN_LOGGER = "headrace.task_runs"


class RunLoggerAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger adapter whose records carry a run's ids and names in ``extra`` (a call's own ``extra`` wins)."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        own = kwargs.get("extra")
        kwargs["extra"] = {**(self.extra or {}), **own} if own else self.extra
        return msg, kwargs


def flow_run_logger(flow_run: FlowRunInfo) -> RunLoggerAdapter:
    return RunLoggerAdapter(
        logging.getLogger(FLOW_RUN_LOGGER),
        {
            "flow_run_id": flow_run.id,
            "flow_run_name": flow_run.name,
            "flow_name": flow_run.flow_name,
            "task_run_id": None,
            "run_label": f"Flow run {flow_run.name!r}",
        },
    )


def task_run_logger(task_run: TaskRunInfo, flow_run: FlowRunInfo | None = None) -> RunLoggerAdapter:
    return RunLoggerAdapter(
        logging.getLogger(TASK_RUN_LOGGER),
        {
            "flow_run_id": task_run.flow_run_id,
            "flow_run_name": flow_run.name if flow_run else None,
            "flow_name": flow_run.flow_name if flow_run else None,
            "task_run_id": task_run.id,
            "task_run_name": task_run.name,
            "task_name": task_run.task_name,
            "run_label": f"Task run {task_run.name!r}",
        },
    )


def get_run_logger() -> RunLoggerAdapter:
    """The logger of the current run: the task run's inside a task, else the flow run's.

    Raises :class:`~headrace.exceptions.MissingContextError` outside a flow or task.
    """
    task_context = TaskRunContext.get()
    if task_context is not None:
        return task_run_logger(task_context.task_run, task_context.flow_run)
    flow_context = FlowRunContext.get()
    if flow_context is not None:
        return flow_run_logger(flow_context.flow_run)
    raise MissingContextError(
        "get_run_logger() was called outside a flow or task run; "
        "use logging.getLogger(...) there, or call it from inside a @flow or @task"
    )


# -- console output ---------------------------------------------------------------------------------


class RunFormatter(logging.Formatter):
    """``12:00:01.204 | INFO    | Flow run 'name' - message`` (the run label only on run records)."""

    def __init__(self) -> None:
        super().__init__(datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        label = getattr(record, "run_label", None)
        message = record.getMessage()
        text = f"{self.formatTime(record, self.datefmt)}.{int(record.msecs):03d} | {record.levelname:<7} | "
        text += f"{label} - {message}" if label else f"{record.name} - {message}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


_console_lock = threading.Lock()
_console_configured = False


def configure_console(settings: Settings) -> None:
    """Add the console handler to the ``headrace`` logger once, unless the program configured it already."""
    global _console_configured  # noqa: PLW0603 - once per process
    with _console_lock:
        if _console_configured:
            return
        _console_configured = True
        root = logging.getLogger("headrace")
        if root.level == logging.NOTSET:
            root.setLevel(settings.logging_level)
        if any(isinstance(handler, logging.StreamHandler) for handler in root.handlers):
            return
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(RunFormatter())
        handler.set_name("headrace-console")
        root.addHandler(handler)


# -- log_prints ------------------------------------------------------------------------------------

_log_prints: ContextVar[bool] = ContextVar("headrace_log_prints", default=False)
_original_print = builtins.print
_print_patched = False


def _print(*args: Any, **kwargs: Any) -> None:
    if _log_prints.get() and kwargs.get("file") in (None, sys.stdout):
        try:
            logger = get_run_logger()
        except MissingContextError:
            pass
        else:
            sep = kwargs.get("sep")
            logger.info((" " if sep is None else sep).join(str(arg) for arg in args))
            return
    _original_print(*args, **kwargs)


def set_log_prints(enabled: bool) -> Any:
    """Turn ``log_prints`` on or off for the current context; returns a token for :func:`reset_log_prints`."""
    global _print_patched  # noqa: PLW0603 - installed once, on first use
    if enabled and not _print_patched:
        builtins.print = _print
        _print_patched = True
    return _log_prints.set(enabled)


def reset_log_prints(token: Any) -> None:
    _log_prints.reset(token)
