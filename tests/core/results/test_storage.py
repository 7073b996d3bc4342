"""Resolving storage URLs through the ``headrace_storage_backends`` hook, and the stored record format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from headrace.plugins import PluginConflictError, hookimpl
from headrace.plugins.types import StorageBackend
from headrace.results import ResultReference, ResultStore, UnknownStorageProtocol, resolve_storage, split_protocol
from headrace.testing.plugins import plugin_manager_with


def test_split_protocol() -> None:
    assert split_protocol("s3://bucket/key") == ("s3", "bucket/key")
    assert split_protocol("MEMORY://x") == ("memory", "x")
    assert split_protocol("/plain/path") == ("file", "/plain/path")


def test_a_plain_path_is_local_storage(tmp_path: Path) -> None:
    storage = resolve_storage(str(tmp_path / "plain"))
    assert storage.backend == "file"
    assert storage.url == (tmp_path / "plain").resolve().as_uri()
    storage.write("k", b"v")
    assert (tmp_path / "plain" / "k").read_bytes() == b"v"


def test_local_protocol_alias(tmp_path: Path) -> None:
    assert resolve_storage(f"local://{tmp_path}/x").backend == "file"


class ZipLikePlugin:
    """A third-party backend: here, fsspec's memory filesystem under another protocol name."""

    @hookimpl
    def headrace_storage_backends(self) -> list[StorageBackend]:
        return [
            StorageBackend(
                name="scratch", protocols=("scratch",), implementation="fsspec.implementations.memory:MemoryFileSystem"
            )
        ]


def test_a_plugin_backend_serves_its_protocol() -> None:
    manager = plugin_manager_with(ZipLikePlugin())
    storage = resolve_storage("scratch://bucket/prefix", manager=manager)
    assert storage.backend == "scratch"
    storage.write("a", b"1")
    assert storage.read("a") == b"1"


def test_an_unknown_protocol_names_the_installed_ones() -> None:
    manager = plugin_manager_with(ZipLikePlugin())
    with pytest.raises(
        UnknownStorageProtocol, match="no result-storage backend serves 's3' URLs; installed protocols: scratch"
    ):
        resolve_storage("s3://bucket", manager=manager)


def test_two_backends_for_one_protocol_is_an_error_naming_both() -> None:
    class Other:
        @hookimpl
        def headrace_storage_backends(self) -> list[StorageBackend]:
            return [
                StorageBackend(
                    name="other",
                    protocols=("scratch",),
                    implementation="fsspec.implementations.memory:MemoryFileSystem",
                )
            ]

    with pytest.raises(PluginConflictError, match=r"several storage backends serve 'scratch' URLs \(scratch, other\)"):
        resolve_storage("scratch://x", manager=plugin_manager_with(ZipLikePlugin(), Other()))


def test_the_record_is_a_json_header_line_then_the_payload(tmp_path: Path) -> None:
    store = ResultStore(resolve_storage(tmp_path.as_uri()), "json")
    reference = store.write([1, 2], key="numbers", cache_key="abc")
    raw = (tmp_path / "numbers").read_bytes()
    header, payload = raw.split(b"\n", 1)
    meta = json.loads(header)
    assert meta["serializer"] == "json"
    assert meta["cache_key"] == "abc"
    assert meta["expiration"] is None
    assert json.loads(payload) == [1, 2]
    assert reference == ResultReference(storage=tmp_path.as_uri(), key="numbers", serializer="json")


def test_reading_something_that_is_not_a_record_says_so(tmp_path: Path) -> None:
    (tmp_path / "stray").write_bytes(b"hello")
    with pytest.raises(ValueError, match="'stray' is not a headrace result"):
        ResultStore(resolve_storage(tmp_path.as_uri())).read("stray")


def test_a_record_is_read_with_the_serializer_it_was_written_with(tmp_path: Path) -> None:
    storage = resolve_storage(tmp_path.as_uri())
    ResultStore(storage, "compressed/json").write({"a": 1}, key="k")
    assert ResultStore(storage, "pickle").read("k").value == {"a": 1}


def test_references_are_recognised_only_in_their_own_shape() -> None:
    assert ResultReference.from_data(None) is None
    assert ResultReference.from_data({"storage": "x", "key": "y"}) is None
    data = {"kind": "headrace.result", "storage": "file:///x", "key": "y", "serializer": "json"}
    assert ResultReference.from_data(data) == ResultReference(storage="file:///x", key="y", serializer="json")
