"""Fixtures for tests about settings: a clean slate and hand-written configuration files.

``home`` clears every ``HEADRACE_*`` variable, points ``HEADRACE_HOME`` at a fresh folder and moves into a
working directory without a ``.env`` file. Folders whose every test needs that (settings, cli) switch it
on for all of their tests in their own conftest.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
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
