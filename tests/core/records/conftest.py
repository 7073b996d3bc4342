"""Fixtures for the run-record tests: clean settings, live servers (in a thread, or a real subprocess
that can be stopped and started again on the same port), and Python scripts run as real processes.

- ``make_settings(**overrides)``: Settings from arguments alone with a temporary ``HEADRACE_HOME``.
- ``live_server``: the headrace server in a thread on a free port (SQLite under that home).
- ``server_process``: :class:`ServerProcess`, ``headrace server start`` as a subprocess on a fixed port;
  ``stop()`` (SIGTERM) and ``start()`` again on the same port, so the API URL the spool recorded stays valid.
- ``script(source, **env)``: a :class:`subprocess.Popen` running ``source`` with ``HEADRACE_HOME`` set.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from headrace.settings import Settings, get_settings
from headrace.testing.server import RunningServer, running_server

MakeSettings = Callable[..., Settings]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in list(os.environ):
        if name.upper().startswith("HEADRACE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HEADRACE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    yield
    from headrace import records
    from headrace.client.embedded import dispose_shared_databases

    records.shutdown(timeout=0)
    records._settings = None
    dispose_shared_databases()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def spool(home: Path) -> Path:
    return home / "spool"


@pytest.fixture
def make_settings(home: Path) -> MakeSettings:
    def make(**overrides: Any) -> Settings:
        overrides.setdefault("home", home)
        overrides.setdefault("server_retention_enabled", False)
        return get_settings(**overrides)

    return make


@pytest.fixture
def live_server(make_settings: MakeSettings) -> Iterator[RunningServer]:
    with running_server(make_settings()) as server:
        yield server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("HEADRACE_")}
    env["HEADRACE_HOME"] = str(home)
    env["HEADRACE_SERVER_RETENTION_ENABLED"] = "false"
    env.update(extra)
    return env


class ServerProcess:
    """The headrace server as a real process on a fixed loopback port, with its own HEADRACE_HOME."""

    def __init__(self, home: Path, port: int) -> None:
        self.home = home
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self, timeout: float = 60.0) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "headrace.cli.main",
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=child_env(self.home),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"the server process exited with {self.process.returncode}: {error[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.api_url}/health", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise TimeoutError(f"the server did not answer on port {self.port} within {timeout} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server process with its own home (``tmp_path/server-home``), not started yet."""
    server = ServerProcess(tmp_path / "server-home", free_port())
    yield server
    server.stop()


@pytest.fixture
def script(tmp_path: Path, home: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """``script(source, **env)``: run Python ``source`` as a process (stdout piped, text)."""
    started: list[subprocess.Popen[str]] = []

    def run(source: str, **env: str) -> subprocess.Popen[str]:
        path = tmp_path / f"script_{len(started)}.py"
        path.write_text(textwrap.dedent(source))
        process = subprocess.Popen(
            [sys.executable, str(path)],
            env=child_env(home, **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    yield run
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(30)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
