"""Every CLI test starts from a clean slate: no HEADRACE_* variables, a fresh HEADRACE_HOME, and a
working directory without a ``.env`` file. ``headrace`` runs the real console script in a subprocess;
``invoke`` runs the command tree in-process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.upper().startswith("HEADRACE_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("HEADRACE_HOME", str(home))
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    return home


@pytest.fixture
def workdir(home: Path) -> Path:
    """The working directory, where a ``.env`` file is looked for."""
    return Path.cwd()


@pytest.fixture
def write_profiles(home: Path) -> Callable[[str], Path]:
    """Write ``$HEADRACE_HOME/profiles.toml`` by hand, as a user would."""

    def write(text: str) -> Path:
        home.mkdir(parents=True, exist_ok=True)
        path = home / "profiles.toml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def write_dotenv(workdir: Path) -> Callable[[str], Path]:
    """Write ``.env`` in the working directory."""

    def write(text: str) -> Path:
        path = workdir / ".env"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@dataclass
class Ran:
    """What a run of the command line produced."""

    code: int
    stdout: str
    stderr: str


@pytest.fixture
def headrace() -> Callable[..., Ran]:
    """Run the installed ``headrace`` console script in a subprocess (environment and cwd of the test)."""
    script = Path(sys.executable).with_name("headrace")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "headrace.cli.main"]

    def run(*args: str, env: dict[str, str] | None = None) -> Ran:
        done = subprocess.run(
            [*command, *args],
            capture_output=True,
            text=True,
            env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})},
            cwd=Path.cwd(),
            timeout=120,
            check=False,
        )
        return Ran(done.returncode, done.stdout, done.stderr)

    return run


@pytest.fixture
def invoke() -> Callable[..., Ran]:
    """Run the command tree in-process with typer's CliRunner (no plugin commands)."""
    from typer.testing import CliRunner

    from headrace.cli.main import build_app

    def run(*args: str) -> Ran:
        result = CliRunner().invoke(build_app(), list(args), prog_name="headrace")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Ran(result.exit_code, result.stdout, result.stderr)

    return run
