"""Blocks: typed configuration documents (pydantic models) saved on the server and loaded by name.

::

    from headrace.blocks import Secret

    Secret(value="s3cret").save("warehouse-password")
    Secret.load("warehouse-password").get()  # 's3cret'

Every name here is imported from its module when first used, so that listing block types (which
imports ``headrace.blocks.registry``) loads no block class. The guide is ``docs/blocks.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headrace.blocks.core import Block
    from headrace.blocks.errors import (
        BlockAlreadyExists,
        BlockError,
        BlockInvalid,
        BlockNotFound,
        BlockSecretsForbidden,
        BlockTypeMismatch,
        UnknownBlockType,
    )
    from headrace.blocks.secrets import SecretDict
    from headrace.blocks.system import JSON, DateTime, Secret, String

__all__ = [
    "JSON",
    "Block",
    "BlockAlreadyExists",
    "BlockError",
    "BlockInvalid",
    "BlockNotFound",
    "BlockSecretsForbidden",
    "BlockTypeMismatch",
    "DateTime",
    "Secret",
    "SecretDict",
    "String",
    "UnknownBlockType",
]

_LAZY: dict[str, str] = {
    "Block": "headrace.blocks.core",
    "SecretDict": "headrace.blocks.secrets",
    "BlockAlreadyExists": "headrace.blocks.errors",
    "BlockError": "headrace.blocks.errors",
    "BlockInvalid": "headrace.blocks.errors",
    "BlockNotFound": "headrace.blocks.errors",
    "BlockSecretsForbidden": "headrace.blocks.errors",
    "BlockTypeMismatch": "headrace.blocks.errors",
    "UnknownBlockType": "headrace.blocks.errors",
    "JSON": "headrace.blocks.system",
    "DateTime": "headrace.blocks.system",
    "Secret": "headrace.blocks.system",
    "String": "headrace.blocks.system",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'headrace.blocks' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
