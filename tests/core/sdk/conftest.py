"""Fixtures for the SDK's tests: every flow runs for real, against the embedded default and a live server.

- ``sdk_mode``: ``"embedded"`` or ``"server"``; a test using it (directly or through ``api``) runs once in
  each mode. Embedded: ``HEADRACE_HOME`` is a temporary folder and ``HEADRACE_API_URL`` is unset, so runs go
  to the SQLite database under it, in this process. Server: a live headrace server (uvicorn on a loopback
  port, its own SQLite database) and ``HEADRACE_API_URL`` pointing at it; the client has its own home.
- ``api``: an :class:`Api` reading back what the flows recorded (it flushes the run records first).

Creating and migrating a database takes seconds, so the embedded home and the live server live for the
whole session; tests find their own runs by id, never by counting everything.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from headrace.settings import get_settings
from headrace.testing.server import RunningServer, running_server

MODES = ["embedded", "server"]


def _without_headrace_variables() -> dict[str, str]:
    return {name: os.environ.pop(name) for name in list(os.environ) if name.upper().startswith("HEADRACE_")}


@pytest.fixture(scope="session")
def embedded_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embedded-home")


@pytest.fixture(scope="session")
def server_client_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("client-home")


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    saved = _without_headrace_variables()
    try:
        settings = get_settings(home=tmp_path_factory.mktemp("server-home"), server_retention_enabled=False)
    finally:
        os.environ.update(saved)
    with running_server(settings) as server:
        yield server


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, embedded_home: Path) -> Iterator[None]:
    for name in list(os.environ):
        if name.upper().startswith("HEADRACE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HEADRACE_HOME", str(embedded_home))
    monkeypatch.chdir(tmp_path)
    yield
    from headrace import records

    with contextlib.suppress(Exception):
        records.flush(timeout=30)


@pytest.fixture(params=MODES)
def sdk_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, server_client_home: Path) -> str:
    """Where runs go in this test: the embedded default, or a live server."""
    if request.param == "server":
        server: RunningServer = request.getfixturevalue("live_server")
        monkeypatch.setenv("HEADRACE_HOME", str(server_client_home))
        monkeypatch.setenv("HEADRACE_API_URL", server.api_url)
    return str(request.param)


class Api:
    """Reads back runs through the orchestration client of the current mode."""

    def __init__(self) -> None:
        from headrace.client.sync import SyncClient
        from headrace.engine.api import current_settings

        self.client = SyncClient.from_settings(current_settings())

    def flush(self) -> None:
        from headrace import records

        assert records.flush(timeout=60), "the run records did not reach the API within 60 s"

    def flow_run(self, flow_run_id: UUID) -> Any:
        return self.client.read_flow_run(flow_run_id)

    def flow_run_states(self, flow_run_id: UUID) -> list[Any]:
        return self.client.read_flow_run_states(flow_run_id)

    def task_runs(self, flow_run_id: UUID) -> list[Any]:
        from headrace.schemas.runs import TaskRunFilter

        self.flush()
        runs: list[Any] = []
        while True:
            page = self.client.read_task_runs(TaskRunFilter(flow_run_ids=[flow_run_id], limit=200, offset=len(runs)))
            runs.extend(page.items)
            if len(runs) >= page.total or not page.items:
                return runs

    def task_run(self, task_run_id: UUID) -> Any:
        self.flush()
        return self.client.read_task_run(task_run_id)

    def task_run_states(self, task_run_id: UUID) -> list[Any]:
        """The task run's state history, oldest first."""
        from headrace.client.sync import run_sync

        self.flush()
        return list(run_sync(self.client.client.read_task_run_states(task_run_id)))

    def child_flow_runs(self, parent_task_run_id: UUID) -> list[Any]:
        from headrace.schemas.runs import FlowRunFilter

        return list(self.client.read_flow_runs(FlowRunFilter(parent_task_run_ids=[parent_task_run_id])).items)

    def logs(self, flow_run_id: UUID) -> list[Any]:
        from headrace.schemas.logs import LogFilter

        self.flush()
        return list(self.client.read_logs(LogFilter(flow_run_ids=[flow_run_id], limit=200)).items)


@pytest.fixture
def api(sdk_mode: str) -> Iterator[Api]:
    reader = Api()
    with reader.client:
        yield reader
