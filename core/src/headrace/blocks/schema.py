"""What a block class looks like on the wire: its JSON schema, its secret paths and its nested blocks.

The server never imports block classes. It learns each one from the :class:`BlockTypeCreate` and
:class:`BlockSchemaCreate` that travel with every saved document, and it encrypts exactly the leaves
named by ``secret_fields``: dotted paths through the model's fields (into nested plain pydantic
models, through ``Optional`` and unions), with ``*`` standing for every key of a ``SecretDict``.
A field holding another block is not part of this block's secrets: it is stored by reference, and the
nested block's own schema names its own secrets.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Secret, SecretBytes, SecretStr

from headrace.blocks.secrets import SecretDict
from headrace.schemas.blocks import BlockSchemaCreate, BlockTypeCreate

if TYPE_CHECKING:
    from headrace.blocks.core import Block

__all__ = [
    "block_field_paths",
    "block_schema_create",
    "block_type_create",
    "field_types",
    "holds_secrets",
    "secret_field_paths",
]


def field_types(annotation: Any) -> Iterator[Any]:
    """The concrete types an annotation may hold: ``Optional``, unions and ``Annotated`` unwrapped.

    Containers (``list[X]``, ``dict[str, X]``) are yielded as they are: their items are not fields.
    """
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        yield from field_types(typing.get_args(annotation)[0])
    elif origin is typing.Union or origin is types.UnionType:
        for argument in typing.get_args(annotation):
            yield from field_types(argument)
    elif annotation is not type(None):
        yield annotation


def _is_subclass(candidate: Any, parent: type) -> bool:
    return isinstance(candidate, type) and issubclass(candidate, parent)


def is_secret_leaf(kind: Any) -> bool:
    """``SecretStr``, ``SecretBytes`` and pydantic's generic ``Secret[T]`` (one masked value each)."""
    return any(_is_subclass(kind, secret) for secret in (SecretStr, SecretBytes, Secret)) or _is_subclass(
        typing.get_origin(kind), Secret
    )


def secret_field_paths(model: type[BaseModel], prefix: str = "", _seen: frozenset[type] = frozenset()) -> list[str]:
    """The dotted paths of the secret leaves of ``model`` (see the module docstring), in field order."""
    from headrace.blocks.core import Block

    paths: list[str] = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        for kind in field_types(info.annotation):
            if is_secret_leaf(kind):
                paths.append(path)
            elif _is_subclass(kind, SecretDict):
                paths.append(f"{path}.*")
            elif _is_subclass(kind, BaseModel) and not _is_subclass(kind, Block) and kind not in _seen:
                paths.extend(secret_field_paths(kind, f"{path}.", _seen | {model}))
            elif typing.get_origin(kind) is not None and holds_secrets(kind, _seen | {model}):
                paths.append(path)  # a container with secrets in its items is one secret leaf, encrypted whole
    return list(dict.fromkeys(paths))  # a union of two models with one secret names it once


def holds_secrets(annotation: Any, _seen: frozenset[type] = frozenset()) -> bool:
    """Whether a value of this type may hold a secret anywhere inside: in its items, its fields, its blocks.

    Dotted paths cannot name the items of a list (or the values of a ``dict[str, SecretStr]``), so a
    container field that holds secrets is a secret as a whole. A block inside a container is no
    reference either (only a field holding one block is): it travels inline, with its own secrets.
    """
    for kind in field_types(annotation):
        if is_secret_leaf(kind) or _is_subclass(kind, SecretDict):
            return True
        if _is_subclass(kind, BaseModel):
            if kind not in _seen and any(
                holds_secrets(info.annotation, _seen | {kind}) for info in kind.model_fields.values()
            ):
                return True
        elif typing.get_origin(kind) not in (None, typing.Literal) and any(
            holds_secrets(argument, _seen) for argument in typing.get_args(kind) if argument is not Ellipsis
        ):
            return True
    return False


def block_field_paths(
    model: type[BaseModel], prefix: str = "", _seen: frozenset[type] = frozenset()
) -> dict[str, list[type[Block]]]:
    """The dotted paths of fields that may hold a nested block, with the block classes each accepts."""
    from headrace.blocks.core import Block

    found: dict[str, list[type[Block]]] = {}
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        for kind in field_types(info.annotation):
            if _is_subclass(kind, Block):
                found.setdefault(path, []).append(kind)
            elif _is_subclass(kind, BaseModel) and kind not in _seen:
                found.update(block_field_paths(kind, f"{path}.", _seen | {model}))
    return found


def block_type_create(block_class: type[Block]) -> BlockTypeCreate:
    """The block type a class declares, as the server registers it."""
    return BlockTypeCreate(
        slug=block_class.block_type_slug,
        name=block_class.block_type_name,
        description=block_class.block_description,
        documentation_url=block_class.block_documentation_url,
        code_example=block_class.block_code_example,
        logo_url=block_class.block_logo_url,
    )


def block_schema_create(block_class: type[Block]) -> BlockSchemaCreate:
    """This version of the class's fields: JSON schema, secret paths, capabilities and plugin version."""
    return BlockSchemaCreate(
        block_type_slug=block_class.block_type_slug,
        fields=block_class.model_json_schema(),
        secret_fields=secret_field_paths(block_class),
        capabilities=list(block_class.block_capabilities),
        version=block_class.block_schema_version,
    )
