"""LocalFileSystem and RemoteFileSystem: files under a base path, and result storage for flows and tasks."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from headrace.blocks.filesystems import LocalFileSystem, RemoteFileSystem
from headrace.cache_policies import INPUTS
from headrace.flows import flow
from headrace.plugins import get_plugin_manager, hookimpl
from headrace.plugins.types import StorageBackend
from headrace.results import (
    ResultReference,
    ResultStorage,
    ResultStore,
    StorageBlock,
    UnknownStorageProtocol,
    as_result_storage,
    resolve_storage,
)
from headrace.tasks import task
from headrace.testing.contracts import HeadraceEnvironment, StorageContract, read_task_runs


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedded database for the module's flow tests (creating one takes seconds)."""
    return tmp_path_factory.mktemp("headrace-home")


class SharedHome(HeadraceEnvironment):
    @pytest.fixture(scope="class")
    @classmethod
    def headrace_home(cls, shared_home: Path) -> Path:
        return shared_home


# -- both blocks pass the storage contract --------------------------------------------------------------


class TestLocalFileSystemStorage(StorageContract):
    @pytest.fixture(scope="class")
    @classmethod
    def headrace_home(cls, shared_home: Path) -> Path:
        return shared_home

    @pytest.fixture
    def block(self, tmp_path: Path) -> LocalFileSystem:
        return LocalFileSystem(basepath=str(tmp_path / "results"))

    @pytest.fixture
    def storage_url(self, block: LocalFileSystem) -> str:
        return block.result_storage().url

    @pytest.fixture
    def storage(self, block: LocalFileSystem) -> ResultStorage:
        return as_result_storage(block)


class TestRemoteFileSystemStorage(StorageContract):
    shared_between_processes = False  # memory:// lives in this process

    @pytest.fixture(scope="class")
    @classmethod
    def headrace_home(cls, shared_home: Path) -> Path:
        return shared_home

    @pytest.fixture
    def block(self) -> RemoteFileSystem:
        return RemoteFileSystem(basepath=f"memory://results-{uuid.uuid4().hex}")

    @pytest.fixture
    def storage_url(self, block: RemoteFileSystem) -> str:
        return block.result_storage().url

    @pytest.fixture
    def storage(self, block: RemoteFileSystem) -> ResultStorage:
        return as_result_storage(block)


# -- reading and writing paths -----------------------------------------------------------------------------


def test_both_are_storage_blocks(tmp_path: Path) -> None:
    assert isinstance(LocalFileSystem(basepath=str(tmp_path)), StorageBlock)
    assert isinstance(RemoteFileSystem(basepath="memory://x"), StorageBlock)


def test_local_write_then_read(tmp_path: Path) -> None:
    block = LocalFileSystem(basepath=str(tmp_path / "base"))
    written = block.write_path("reports/today.csv", b"a,b\n1,2\n")
    assert Path(written) == tmp_path / "base" / "reports" / "today.csv"
    assert (tmp_path / "base" / "reports" / "today.csv").read_bytes() == b"a,b\n1,2\n"
    assert block.read_path("reports/today.csv") == b"a,b\n1,2\n"
    assert block.read_path(str(tmp_path / "base" / "reports" / "today.csv")) == b"a,b\n1,2\n"  # absolute, inside


def test_local_basepath_may_be_a_file_url_or_relative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    LocalFileSystem(basepath=(tmp_path / "u").as_uri()).write_path("x", b"1")
    assert (tmp_path / "u" / "x").read_bytes() == b"1"
    monkeypatch.chdir(tmp_path)
    LocalFileSystem(basepath="relative").write_path("y", b"2")
    assert (tmp_path / "relative" / "y").read_bytes() == b"2"


