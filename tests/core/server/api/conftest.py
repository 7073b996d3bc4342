"""Fixtures for API tests: a live server on a loopback port, on SQLite and on PostgreSQL.

- ``api``: an ``httpx.Client`` whose base URL is the live server's ``/api``, for ``database_url``
  (so every test using it runs as ``[sqlite]`` and ``[postgresql]``).
- ``start_server(**overrides)``: start another live server on the same database with more settings
  (auth required, CSRF, metrics, ...); returns its :class:`RunningServer`. Stopped after the test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from headrace.settings import Settings
from headrace.testing.server import RunningServer, running_server

StartServer = Callable[..., RunningServer]


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
