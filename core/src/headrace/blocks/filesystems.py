"""Filesystem blocks: a folder on this machine, or any fsspec location, as a saved, named place for files.

Both are storage blocks (:class:`~headrace.results.StorageBlock`), so either is accepted wherever a
result-storage URL is::

    results = LocalFileSystem(basepath="/srv/headrace/results")

    @task(cache_policy=INPUTS, result_storage=results)
    def transform(day: str) -> dict: ...

    RemoteFileSystem.load("lake").write_path("reports/today.csv", data)

:class:`RemoteFileSystem` resolves its URL through the ``headrace_storage_backends`` hook, exactly like a
``result_storage`` URL, so every protocol a plugin serves (``s3://`` from headrace-aws, …) works through it.
Its ``settings`` are fsspec options in clear; ``secret_settings`` hold the credential options, stored
encrypted and merged over ``settings`` only when the filesystem is built.

Paths given to ``read_path``/``write_path`` are relative to ``basepath`` and cannot leave it (no ``..``).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from pydantic import Field, field_validator

from headrace.blocks import Block, SecretDict
from headrace.results.storage import ResultStorage, resolve_storage, split_protocol

__all__ = ["LocalFileSystem", "RemoteFileSystem"]


class _FileSystemBlock(Block):
    """What both filesystem blocks share: reading and writing bytes under a base path."""

    block_capabilities: ClassVar[tuple[str, ...]] = ("read-path", "write-path", "result-storage")

    def result_storage(self) -> ResultStorage:  # pragma: no cover - both subclasses define it
        raise NotImplementedError

    def _key(self, path: str, storage: ResultStorage) -> str:
        """``path`` relative to the base path: relative paths as they are, absolute ones only inside it."""
        path = str(path)
        if not (path.startswith("/") or "://" in path):
            return path
        strip = getattr(storage.filesystem, "_strip_protocol", None)
        full = str(strip(path)) if strip is not None else split_protocol(path)[1]
        root = storage.root.rstrip("/")
        if not full.startswith(root + "/"):
            raise ValueError(f"{path!r} is outside this block's basepath; use a path relative to it")
        return full[len(root) + 1 :]

    def read_path(self, path: str) -> bytes:
        """The bytes of the file at ``path`` under ``basepath`` (:class:`FileNotFoundError` if none)."""
        storage = self.result_storage()
        return storage.read(self._key(path, storage))

    def write_path(self, path: str, content: bytes) -> str:
        """Write ``content`` to ``path`` under ``basepath`` (folders are created); returns the full path."""
        if not isinstance(content, (bytes, bytearray, memoryview)):
            raise TypeError(f"write_path takes bytes, not {type(content).__name__}; encode text first")
        storage = self.result_storage()
        key = self._key(path, storage)
        storage.write(key, bytes(content))
        return storage.path(key)

    async def aread_path(self, path: str) -> bytes:
        """The async form of :meth:`read_path` (runs in a worker thread)."""
        return await asyncio.to_thread(self.read_path, path)

    async def awrite_path(self, path: str, content: bytes) -> str:
        """The async form of :meth:`write_path` (runs in a worker thread)."""
        return await asyncio.to_thread(self.write_path, path, content)


class LocalFileSystem(_FileSystemBlock):
    """A folder on the local disk, for files and for task and flow results.

    A relative ``basepath`` is taken relative to the working directory of the process that uses it.
    """

    block_description: ClassVar[str] = "Files under a folder on the local disk; usable as result storage."
    block_code_example: ClassVar[str | None] = (
        "from headrace.blocks.filesystems import LocalFileSystem\n\n"
        'LocalFileSystem.load("results").write_path("hello.txt", b"hello")'
    )

    basepath: str = Field(description="The folder: a path or a file:// URL.")

    @field_validator("basepath")
    @classmethod
    def _local_only(cls, value: str) -> str:
        protocol, rest = split_protocol(value)
        if protocol not in ("file", "local") or not rest.strip():
            raise ValueError("basepath must be a local folder (a path or a file:// URL); use RemoteFileSystem for URLs")
        return value

    def result_storage(self) -> ResultStorage:
        """The folder as result storage (resolved through the ``file`` storage backend)."""
        return resolve_storage(self.basepath)


def _merge(settings: dict[str, Any], secrets: dict[str, Any]) -> dict[str, Any]:
    """``settings`` with ``secrets`` laid over them; where both hold a mapping, the mappings are merged."""
    merged = dict(settings)
    for key, value in secrets.items():
        current = merged.get(key)
        merged[key] = {**current, **value} if isinstance(current, dict) and isinstance(value, dict) else value
    return merged


class RemoteFileSystem(_FileSystemBlock):
    """Any fsspec location (``s3://bucket/prefix``, ``memory://scratch``, …), for files and for results.

    The protocol must be served by an installed storage backend (``headrace plugins list``).
    """

    block_description: ClassVar[str] = (
        "Files under any fsspec URL, with options and secret credentials; usable as result storage."
    )
    block_code_example: ClassVar[str | None] = (
        "from headrace.blocks.filesystems import RemoteFileSystem\n\n"
        'RemoteFileSystem.load("lake").read_path("reports/today.csv")'
    )

    basepath: str = Field(description="An fsspec URL with its protocol, e.g. s3://bucket/prefix.")
    settings: dict[str, Any] = Field(default_factory=dict, description="fsspec options for the filesystem.")
    secret_settings: SecretDict = Field(
        default_factory=SecretDict,
        description="Credential options (e.g. key and secret), merged over settings when the filesystem is built.",
    )

    @field_validator("basepath")
    @classmethod
    def _has_protocol(cls, value: str) -> str:
        protocol, sep, rest = value.partition("://")
        if not sep or not protocol or not rest.strip("/"):
            raise ValueError("basepath must be a URL with a protocol and a location, e.g. s3://bucket/prefix")
        return value

    def filesystem_options(self) -> dict[str, Any]:
        """The options the filesystem is built with: ``settings`` with ``secret_settings`` merged in."""
        return _merge(self.settings, self.secret_settings.get_secret_value())

    def result_storage(self) -> ResultStorage:
        """The location as result storage, through the storage backend registered for its protocol."""
        return resolve_storage(self.basepath, **self.filesystem_options())