def test_paths_cannot_leave_the_basepath(tmp_path: Path) -> None:
    block = LocalFileSystem(basepath=str(tmp_path / "base"))
    (tmp_path / "secret.txt").write_bytes(b"no")
    for path in ("../secret.txt", "a/../../secret.txt", str(tmp_path / "secret.txt"), str(tmp_path / "base")):
        with pytest.raises(ValueError, match=r"invalid result key|outside this block's basepath"):
            block.read_path(path)
    with pytest.raises(ValueError, match="invalid result key"):
        block.write_path("../escape.txt", b"x")
    assert not (tmp_path / "escape.txt").exists()


def test_a_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        LocalFileSystem(basepath=str(tmp_path)).read_path("nothing-here")


def test_write_path_takes_bytes(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="write_path takes bytes, not str"):
        LocalFileSystem(basepath=str(tmp_path)).write_path("t.txt", "text")  # type: ignore[arg-type]


def test_async_twins(tmp_path: Path) -> None:
    block = RemoteFileSystem(basepath=f"memory://async-{uuid.uuid4().hex}")

    async def both() -> bytes:
        await block.awrite_path("k/v", b"async bytes")
        return await block.aread_path("k/v")

    assert asyncio.run(both()) == b"async bytes"


def test_basepath_validation() -> None:
    with pytest.raises(ValidationError, match="use RemoteFileSystem for URLs"):
        LocalFileSystem(basepath="s3://bucket/prefix")
    with pytest.raises(ValidationError, match="must be a URL with a protocol"):
        RemoteFileSystem(basepath="/just/a/path")
    with pytest.raises(ValidationError, match="must be a URL with a protocol"):
        RemoteFileSystem(basepath="memory://")


def test_a_protocol_no_backend_serves_is_a_clear_error() -> None:
    block = RemoteFileSystem(basepath="nosuchfs://bucket/prefix")
    with pytest.raises(UnknownStorageProtocol, match="no result-storage backend serves 'nosuchfs' URLs"):
        block.read_path("x")


# -- a plugin's protocol, with credentials from secret_settings --------------------------------------------

GUARDED_MODULE = """
from fsspec.implementations.memory import MemoryFileSystem

SEEN = []


class GuardedFileSystem(MemoryFileSystem):
    protocol = "guarded"

    @classmethod
    def _strip_protocol(cls, path):
        return super()._strip_protocol(str(path).removeprefix("guarded://"))


def guarded(**options):
    SEEN.append(options)
    if options.get("token") != "s3cr3t-token":
        raise PermissionError("guarded:// needs the right token")
    return GuardedFileSystem()
"""


class GuardedPlugin:
    """A plugin's backend that refuses to build a filesystem without the right credential option."""

    @hookimpl
    def headrace_storage_backends(self) -> list[StorageBackend]:
        return [StorageBackend(name="guarded", protocols=("guarded",), implementation="guarded_fs:guarded")]


