"""Persisted results: a record format, the store that writes and reads it, and the reference a state carries.

A stored result is one object at ``<storage URL>/<key>``: a one-line JSON header, a newline, then the
serialized value::

    {"serializer": "pickle", "created": "2030-01-01T00:00:00+00:00", "expiration": null, "cache_key": null}
    <bytes from the serializer>

The header makes every stored result self-describing: a reader needs only the URL and the key, and a
cache lookup can check the expiration without deserializing the value.

``state.data`` holds a :class:`ResultReference` as a plain dict (``{"kind": "headrace.result", ...}``),
which travels over the wire like any other state field.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from headrace.results.serializers import Serializer, get_serializer
from headrace.results.storage import ResultStorage, resolve_storage

__all__ = ["RESULT_KIND", "ResultRecord", "ResultReference", "ResultStore"]

RESULT_KIND = "headrace.result"


@dataclass(frozen=True)
class ResultReference:
    """Where a persisted result lives: a storage URL and a key in it."""

    storage: str
    key: str
    serializer: str

    def to_data(self) -> dict[str, str]:
        return {"kind": RESULT_KIND, "storage": self.storage, "key": self.key, "serializer": self.serializer}

    @classmethod
    def from_data(cls, data: Any) -> ResultReference | None:
        """The reference in a state's ``data``, or ``None`` when it holds none."""
        if isinstance(data, ResultReference):
            return data
        if isinstance(data, dict) and data.get("kind") == RESULT_KIND:
            return cls(storage=str(data["storage"]), key=str(data["key"]), serializer=str(data.get("serializer", "")))
        return None

    def load(self) -> Any:
        """Read and deserialize the result (``FileNotFoundError`` when it is gone)."""
        return ResultStore(resolve_storage(self.storage)).read(self.key).value


@dataclass(frozen=True)
class ResultRecord:
    """A stored result with its header."""

    value: Any
    serializer: str
    created: datetime
    expiration: datetime | None = None
    cache_key: str | None = None

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expiration is not None and self.expiration <= (now or datetime.now(timezone.utc))


class ResultStore:
    """Writes and reads results in one storage with one serializer (reading honours each record's own)."""

    def __init__(self, storage: ResultStorage, serializer: str | Serializer = "pickle") -> None:
        self.storage = storage
        self.serializer = get_serializer(serializer)

    def write(
        self,
        value: Any,
        *,
        key: str | None = None,
        expiration: datetime | None = None,
        cache_key: str | None = None,
    ) -> ResultReference:
        """Persist ``value`` at ``key`` (a new random key when none is given); return its reference."""
        key = key or uuid.uuid4().hex
        header = {
            "serializer": self.serializer.name,
            "created": datetime.now(timezone.utc).isoformat(),
            "expiration": expiration.isoformat() if expiration else None,
            "cache_key": cache_key,
        }
        payload = self.serializer.dumps(value)
        self.storage.write(key, json.dumps(header).encode() + b"\n" + payload)
        return ResultReference(storage=self.storage.url, key=key, serializer=self.serializer.name)

    def read(self, key: str) -> ResultRecord:
        """The record at ``key``: ``FileNotFoundError`` when there is none, ``ValueError`` when it is not one."""
        header, value_bytes = self._split(self.storage.read(key), key)
        name = str(header["serializer"])
        serializer = self.serializer if name == self.serializer.name else get_serializer(name)
        return ResultRecord(
            value=serializer.loads(value_bytes),
            serializer=name,
            created=datetime.fromisoformat(header["created"]),
            expiration=datetime.fromisoformat(header["expiration"]) if header.get("expiration") else None,
            cache_key=header.get("cache_key"),
        )

    def read_fresh(self, key: str, now: datetime | None = None) -> ResultRecord | None:
        """The record at ``key`` if it exists and has not expired; ``None`` otherwise (a cache miss)."""
        try:
            record = self.read(key)
        except FileNotFoundError:
            return None
        return None if record.is_expired(now) else record

    @staticmethod
    def _split(raw: bytes, key: str) -> tuple[dict[str, Any], bytes]:
        head, sep, rest = raw.partition(b"\n")
        try:
            header = json.loads(head) if sep else None
        except ValueError:
            header = None
        if not isinstance(header, dict) or "serializer" not in header:
            raise ValueError(f"{key!r} is not a headrace result (no result header)")
        return header, rest
