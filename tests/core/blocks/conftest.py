"""Fixtures for the blocks' tests that save and load through a real API.

- ``blocks_mode``: ``"embedded"`` or ``"server"``; a test using it runs once in each. Embedded: no
  ``HEADRACE_API_URL``, documents go to the SQLite database under a session-wide ``HEADRACE_HOME``.
  Server: a live headrace server (uvicorn on a loopback port, its own SQLite database) and
  ``HEADRACE_API_URL`` pointing at it. Both clear every other ``HEADRACE_*`` variable.
- ``unique``: a fresh block-name suffix, since the databases live for the whole session.

Nothing here is autouse, so the other block tests in this folder keep their own environment.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from headrace.settings import get_settings
from headrace.testing.server import RunningServer, running_server


@pytest.fixture(scope="session")
def blocks_embedded_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("blocks-embedded-home")


@pytest.fixture(scope="session")
def blocks_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    saved = {name: os.environ.pop(name) for name in list(os.environ) if name.upper().startswith("HEADRACE_")}
    try:
        settings = get_settings(home=tmp_path_factory.mktemp("blocks-server-home"), server_retention_enabled=False)
    finally:
        os.environ.update(saved)
    with running_server(settings) as server:
        yield server


@pytest.fixture(params=["embedded", "server"])
def blocks_mode(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
    blocks_embedded_home: Path,
    tmp_path: Path,
) -> Iterator[str]:
    """Where blocks are saved in this test: the embedded database, or a live server."""
    for name in list(os.environ):
        if name.upper().startswith("HEADRACE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    if request.param == "server":
        server: RunningServer = request.getfixturevalue("blocks_server")
        monkeypatch.setenv("HEADRACE_HOME", str(tmp_path_factory.getbasetemp() / "blocks-client-home"))
        monkeypatch.setenv("HEADRACE_API_URL", server.api_url)
    else:
        monkeypatch.setenv("HEADRACE_HOME", str(blocks_embedded_home))
    yield str(request.param)
    from headrace import records

    with contextlib.suppress(Exception):  # the flows' run records reach the server before it stops
        records.flush(timeout=30)


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]
