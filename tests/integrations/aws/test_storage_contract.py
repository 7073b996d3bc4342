"""The ``s3`` backend passes headrace's storage contract against a moto server, for ``s3://`` URLs."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from headrace.testing.contracts import StorageContract


@pytest.fixture(scope="module")
def shared_headrace_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedded database for the classes here: creating one takes seconds."""
    return tmp_path_factory.mktemp("headrace-home")


class TestS3UrlStorage(StorageContract):
    @pytest.fixture(scope="class")
    @classmethod
    def headrace_home(cls, shared_headrace_home: Path) -> Path:
        return shared_headrace_home

    @pytest.fixture
    def storage_url(self, bucket: str) -> str:
        return f"s3://{bucket}/results-{uuid.uuid4().hex}"


class TestS3aUrlStorage(StorageContract):
    """``s3a://`` (the Hadoop spelling) is served by the same backend."""

    @pytest.fixture(scope="class")
    @classmethod
    def headrace_home(cls, shared_headrace_home: Path) -> Path:
        return shared_headrace_home

    @pytest.fixture
    def storage_url(self, bucket: str) -> str:
        return f"s3a://{bucket}/results-{uuid.uuid4().hex}"
