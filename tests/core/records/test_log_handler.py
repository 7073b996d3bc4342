"""The run-log handler: records of the run loggers become run logs on the server."""

from __future__ import annotations

import logging
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from headrace import records
from headrace.client.http import HttpClient
from headrace.client.sync import SyncClient
from headrace.records.log_handler import RUN_LOGGERS, MissingRunContext, RunLogHandler, install_run_log_handler
from headrace.schemas.logs import LogFilter


@pytest.fixture(autouse=True)
def _restore_run_loggers() -> Iterator[None]:
    saved = {name: (list(logging.getLogger(name).handlers), logging.getLogger(name).level) for name in RUN_LOGGERS}
    # Start clean: a flow run earlier in this process (another test) may have installed the handler.
    for name in RUN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers[:] = [h for h in logger.handlers if not isinstance(h, RunLogHandler)]
    yield
    for name, (handlers, level) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)


def run_handlers(name: str) -> list[logging.Handler]:
    return [h for h in logging.getLogger(name).handlers if isinstance(h, RunLogHandler)]


def test_installing_is_idempotent(make_settings: Any) -> None:
    settings = make_settings(logging_level="DEBUG")
    for name in RUN_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    first = install_run_log_handler(settings)
    second = records.install_run_log_handler(settings)
    assert first is not None
    for name in RUN_LOGGERS:
        assert run_handlers(name) == [first]
        assert logging.getLogger(name).level == logging.DEBUG
    assert second is None or second is first


def test_nothing_is_installed_when_logging_to_the_api_is_off(make_settings: Any) -> None:
    assert install_run_log_handler(make_settings(logging_to_api_enabled=False)) is None
    assert all(run_handlers(name) == [] for name in RUN_LOGGERS)


def test_run_logger_records_reach_the_server(live_server: Any, make_settings: Any) -> None:
    settings = make_settings(api_url=live_server.api_url)
    records.configure(settings)
    install_run_log_handler(settings)
    flow_run_id, task_run_id = uuid.uuid4(), uuid.uuid4()
    flow_logger = logging.getLogger("headrace.flow_runs")
    task_logger = logging.getLogger("headrace.task_runs")
    flow_logger.info("flow says %s", "hello", extra={"flow_run_id": flow_run_id})
    task_logger.warning("task says hi", extra={"flow_run_id": flow_run_id, "task_run_id": task_run_id})
    try:
        raise ValueError("boom")
    except ValueError:
        task_logger.exception("it failed", extra={"flow_run_id": flow_run_id, "task_run_id": str(task_run_id)})
    task_logger.debug("below the level", extra={"flow_run_id": flow_run_id})
    assert records.flush(30)
    with SyncClient(HttpClient(settings)) as client:
        logs = client.read_logs(LogFilter(flow_run_ids=[flow_run_id])).items
    assert [(log.name, log.level, log.message.splitlines()[0]) for log in logs] == [
        ("headrace.flow_runs", logging.INFO, "flow says hello"),
        ("headrace.task_runs", logging.WARNING, "task says hi"),
        ("headrace.task_runs", logging.ERROR, "it failed"),
    ]
    assert logs[1].task_run_id == task_run_id
    assert "ValueError: boom" in logs[2].message  # the traceback travels with the line


def test_a_line_without_a_run_warns_by_default(make_settings: Any, spool: Any) -> None:
    settings = make_settings(api_url="http://127.0.0.1:9/api")
    records.configure(settings)
    install_run_log_handler(settings)
    with pytest.warns(UserWarning, match="outside of a flow or task run"):
        logging.getLogger("headrace.task_runs").warning("orphan line")
    assert records.pending() == 0


def test_a_line_without_a_run_can_be_an_error_or_ignored(make_settings: Any) -> None:
    install_run_log_handler(make_settings(logging_to_api_when_missing_flow="error"))
    with pytest.raises(MissingRunContext):
        logging.getLogger("headrace.flow_runs").warning("orphan line")
    install_run_log_handler(make_settings(logging_to_api_when_missing_flow="ignore"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        logging.getLogger("headrace.flow_runs").warning("orphan line")
    assert caught == []
