"""A flow in another process, whose environment holds only the API URL and an API key, loads a block.

The server runs with authentication on (API keys exist). The child's environment is built from
nothing: ``HEADRACE_API_URL``, ``HEADRACE_API_KEY`` and ``HOME``. ``HOME`` is there only so that the
child's ``HEADRACE_HOME`` (default ``~/.headrace``, where the run-record spool lives) is a temporary
folder rather than the real user's home; Python itself needs no variable to start.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from headrace.settings import get_settings
from headrace.testing.server import RunningServer, running_server


@dataclass(frozen=True)
class AuthServer:
    server: RunningServer
    write_key: str
    read_key: str


def _create_key(home: Path, name: str, scope: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "headrace.cli.main", "server", "api-key", "create", "--name", name, "--scope", scope],
        env={"HEADRACE_HOME": str(home), "PATH": os.environ.get("PATH", ""), "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    home = tmp_path_factory.mktemp("auth-server-home")
    write_key = _create_key(home, "flows", "write")
    read_key = _create_key(home, "dashboards", "read")
    saved = {name: os.environ.pop(name) for name in list(os.environ) if name.upper().startswith("HEADRACE_")}
    try:
        settings = get_settings(home=home, server_retention_enabled=False)
    finally:
        os.environ.update(saved)
    with running_server(settings) as server:
        yield AuthServer(server, write_key, read_key)


@pytest.fixture
def as_client(auth_server: AuthServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AuthServer:
    for name in list(os.environ):
        if name.upper().startswith("HEADRACE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HEADRACE_HOME", str(tmp_path / "client-home"))
    monkeypatch.setenv("HEADRACE_API_URL", auth_server.server.api_url)
    monkeypatch.setenv("HEADRACE_API_KEY", auth_server.write_key)
    return auth_server


FLOW_SCRIPT = textwrap.dedent(
    """
    from headrace import flow
    from headrace.blocks import Block, Secret

    @flow
    def show_secret() -> str:
        first = Secret.load("warehouse-password").get()
        again = Block.load("secret/warehouse-password").get()
        assert first == again
        return first

    print("value:", show_secret())
    """
)


def test_flow_in_a_clean_process_loads_a_block(as_client: AuthServer, tmp_path: Path) -> None:
    from headrace.blocks import Secret

    Secret(value="from-the-server-42").save("warehouse-password", overwrite=True)
    script = tmp_path / "flow.py"
    script.write_text(FLOW_SCRIPT, encoding="utf-8")
    child_home = tmp_path / "child-user-home"
    child_home.mkdir()
    env = {
        "HEADRACE_API_URL": as_client.server.api_url,
        "HEADRACE_API_KEY": as_client.write_key,
        "HOME": str(child_home),
    }
    done = subprocess.run(
        [sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "value: from-the-server-42" in done.stdout
    assert "from-the-server-42" not in done.stderr  # no secret in the logs


def test_a_read_only_key_cannot_load_a_block_with_secrets(
    as_client: AuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from headrace.blocks import BlockSecretsForbidden, Secret, String

    Secret(value="hidden").save("for-writers", overwrite=True)
    String(value="public").save("for-readers", overwrite=True)
    monkeypatch.setenv("HEADRACE_API_KEY", as_client.read_key)
    with pytest.raises(BlockSecretsForbidden, match="write scope"):
        Secret.load("for-writers")
    assert String.load("for-readers").value == "public"  # no secrets asked for: read scope suffices
