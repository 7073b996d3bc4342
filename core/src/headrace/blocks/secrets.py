"""``SecretDict``: a mapping whose every value is a secret (credential options, HTTP headers, …).

pydantic's ``SecretStr`` and ``SecretBytes`` hide one value; a ``SecretDict`` hides the values of a
whole mapping while its keys stay visible, so ``repr()`` still says *which* options are set. Values are
read by subscripting (``headers["Authorization"]``), by :meth:`SecretDict.get_secret_value` (a plain
``dict`` copy) or by iterating: reading them is always an explicit act of the code that uses them.

In a block, the whole of a ``SecretDict`` field is secret: its path in ``secret_fields`` is
``"<field>.*"``. ``model_dump(mode="json")`` masks every value unless the serialization context says
``{"include_secrets": True}`` (what :meth:`headrace.blocks.Block.save` sends to the server).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from headrace.schemas.blocks import OBFUSCATED

__all__ = ["INCLUDE_SECRETS", "SecretDict", "include_secrets"]

INCLUDE_SECRETS = "include_secrets"
"""The serialization-context key that reveals secret values: ``model_dump(context={"include_secrets": True})``."""


def include_secrets(context: Any) -> bool:
    """Whether a pydantic serialization ``context`` asks for secret values in clear."""
    return isinstance(context, Mapping) and bool(context.get(INCLUDE_SECRETS))


class SecretDict(Mapping[str, Any]):
    """A read-only mapping of names to secret values; masked in ``repr``, ``str`` and JSON dumps.

    ::

        headers = SecretDict({"Authorization": "Bearer abc"})
        repr(headers)  # "SecretDict({'Authorization': '********'})"
        headers["Authorization"]  # 'Bearer abc'
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        merged = dict(values or {})
        merged.update(more)
        for key in merged:
            if not isinstance(key, str):
                raise TypeError(f"SecretDict keys are names (str), not {type(key).__name__}")
        self._values: dict[str, Any] = merged

    def get_secret_value(self) -> dict[str, Any]:
        """The values in clear, as a new ``dict``."""
        return dict(self._values)

    def masked(self) -> dict[str, str]:
        """The keys, each with the obfuscated value: what listings and logs may show."""
        return dict.fromkeys(self._values, OBFUSCATED)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SecretDict):
            return self._values == other._values
        return NotImplemented

    def __hash__(self) -> int:  # mutable contents in spirit: hash like a dict would refuse to
        raise TypeError("unhashable type: 'SecretDict'")

    def __repr__(self) -> str:
        return f"SecretDict({self.masked()!r})"

    __str__ = __repr__

    def __reduce__(self) -> tuple[Any, ...]:  # pickles (process pools) keep the values
        return (SecretDict, (self._values,))

    # -- pydantic --------------------------------------------------------------------------------

    @classmethod
    def __get_pydantic_core_schema__(cls, source: type[Any], handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        from_mapping = core_schema.no_info_after_validator_function(
            cls, core_schema.dict_schema(keys_schema=core_schema.str_schema())
        )
        return core_schema.json_or_python_schema(
            json_schema=from_mapping,
            python_schema=core_schema.union_schema([core_schema.is_instance_schema(cls), from_mapping]),
            serialization=core_schema.plain_serializer_function_ser_schema(
                _serialize, info_arg=True, when_used="always"
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "object", "additionalProperties": True, "writeOnly": True, "format": "password"}


def _serialize(value: SecretDict, info: core_schema.SerializationInfo) -> Any:
    if include_secrets(info.context):
        return value.get_secret_value()
    if info.mode_is_json():
        return value.masked()
    return value
