"""The storage contract suite: what a ``headrace_storage_backends`` backend must do for results.

Subclass :class:`StorageContract` and provide ``storage_url``: a URL in a protocol the backend serves,
pointing at a fresh, empty location for each test (for instance a new prefix in a test bucket). The suite
resolves it through the plugin manager, exactly as a flow's ``result_storage`` is resolved, then checks
reads and writes, keys, result records and serializers, and persisted and cached task results.

Capability flag: :attr:`StorageContract.shared_between_processes` — ``False`` for storage that lives in
one process (``memory://``); the suite then checks that another process indeed does not see the data.
"""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

import pytest

from headrace.flows import flow
from headrace.results import (
    ResultReference,
    ResultStorage,
    ResultStore,
    get_serializer,
    resolve_storage,
    split_protocol,
)
from headrace.tasks import task
from headrace.testing.contracts.environment import HeadraceEnvironment, read_task_runs

__all__ = ["StorageContract"]

SERIALIZERS = ("pickle", "json", "compressed/pickle", "compressed/json")
SAMPLE = {"name": "réservoir", "levels": [1, 2.5, None], "ok": True}


class StorageContract(HeadraceEnvironment):
    """Subclass and provide ``storage_url``: a fresh location, as a URL the backend serves."""

    #: Another process can read what this process wrote (``False`` for process-local storage).
    shared_between_processes: ClassVar[bool] = True

    @pytest.fixture
    def storage_url(self) -> str:
        raise NotImplementedError("provide a `storage_url` fixture: a fresh location the backend serves")

    @pytest.fixture
    def storage(self, storage_url: str) -> ResultStorage:
        return resolve_storage(storage_url)

    # -- resolution -----------------------------------------------------------------------------------

    def test_the_url_resolves_through_a_registered_backend(self, storage_url: str, storage: ResultStorage) -> None:
        from headrace.plugins import get_plugin_manager
        from headrace.plugins.types import StorageBackend

        protocol, _ = split_protocol(storage_url)
        backend = get_plugin_manager().select("headrace_storage_backends", storage.backend)
        assert isinstance(backend, StorageBackend)
        assert protocol in backend.protocols
        assert resolve_storage(storage_url) is storage  # resolved once per process

    # -- bytes ----------------------------------------------------------------------------------------

    def test_write_then_read(self, storage: ResultStorage) -> None:
        storage.write("one", b"first")
        assert storage.read("one") == b"first"
        assert storage.exists("one")

    def test_writing_again_replaces(self, storage: ResultStorage) -> None:
        storage.write("key", b"old")
        storage.write("key", b"new")
        assert storage.read("key") == b"new"

    def test_nested_keys(self, storage: ResultStorage) -> None:
        storage.write("a/b/c", b"deep")
        assert storage.read("a/b/c") == b"deep"
        assert not storage.exists("a/b/d")

    def test_a_missing_key_is_file_not_found(self, storage: ResultStorage) -> None:
        assert not storage.exists("never-written")
        with pytest.raises(FileNotFoundError):
            storage.read("never-written")

    def test_delete(self, storage: ResultStorage) -> None:
        storage.write("gone", b"x")
        storage.delete("gone")
        assert not storage.exists("gone")
        storage.delete("gone")  # deleting what is not there is fine

    def test_empty_and_large_binary_values(self, storage: ResultStorage) -> None:
        large = bytes(range(256)) * 8192  # 2 MiB, every byte value
        storage.write("empty", b"")
        storage.write("large", large)
        assert storage.read("empty") == b""
        assert storage.read("large") == large

    @pytest.mark.parametrize("key", ["", "../escape", "a/../b", "a//b", "./here"])
    def test_invalid_keys_are_refused(self, storage: ResultStorage, key: str) -> None:
        with pytest.raises(ValueError, match="invalid result key"):
            storage.write(key, b"x")

    def test_concurrent_writers(self, storage: ResultStorage) -> None:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: storage.write(f"parallel/{i}", str(i).encode()), range(32)))
        assert [storage.read(f"parallel/{i}") for i in range(32)] == [str(i).encode() for i in range(32)]

    # -- result records ---------------------------------------------------------------------------------

    @pytest.mark.parametrize("serializer", SERIALIZERS)
    def test_a_result_round_trips_with_every_serializer(self, storage: ResultStorage, serializer: str) -> None:
        reference = ResultStore(storage, serializer).write(SAMPLE, key=f"sample-{serializer.replace('/', '-')}")
        assert reference.serializer == get_serializer(serializer).name
        assert ResultReference.from_data(reference.to_data()) == reference
        assert reference.load() == SAMPLE

    def test_expiration_is_kept_with_the_record(self, storage: ResultStorage) -> None:
        store = ResultStore(storage)
        now = datetime.now(timezone.utc)
        store.write("fresh", key="fresh", expiration=now + timedelta(hours=1))
        store.write("stale", key="stale", expiration=now - timedelta(seconds=1))
        fresh = store.read_fresh("fresh")
        assert fresh is not None
        assert fresh.value == "fresh"
        assert store.read_fresh("stale") is None
        assert store.read("stale").value == "stale"  # expired is not gone: refresh replaces it
        assert store.read_fresh("missing") is None

    def test_another_process_reads_what_this_one_wrote(self, storage: ResultStorage) -> None:
        reference = ResultStore(storage, "json").write(SAMPLE, key="shared")
        code = textwrap.dedent(
            f"""
            import json
            from headrace.results import ResultReference
            try:
                print(json.dumps(ResultReference.from_data({reference.to_data()!r}).load()))
            except FileNotFoundError:
                print("missing")
            """
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        if self.shared_between_processes:
            import json

            assert json.loads(done.stdout.strip().splitlines()[-1]) == SAMPLE
        else:
            assert done.stdout.strip().splitlines()[-1] == "missing"

    # -- under flows ----------------------------------------------------------------------------------

    def test_task_results_persist_here(self, storage_url: str) -> None:
        @task(persist_result=True, result_storage=storage_url)
        def produce(n: int) -> dict[str, Any]:
            return {"n": n, "squares": [i * i for i in range(n)]}

        @flow
        def producing() -> None:
            produce(4)

        state = producing(return_state=True)
        flow_run_id = state.state_details.flow_run_id
        assert flow_run_id is not None
        (run,) = read_task_runs(flow_run_id)
        reference = ResultReference.from_data(run.state.data)
        assert reference is not None
        assert reference.storage == storage_url
        assert reference.load() == {"n": 4, "squares": [0, 1, 4, 9]}

    def test_cached_results_live_here(self, storage_url: str) -> None:
        from headrace.cache_policies import INPUTS

        calls: list[int] = []

        @task(cache_policy=INPUTS, result_storage=storage_url)
        def expensive(x: int) -> int:
            calls.append(x)
            return x * 3

        @flow
        def twice() -> list[int]:
            return [expensive(5), expensive(5)]

        state = twice(return_state=True)
        assert state.result() == [15, 15]
        assert calls == [5]
        flow_run_id = state.state_details.flow_run_id
        assert flow_run_id is not None
        names = sorted(run.state.name for run in read_task_runs(flow_run_id))
        assert names == ["Cached", "Completed"]
