"""Fixtures for API tests: a live server on a loopback port, on SQLite and on PostgreSQL.

- ``api``: an ``httpx.Client`` whose base URL is the live server's ``/api``, for ``database_url``
  (so every test using it runs as ``[sqlite]`` and ``[postgresql]``).
- ``start_server(**overrides)``: start another live server on the same database with more settings
  (auth required, CSRF, metrics, ...); returns its :class:`RunningServer`. Stopped after the test.
- ``new_flow_run``: ``await new_flow_run(database)`` writes a flow and a run of it straight to the
  database (for rows that point to a run) and returns the run's id.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from headrace.server.db import Database, models
from headrace.settings import Settings
from headrace.testing.server import RunningServer, running_server

StartServer = Callable[..., RunningServer]
NewFlowRun = Callable[[Database], Awaitable[uuid.UUID]]


async def _new_flow_run(database: Database) -> uuid.UUID:
    async with database.write() as session:
        flow = models.Flow(name=f"flow-{uuid.uuid4().hex}")
        session.add(flow)
        await session.flush()
        run = models.FlowRun(flow_id=flow.id, name="run")
        session.add(run)
        await session.flush()
        return run.id


@pytest.fixture
def new_flow_run() -> NewFlowRun:
    """See the module docstring."""
    return _new_flow_run


@pytest.fixture
def start_server(database_url: str, tmp_path: Path, settings_for: Callable[..., Settings]) -> Iterator[StartServer]:
    with contextlib.ExitStack() as stack:

        def start(**overrides: Any) -> RunningServer:
            overrides.setdefault("server_retention_enabled", False)
            settings = settings_for(database_url, **overrides)
            return stack.enter_context(running_server(settings))

        yield start


@pytest.fixture
def live_server(start_server: StartServer) -> RunningServer:
    return start_server()


@pytest.fixture
def api(live_server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.api_url, timeout=30) as client:
        yield client
