"""Result storage: a URL resolved to an fsspec filesystem through the ``headrace_storage_backends`` hook.

``resolve_storage("file:///data/results")`` asks the plugin manager for the backend whose ``protocols``
include the URL's scheme, loads its factory (only now: listing backends never imports one), and builds
the filesystem. A path without a scheme is a local path. The built-ins serve ``file``/``local`` and
``memory``; a plugin adds ``s3``, ``gs``, … the same way.

A *storage block* (:class:`StorageBlock`: any object with ``result_storage() -> ResultStorage``, such as
``LocalFileSystem`` or a plugin's ``S3Bucket``) is accepted wherever a URL is, because a URL cannot carry
credentials. :func:`as_result_storage` turns either into a :class:`ResultStorage`, and remembers a block's
storage under its URL, so that a result reference written through the block (references hold only the
URL) is read back through the same credentials in this process.

Keys are ``/``-separated paths under the URL. Writes are atomic where the filesystem allows it (local files
are written to a temporary name and renamed), so a reader never sees half a result.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

    from headrace.plugins.manager import HeadracePluginManager
    from headrace.plugins.types import StorageBackend

__all__ = [
    "ResultStorage",
    "StorageBlock",
    "UnknownStorageProtocol",
    "as_result_storage",
    "check_storage_target",
    "resolve_storage",
    "split_protocol",
]


class UnknownStorageProtocol(ValueError):
    """No installed storage backend serves a URL's protocol."""


def split_protocol(url: str) -> tuple[str, str]:
    """``("s3", "bucket/path")`` for ``"s3://bucket/path"``; ``("file", path)`` for a plain path."""
    protocol, sep, rest = url.partition("://")
    if not sep:
        return "file", url
    return protocol.lower(), rest


@dataclass(frozen=True)
class ResultStorage:
    """A location for results: ``url`` (what is stored in references) on ``filesystem`` at ``root``."""

    url: str
    filesystem: AbstractFileSystem
    root: str
    backend: str

    def path(self, key: str) -> str:
        key = key.strip("/")
        if not key or any(part in ("", ".", "..") for part in key.split("/")):
            raise ValueError(f"invalid result key {key!r}: use non-empty '/'-separated names without '.' or '..'")
        return f"{self.root.rstrip('/')}/{key}"

    @cached_property
    def _atomic_rename(self) -> bool:
        from fsspec.implementations.local import LocalFileSystem

        return isinstance(self.filesystem, LocalFileSystem)

    def write(self, key: str, data: bytes) -> None:
        """Store ``data`` at ``key``, replacing what was there."""
        path = self.path(key)
        parent = path.rsplit("/", 1)[0]
        if parent:
            self.filesystem.makedirs(parent, exist_ok=True)
        if self._atomic_rename:
            import os

            temporary = f"{path}.{uuid.uuid4().hex}.tmp"
            with open(temporary, "wb") as handle:
                handle.write(data)
            os.replace(temporary, path)
        else:
            self.filesystem.pipe_file(path, data)

    def read(self, key: str) -> bytes:
        """The bytes at ``key``; :class:`FileNotFoundError` when there are none."""
        return bytes(self.filesystem.cat_file(self.path(key)))

    def exists(self, key: str) -> bool:
        return bool(self.filesystem.exists(self.path(key)))

    def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""
        with contextlib.suppress(FileNotFoundError):
            self.filesystem.rm_file(self.path(key))


@runtime_checkable
class StorageBlock(Protocol):
    """Anything that knows where results go, with whatever credentials that takes: a storage block.

    Pass one as ``result_storage=`` to a flow or task instead of a URL. ``result_storage()`` may be called
    once per run, so an implementation should make it cheap (``resolve_storage`` reuses filesystems).
    """

    def result_storage(self) -> ResultStorage:
        """The location this block stands for, as a :class:`ResultStorage`."""
        ...


_cache: dict[tuple[str, str], ResultStorage] = {}
_cache_lock = threading.Lock()
# The storage of the last storage block used for each URL (see as_result_storage).
_block_storages: dict[str, ResultStorage] = {}


def check_storage_target(value: object, owner: str) -> None:
    """Raise a clear :class:`TypeError` unless ``value`` can be a ``result_storage`` (``owner`` names the user)."""
    if value is None or isinstance(value, (str, ResultStorage, StorageBlock)):
        return
    raise _not_a_target(value, owner)


