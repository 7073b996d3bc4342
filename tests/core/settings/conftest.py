"""Every settings test starts from a clean slate (the ``home`` fixture of ``tests/core/conftest.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _clean_slate(home: Path) -> None:
    """No HEADRACE_* variables, a fresh HEADRACE_HOME, and a working directory without ``.env``."""