@pytest.fixture
def guarded_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    (tmp_path / "guarded_fs.py").write_text(textwrap.dedent(GUARDED_MODULE), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    plugin = GuardedPlugin()
    get_plugin_manager().register(plugin)
    try:
        import guarded_fs  # type: ignore[import-not-found]

        yield guarded_fs
    finally:
        get_plugin_manager().unregister(plugin)
        sys.modules.pop("guarded_fs", None)


def _guarded_block() -> RemoteFileSystem:
    return RemoteFileSystem(
        basepath=f"guarded://vault-{uuid.uuid4().hex}/files",
        settings={"region": "eu", "client": {"timeout": 5}},
        secret_settings={"token": "s3cr3t-token", "client": {"key": "k-123"}},
    )


def test_secret_settings_are_merged_over_settings() -> None:
    options = _guarded_block().filesystem_options()
    assert options == {"region": "eu", "client": {"timeout": 5, "key": "k-123"}, "token": "s3cr3t-token"}


def test_secret_settings_are_secret() -> None:
    block = _guarded_block()
    assert "secret_settings.*" in RemoteFileSystem.secret_fields()
    assert "s3cr3t-token" not in repr(block)
    assert "s3cr3t-token" not in block.model_dump_json()


def test_a_plugin_protocol_works_through_the_block(guarded_plugin: Any) -> None:
    block = _guarded_block()
    block.write_path("a/b.txt", b"guarded bytes")
    assert block.read_path("a/b.txt") == b"guarded bytes"
    assert block.result_storage().backend == "guarded"
    assert guarded_plugin.SEEN[-1]["token"] == "s3cr3t-token"
    without_credentials = RemoteFileSystem(basepath=block.basepath)
    with pytest.raises(PermissionError, match="needs the right token"):
        without_credentials.read_path("a/b.txt")


def test_a_reference_written_through_a_block_reads_back_with_its_credentials(guarded_plugin: Any) -> None:
    block = _guarded_block()
    reference = ResultStore(as_result_storage(block), "json").write({"ok": True}, key="r1")
    assert reference.storage == block.basepath  # references hold only the URL ...
    assert ResultReference.from_data(reference.to_data()) == reference
    assert reference.load() == {"ok": True}  # ... and this process remembers the block's storage for it
    assert resolve_storage(block.basepath) is as_result_storage(block)


# -- in flows ----------------------------------------------------------------------------------------------


class TestResultStorageInFlows(SharedHome):
    def test_a_second_run_is_a_cache_hit(self, tmp_path: Path) -> None:
        storage = LocalFileSystem(basepath=str(tmp_path / "cache"))
        calls: list[int] = []

        @task(cache_policy=INPUTS, result_storage=storage)
        def expensive(x: int) -> int:
            calls.append(x)
            return x * 10

        @flow
        def pipeline(x: int) -> int:
            return expensive(x)

        first = pipeline(4, return_state=True)
        second = pipeline(4, return_state=True)
        assert (first.result(), second.result()) == (40, 40)
        assert calls == [4]
        for state, name in ((first, "Completed"), (second, "Cached")):
            flow_run_id = state.state_details.flow_run_id
            assert flow_run_id is not None
            (run,) = read_task_runs(flow_run_id)
            assert run.state.name == name
            reference = ResultReference.from_data(run.state.data)
            assert reference is not None
            assert reference.storage == storage.result_storage().url
        assert any((tmp_path / "cache").iterdir())

    def test_a_loaded_block_works_too(self, tmp_path: Path) -> None:
        name = f"results-{uuid.uuid4().hex[:8]}"
        LocalFileSystem(basepath=str(tmp_path / "saved")).save(name)
        loaded = LocalFileSystem.load(name)

        @task(persist_result=True, result_storage=loaded, result_storage_key="answer-{x}")
        def answer(x: int) -> dict[str, int]:
            return {"x": x}

        @flow
        def run() -> dict[str, int]:
            return answer(7)

        assert run() == {"x": 7}
        assert (tmp_path / "saved" / "answer-7").exists()
        assert ResultStore(as_result_storage(loaded)).read("answer-7").value == {"x": 7}

    def test_a_flow_result_storage_block_is_inherited_by_its_tasks(self, tmp_path: Path) -> None:
        storage = LocalFileSystem(basepath=str(tmp_path / "flow-level"))

        @task(persist_result=True, result_storage_key="child")
        def child() -> str:
            return "from the child"

        @flow(persist_result=True, result_storage=storage)
        def parent() -> str:
            return child()

        assert parent() == "from the child"
        assert ResultStore(as_result_storage(storage)).read("child").value == "from the child"
        header = json.loads(storage.read_path("child").split(b"\n", 1)[0])  # read_path sees the raw record
        assert header["serializer"] == "pickle"

    def test_anything_else_is_a_clear_error(self) -> None:
        with pytest.raises(TypeError, match=r"result_storage of task 'nope' must be a storage URL .* got int"):
            task(result_storage=42, name="nope")(lambda: None)  # type: ignore[call-overload]
        with pytest.raises(TypeError, match=r"result_storage of flow 'bad' must be a storage URL .* got dict"):
            flow(result_storage={"basepath": "/tmp"}, name="bad")(lambda: None)  # type: ignore[call-overload]
