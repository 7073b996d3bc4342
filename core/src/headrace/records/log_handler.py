"""The logging handler that turns run loggers' records into run logs on the server.

The engine's ``get_run_logger()`` returns an adapter over the logger ``headrace.flow_runs`` or
``headrace.task_runs`` that puts ``flow_run_id`` (and ``task_run_id``) in each record's ``extra``.
:class:`RunLogHandler`, attached to those two loggers by :func:`install_run_log_handler`, makes a
:class:`~headrace.schemas.logs.LogCreate` of each record and hands it to
:func:`headrace.records.report_log`: spooled at once, shipped in batches in the background.

Installation: the engine calls ``install_run_log_handler(settings)`` when the first flow run of the
process starts (and a process-pool worker when it starts). It is idempotent, and does nothing when
``HEADRACE_LOGGING_TO_API_ENABLED`` is false. The run loggers keep propagating to their parents, so
the console output is unchanged; if their level is unset they get ``HEADRACE_LOGGING_LEVEL``.

A record without a run id (a run logger used outside of a flow or task run) follows
``HEADRACE_LOGGING_TO_API_WHEN_MISSING_FLOW``: ``warn`` (a warning, the line is not sent), ``error``
(:class:`MissingRunContext` is raised) or ``ignore``.
"""

from __future__ import annotations

import logging
import warnings
from datetime import datetime, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from headrace.settings import Settings

__all__ = ["RUN_LOGGERS", "MissingRunContext", "RunLogHandler", "install_run_log_handler", "truncate_message"]

RUN_LOGGERS = ("headrace.flow_runs", "headrace.task_runs")
"""The loggers whose records are run logs."""


class MissingRunContext(RuntimeError):
    """A run logger was used outside of a flow or task run (with ``..._WHEN_MISSING_FLOW=error``)."""


def truncate_message(message: str, max_size: int) -> str:
    """``message`` cut to at most ``max_size`` characters, ending with ``… [truncated N characters]``.

    ``N`` is how many characters were removed. Shorter messages are returned unchanged.
    """
    if len(message) <= max_size:
        return message
    longest_marker = len(f"… [truncated {len(message)} characters]")
    keep = max_size - longest_marker
    if keep <= 0:  # a limit shorter than the marker: no room to say so
        return message[:max_size]
    return f"{message[:keep]}… [truncated {len(message) - keep} characters]"


class RunLogHandler(logging.Handler):
    """Reports each record of a run logger as a run log (see the module docstring)."""

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.setFormatter(logging.Formatter("%(message)s"))

    def _when_missing(self) -> str:
        if self.settings is not None:
            return self.settings.logging_to_api_when_missing_flow
        from headrace import records

        pipeline = records._pipeline
        return pipeline.settings.logging_to_api_when_missing_flow if pipeline is not None else "warn"

    def emit(self, record: logging.LogRecord) -> None:
        flow_run_id = getattr(record, "flow_run_id", None)
        task_run_id = getattr(record, "task_run_id", None)
        if flow_run_id is None and task_run_id is None:
            self._missing_run(record)
            return
        try:
            from headrace.records import report_log
            from headrace.schemas.logs import LogCreate

            log = LogCreate(
                flow_run_id=flow_run_id,
                task_run_id=task_run_id,
                name=record.name[:200],
                level=min(max(record.levelno, 0), 100),
                message=self.format(record),
                timestamp=datetime.fromtimestamp(record.created, tz=timezone.utc),
            )
            report_log(log)
        except Exception:
            self.handleError(record)

    def _missing_run(self, record: logging.LogRecord) -> None:
        mode = self._when_missing()
        if mode == "ignore":
            return
        text = (
            f"logger {record.name!r} was used outside of a flow or task run, so this line is not sent to the API "
            "(HEADRACE_LOGGING_TO_API_WHEN_MISSING_FLOW)"
        )
        if mode == "error":
            raise MissingRunContext(text)
        warnings.warn(text, UserWarning, stacklevel=2)


def install_run_log_handler(settings: Settings | None = None) -> RunLogHandler | None:
    """Attach one :class:`RunLogHandler` to the run loggers, once per process; returns it.

    ``settings`` default to the records pipeline's (``headrace.records.configure``) or
    ``get_settings()``. Does nothing, and returns ``None``, when logging to the API is off.
    """
    if settings is None:
        from headrace import records

        settings = records._settings
        if settings is None:
            from headrace.settings import get_settings

            settings = get_settings()
    if not settings.logging_to_api_enabled:
        return None
    handler: RunLogHandler | None = None
    for name in RUN_LOGGERS:
        logger = logging.getLogger(name)
        existing = next((h for h in logger.handlers if isinstance(h, RunLogHandler)), None)
        if existing is not None:
            existing.settings = settings
            handler = existing
        else:
            handler = handler or RunLogHandler(settings)
            logger.addHandler(handler)
        if logger.level == logging.NOTSET:
            logger.setLevel(settings.logging_level)
    return handler
