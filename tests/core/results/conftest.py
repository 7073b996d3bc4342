"""One ``HEADRACE_HOME`` (and so one embedded database) for every contract class here: creating and
migrating a database takes seconds, so the contract's per-class default is overridden."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_headrace_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("headrace-home")