def _not_a_target(value: object, owner: str) -> TypeError:
    return TypeError(
        f"result_storage of {owner} must be a storage URL (for example 'file:///data/results') or a storage "
        f"block with result_storage() (for example LocalFileSystem(basepath=...)); got {type(value).__name__}"
    )


def as_result_storage(target: str | StorageBlock | ResultStorage) -> ResultStorage:
    """The :class:`ResultStorage` for a URL, a storage block, or a storage itself.

    A block's storage is remembered under its URL for the rest of the process: ``resolve_storage(url)``
    (what reading a :class:`~headrace.results.ResultReference` does) then returns it, credentials included.
    """
    if isinstance(target, ResultStorage):
        return target
    if isinstance(target, str):
        return resolve_storage(target)
    if isinstance(target, StorageBlock):
        storage = target.result_storage()
        if not isinstance(storage, ResultStorage):
            raise TypeError(
                f"{type(target).__name__}.result_storage() returned {type(storage).__name__}, not a ResultStorage"
            )
        with _cache_lock:
            _block_storages[storage.url] = storage
        return storage
    raise _not_a_target(target, "a run")


def resolve_storage(url: str, *, manager: HeadracePluginManager | None = None, **storage_options: Any) -> ResultStorage:
    """The storage for ``url``, through the backend registered for its protocol.

    ``storage_options`` are passed to the backend's filesystem factory along with what the URL itself
    carries (for protocols whose filesystem parses options out of URLs). Resolved storages are reused
    within a process. Without options, a storage block's storage remembered for ``url`` (see
    :func:`as_result_storage`) is returned.
    """
    url = _normalize_url(url)
    cache_key = (url, _options_key(storage_options))
    if manager is None:
        with _cache_lock:
            cached = None if storage_options else _block_storages.get(url)
            cached = cached or _cache.get(cache_key)
        if cached is not None:
            return cached
    protocol, _ = split_protocol(url)
    backend = _backend_for(protocol, manager)
    factory = backend.load()
    options = dict(_url_options(factory, url))
    options.update(storage_options)
    filesystem = factory(**options)
    strip = getattr(filesystem, "_strip_protocol", None)
    root = str(strip(url)) if strip is not None else url.partition("://")[2]
    storage = ResultStorage(url=url, filesystem=filesystem, root=root, backend=backend.name)
    if manager is None:
        with _cache_lock:
            _cache[cache_key] = storage
    return storage


def _options_key(options: dict[str, Any]) -> str:
    # Options may nest (client_kwargs={...}): a canonical JSON text is hashable where the dicts are not.
    import json

    return json.dumps(options, sort_keys=True, default=repr) if options else ""


def _normalize_url(url: str) -> str:
    protocol, rest = split_protocol(str(url))
    if "://" in str(url):
        return str(url)
    from pathlib import Path

    return f"{protocol}://{Path(rest).expanduser().resolve().as_posix()}"


def _url_options(factory: Any, url: str) -> dict[str, Any]:
    parse = getattr(factory, "_get_kwargs_from_urls", None)
    if parse is None:
        return {}
    return dict(parse(url))


def _backend_for(protocol: str, manager: HeadracePluginManager | None) -> StorageBackend:
    from headrace.plugins import get_plugin_manager
    from headrace.plugins.types import StorageBackend

    manager = manager or get_plugin_manager()
    registrations = [
        registration
        for registration in manager.registrations("headrace_storage_backends")
        if isinstance(registration, StorageBackend)
    ]
    matching = [registration for registration in registrations if protocol in registration.protocols]
    if not matching:
        known = ", ".join(sorted({p for registration in registrations for p in registration.protocols})) or "(none)"
        raise UnknownStorageProtocol(
            f"no result-storage backend serves {protocol!r} URLs; installed protocols: {known}. "
            "Install the plugin that provides it (for example headrace[aws] for s3)."
        )
    if len(matching) > 1:
        from headrace.plugins.errors import PluginConflictError

        names = ", ".join(registration.name for registration in matching)
        raise PluginConflictError(
            f"several storage backends serve {protocol!r} URLs ({names}); "
            "disable all but one with HEADRACE_PLUGINS_DISABLED"
        )
    return matching[0]
