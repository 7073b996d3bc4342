"""Serializers: how a result becomes bytes in result storage, and back.

=====================  ==========================================================================
name                   what
=====================  ==========================================================================
``pickle``             cloudpickle: any Python object, including lambdas and local classes (default)
``json``               JSON via pydantic: portable and readable; models and dataclasses come back as dicts
``compressed/pickle``  ``pickle``, then zlib
``compressed/json``    ``json``, then zlib
=====================  ==========================================================================

Pass a name or an instance wherever a serializer is accepted (``@task(result_serializer="json")``).
``CompressedSerializer(inner, compressionlib="lzma")`` picks another standard-library compressor.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "CompressedSerializer",
    "JSONSerializer",
    "PickleSerializer",
    "Serializer",
    "get_serializer",
]

_COMPRESSIONLIBS = ("zlib", "lzma", "bz2")


@runtime_checkable
class Serializer(Protocol):
    """Turns values into bytes and back. ``name`` is stored with every result, so a reader knows how to load it."""

    @property
    def name(self) -> str: ...

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


@dataclass(frozen=True)
class PickleSerializer:
    """cloudpickle: serializes nearly anything; only readable by Python with the same classes importable."""

    name: str = field(default="pickle", init=False)

    def dumps(self, value: Any) -> bytes:
        import cloudpickle

        return bytes(cloudpickle.dumps(value))

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)


@dataclass(frozen=True)
class JSONSerializer:
    """JSON. Values pydantic can dump (models, dataclasses, datetimes, UUIDs, sets) are converted on the way out."""

    name: str = field(default="json", init=False)

    def dumps(self, value: Any) -> bytes:
        from pydantic_core import PydanticSerializationError, to_json

        try:
            return bytes(to_json(value))
        except PydanticSerializationError as exc:
            raise TypeError(
                f"the json serializer cannot serialize a {type(value).__name__}: {exc}; "
                "use result_serializer='pickle' for arbitrary Python objects"
            ) from exc

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


@dataclass(frozen=True)
class CompressedSerializer:
    """Another serializer's bytes, compressed with ``zlib`` (default), ``lzma`` or ``bz2``."""

    serializer: Serializer = field(default_factory=PickleSerializer)
    compressionlib: str = "zlib"

    def __post_init__(self) -> None:
        if self.compressionlib not in _COMPRESSIONLIBS:
            raise ValueError(
                f"unknown compressionlib {self.compressionlib!r}; choose one of: {', '.join(_COMPRESSIONLIBS)}"
            )

    @property
    def name(self) -> str:
        suffix = "" if self.compressionlib == "zlib" else f"+{self.compressionlib}"
        return f"compressed/{self.serializer.name}{suffix}"

    def dumps(self, value: Any) -> bytes:
        return bytes(self._lib().compress(self.serializer.dumps(value)))

    def loads(self, data: bytes) -> Any:
        return self.serializer.loads(self._lib().decompress(data))

    def _lib(self) -> Any:
        import importlib

        return importlib.import_module(self.compressionlib)


_SIMPLE: dict[str, type[PickleSerializer] | type[JSONSerializer]] = {
    "pickle": PickleSerializer,
    "json": JSONSerializer,
}


def get_serializer(serializer: str | Serializer) -> Serializer:
    """The serializer called ``serializer`` (see the table above), or ``serializer`` itself."""
    if not isinstance(serializer, str):
        if not isinstance(serializer, Serializer):
            raise TypeError(f"a serializer needs name, dumps() and loads(); got {type(serializer).__name__}")
        return serializer
    name = serializer.strip().lower()
    if name in _SIMPLE:
        return _SIMPLE[name]()
    if name.startswith("compressed/"):
        inner, _, lib = name.removeprefix("compressed/").partition("+")
        if inner in _SIMPLE:
            return CompressedSerializer(_SIMPLE[inner](), compressionlib=lib or "zlib")
    known = ", ".join([*_SIMPLE, *(f"compressed/{inner}" for inner in _SIMPLE)])
    raise ValueError(f"unknown result serializer {serializer!r}; choose one of: {known}")
