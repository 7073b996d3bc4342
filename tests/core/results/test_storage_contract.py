"""The built-in ``file`` and ``memory`` backends pass the storage contract."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from headrace.testing.contracts import StorageContract


class TestFileStorage(StorageContract):
    @pytest.fixture(scope="class")
    @classmethod
    def headrace_home(cls, shared_headrace_home: Path) -> Path:
        return shared_headrace_home

    @pytest.fixture
    def storage_url(self, tmp_path: Path) -> str:
        return (tmp_path / "results").as_uri()


class TestMemoryStorage(StorageContract):
    shared_between_processes = False

    @pytest.fixture(scope="class")
    @classmethod
    def headrace_home(cls, shared_headrace_home: Path) -> Path:
        return shared_headrace_home

    @pytest.fixture
    def storage_url(self) -> str:
        return f"memory://results-{uuid.uuid4().hex}"
