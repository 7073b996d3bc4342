"""Serializers: names, round trips, and errors that say what to do."""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass

import pytest

from headrace.results import CompressedSerializer, JSONSerializer, PickleSerializer, get_serializer


@dataclass
class Row:
    name: str
    size: int


def test_names_resolve_to_serializers() -> None:
    assert isinstance(get_serializer("pickle"), PickleSerializer)
    assert isinstance(get_serializer("JSON"), JSONSerializer)
    compressed = get_serializer("compressed/json")
    assert isinstance(compressed, CompressedSerializer)
    assert compressed.name == "compressed/json"
    assert get_serializer("compressed/pickle+lzma").name == "compressed/pickle+lzma"
    custom = JSONSerializer()
    assert get_serializer(custom) is custom


def test_an_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown result serializer 'yaml'; choose one of: pickle, json"):
        get_serializer("yaml")
    with pytest.raises(ValueError, match="unknown compressionlib 'zstd'"):
        CompressedSerializer(PickleSerializer(), compressionlib="zstd")
    with pytest.raises(TypeError, match="needs name, dumps"):
        get_serializer(42)  # type: ignore[arg-type]


def test_pickle_carries_anything_cloudpickle_can() -> None:
    serializer = PickleSerializer()
    value = {"row": Row("a", 1), "fn": lambda x: x + 1}
    back = serializer.loads(serializer.dumps(value))
    assert back["row"] == Row("a", 1)
    assert back["fn"](1) == 2


def test_json_converts_what_pydantic_can_and_refuses_the_rest() -> None:
    serializer = JSONSerializer()
    when = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    ident = uuid.UUID(int=1)
    assert serializer.loads(serializer.dumps({"when": when, "id": ident, "row": Row("a", 1)})) == {
        "when": "2030-01-01T00:00:00Z",
        "id": str(ident),
        "row": {"name": "a", "size": 1},
    }
    with pytest.raises(TypeError, match="use result_serializer='pickle'"):
        serializer.dumps(object())


@pytest.mark.parametrize("lib", ["zlib", "lzma", "bz2"])
def test_compression_shrinks_and_round_trips(lib: str) -> None:
    value = {"text": "headrace " * 1000}
    plain = JSONSerializer().dumps(value)
    serializer = CompressedSerializer(JSONSerializer(), compressionlib=lib)
    packed = serializer.dumps(value)
    assert len(packed) < len(plain) / 10
    assert serializer.loads(packed) == value
