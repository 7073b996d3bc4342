"""The environment flow-level contract tests run in: a temporary ``HEADRACE_HOME``, the embedded default."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

__all__ = ["HeadraceEnvironment", "read_task_runs"]


class HeadraceEnvironment:
    """Mixin: every test runs with ``HEADRACE_HOME`` at :meth:`headrace_home`, no ``HEADRACE_API_URL``
    (runs go to the embedded database) and no other ``HEADRACE_*`` variable from outside."""

    @pytest.fixture(scope="class")
    @classmethod
    def headrace_home(cls, tmp_path_factory: pytest.TempPathFactory) -> Path:
        """Where settings, the embedded database, the spool and default results live (one per class)."""
        return tmp_path_factory.mktemp("headrace-home")

    @pytest.fixture(autouse=True)
    def headrace_environment(self, headrace_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
        for name in list(os.environ):
            if name.upper().startswith("HEADRACE_"):
                monkeypatch.delenv(name)
        monkeypatch.setenv("HEADRACE_HOME", str(headrace_home))
        yield headrace_home
        from headrace import records

        records.flush(timeout=30)


def read_task_runs(flow_run_id: UUID) -> list[Any]:
    """Every task run of a flow run as the API has it, once this process's run records were delivered."""
    from headrace import records
    from headrace.client.sync import SyncClient
    from headrace.engine.api import current_settings
    from headrace.schemas.runs import TaskRunFilter

    if not records.flush(timeout=60):
        raise AssertionError("the run records did not reach the API within 60 s")
    runs: list[Any] = []
    with SyncClient.from_settings(current_settings()) as client:
        while True:
            page = client.read_task_runs(TaskRunFilter(flow_run_ids=[flow_run_id], limit=200, offset=len(runs)))
            runs.extend(page.items)
            if len(runs) >= page.total or not page.items:
                return runs
