"""Built-in storage backends: the local file system and process memory, both through fsspec."""

from __future__ import annotations

from collections.abc import Iterable

from headrace.plugins import hookimpl
from headrace.plugins.types import StorageBackend


@hookimpl
def headrace_storage_backends() -> Iterable[StorageBackend]:
    return [
        StorageBackend(
            name="file",
            protocols=("file", "local"),
            implementation="fsspec.implementations.local:LocalFileSystem",
            description="Files on the local disk (file:///path).",
        ),
        StorageBackend(
            name="memory",
            protocols=("memory",),
            implementation="fsspec.implementations.memory:MemoryFileSystem",
            description="Process memory (memory://name); gone when the process ends.",
        ),
    ]
