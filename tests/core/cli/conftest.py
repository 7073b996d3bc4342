"""Every CLI test starts from a clean slate: no HEADRACE_* variables, a fresh HEADRACE_HOME, and a
working directory without a ``.env`` file. ``headrace`` runs the real console script in a subprocess;
``invoke`` runs the command tree in-process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _clean_slate(home: Path) -> None:
    """No HEADRACE_* variables, a fresh HEADRACE_HOME, and a working directory without ``.env``
    (``home`` and the file-writing fixtures come from ``tests/core/conftest.py``)."""


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
