"""Run records: how task-run state changes and run logs reach the server, durably and off the hot path.

The engine reports with two calls that cost microseconds and never touch the network::

    from headrace.records import report_log, report_task_run_state

    report_task_run_state(TaskRunRecord(...))   # append to the spool + put on the queue
    report_log(LogCreate(...))
    ...
    flush(timeout=5.0)                          # at flow end: wait until the server acknowledged them

Each record is appended to this process's spool under ``HEADRACE_HOME/spool/`` before the call
returns (a copy into a shared memory map of the file: no system call, no fsync; it survives the
process being killed), and leaves the spool once the server acknowledged it. A background shipper
sends batches to the bulk endpoints (see :mod:`headrace.records.shipper`); when the server is
unreachable the records wait and are replayed in order when it returns — by this process, by the
next headrace process that reports records, or by ``headrace spool flush``. At exit the process
waits up to ``HEADRACE_CLIENT_RECORDS_FLUSH_TIMEOUT`` seconds for the rest. docs/client.md tells the
whole story.

The pipeline belongs to one process and is built on first use from :func:`configure`'s settings (or
``get_settings()``). A forked child (a process-pool worker) drops its parent's pipeline and builds its
own on first use; a spawned worker should call :func:`configure` with the flow's settings first.

All functions here are thread-safe.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from headrace.records.shipper import Pipeline
    from headrace.schemas.logs import LogCreate
    from headrace.schemas.runs import TaskRunRecord
    from headrace.settings import Settings

__all__ = [
    "configure",
    "flush",
    "install_run_log_handler",
    "pending",
    "report_log",
    "report_task_run_state",
    "shutdown",
    "start",
]

_pipeline: Pipeline | None = None
_settings: Settings | None = None
_lock = threading.Lock()
_exit_hook_pid: int | None = None
_exiting = False  # set by the exit hook: a record reported after it is spooled, for the next process to send


def report_task_run_state(record: TaskRunRecord) -> None:
    """Report one task-run state change. Spooled before this returns; shipped in the background."""
    pipeline = _pipeline or _start()
    pipeline.task_runs.put(record.__pydantic_serializer__.to_json(record))


def report_log(log: LogCreate) -> None:
    """Report one run log line (dropped when ``HEADRACE_LOGGING_TO_API_ENABLED`` is false).

    A message longer than ``HEADRACE_LOGGING_TO_API_MAX_LOG_SIZE`` characters is cut to that length,
    ending with ``… [truncated N characters]``.
    """
    pipeline = _pipeline or _start()
    settings = pipeline.settings
    if not settings.logging_to_api_enabled:
        return
    if len(log.message) > settings.logging_to_api_max_log_size:
        from headrace.records.log_handler import truncate_message

        log = log.model_copy(update={"message": truncate_message(log.message, settings.logging_to_api_max_log_size)})
    pipeline.logs.put(log.__pydantic_serializer__.to_json(log))


def flush(timeout: float | None = None) -> bool:
    """Wait until every record this process reported so far is acknowledged by the server.

    Returns ``True`` when they all were, ``False`` if ``timeout`` seconds (default
    ``HEADRACE_CLIENT_RECORDS_FLUSH_TIMEOUT``) passed first; the rest stays in the spool either way.
    """
    pipeline = _pipeline
    if pipeline is None:
        return True
    return pipeline.flush(pipeline.settings.client_records_flush_timeout if timeout is None else timeout)


def pending() -> int:
    """How many records of this process are reported but not yet acknowledged."""
    pipeline = _pipeline
    return 0 if pipeline is None else pipeline.pending()


def configure(settings: Settings) -> None:
    """Use ``settings`` for this process's records from now on.

    If a pipeline already runs with other settings, it is flushed (within its flush timeout) and closed
    first; its leftovers stay in the spool.
    """
    global _settings, _pipeline  # noqa: PLW0603 - the one pipeline of the process
    with _lock:
        _settings = settings
        old = _pipeline
        if old is not None and old.settings is not settings and old.settings != settings:
            _pipeline = None
            old.close(old.settings.client_records_flush_timeout)


def start(settings: Settings | None = None) -> Pipeline:
    """Build this process's pipeline now (it is otherwise built on the first report).

    Starting also begins replaying the spooled records of dead headrace processes for the same target.
    """
    if settings is not None:
        configure(settings)
    return _pipeline or _start()


def shutdown(timeout: float | None = None) -> bool:
    """Flush (up to ``timeout`` s, default the flush timeout) and stop the pipeline; the next report starts
    a new one. Returns ``True`` if nothing was left in the spool."""
    global _pipeline
    with _lock:
        pipeline, _pipeline = _pipeline, None
    if pipeline is None:
        return True
    return pipeline.close(pipeline.settings.client_records_flush_timeout if timeout is None else timeout)


def install_run_log_handler(settings: Settings | None = None) -> None:
    """Send the records of the ``headrace.flow_runs`` and ``headrace.task_runs`` loggers to the API.

    Idempotent; see :func:`headrace.records.log_handler.install_run_log_handler`.
    """
    from headrace.records import log_handler

    log_handler.install_run_log_handler(settings)


def _start() -> Pipeline:
    global _pipeline, _settings  # noqa: PLW0603 - the one pipeline of the process, built lazily
    with _lock:
        if _pipeline is None:
            from headrace.records.shipper import Pipeline

            if _settings is None:
                from headrace.settings import get_settings

                _settings = get_settings()
            _pipeline = Pipeline(_settings, start=not _exiting)
            _register_exit_hook()
        return _pipeline


def _register_exit_hook() -> None:
    """Flush at exit within ``HEADRACE_CLIENT_RECORDS_FLUSH_TIMEOUT`` (see :func:`headrace.client.sync.on_exit`)."""
    global _exit_hook_pid  # noqa: PLW0603 - once per process
    if _exit_hook_pid == os.getpid():
        return
    _exit_hook_pid = os.getpid()
    from headrace.client.sync import on_exit

    on_exit(_flush_at_exit, order=0)


def _flush_at_exit() -> None:
    global _pipeline, _exiting  # noqa: PLW0603 - the one pipeline of the process
    _exiting = True
    pipeline = _pipeline
    if pipeline is None or pipeline.pid != os.getpid():
        return
    pipeline.close(pipeline.settings.client_records_flush_timeout)
    if _pipeline is pipeline:
        _pipeline = None


def _after_fork_in_child() -> None:
    global _pipeline, _lock, _exit_hook_pid, _exiting  # noqa: PLW0603 - per-process state, reset in a child
    _lock = threading.Lock()
    _exit_hook_pid = None
    _exiting = False
    pipeline, _pipeline = _pipeline, None
    if pipeline is not None:
        pipeline.forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
