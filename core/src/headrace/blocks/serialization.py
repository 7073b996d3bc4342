"""Between a block instance and a block document's ``data``.

Going out (:func:`wire_data`): the JSON form of the block with every secret in clear (it is going to
the server, which encrypts it) and each nested block replaced by ``{"$ref": "<document id>"}``.
Coming back (:func:`block_from_document`): nested documents from ``references`` become block instances
again, then the block class validates the data; a document that no longer fits the class (the class
gained a required field, changed a type) raises :class:`BlockInvalid` naming the block and the fields.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from pydantic import BaseModel, Secret, SecretBytes, SecretStr, ValidationError
from pydantic_core import PydanticSerializationError

from headrace.blocks.errors import BlockInvalid, BlockTypeMismatch, field_problems
from headrace.blocks.schema import block_field_paths
from headrace.blocks.secrets import INCLUDE_SECRETS
from headrace.schemas.blocks import REFERENCE_KEY, BlockDocument

if TYPE_CHECKING:
    from headrace.blocks.core import Block

__all__ = ["NOT_UTF8", "block_from_document", "nested_blocks", "reveal_secrets", "wire_data"]

NOT_UTF8 = (
    "a SecretBytes value is not UTF-8 text, so it cannot be saved as it is: store binary data base64-encoded "
    "(in a SecretStr)"
)

B = TypeVar("B", bound="Block")


def reveal_secrets(model: BaseModel, dumped: Any) -> Any:
    """Put the clear values of ``model``'s ``SecretStr``/``SecretBytes`` leaves into its JSON dump.

    pydantic always masks those two in JSON mode; ``SecretDict`` and nested blocks reveal themselves
    when the serialization context asks for secrets, so only plain values and plain models are walked.
    """
    from headrace.blocks.core import Block

    if not isinstance(dumped, dict):
        return dumped
    for name in type(model).model_fields:
        if name not in dumped:
            continue
        dumped[name] = _reveal(getattr(model, name), dumped[name], Block)
    return dumped


def _reveal(value: Any, dumped: Any, block_class: type) -> Any:
    revealed: Any = dumped
    if isinstance(value, (SecretStr, Secret)):
        revealed = value.get_secret_value()
    elif isinstance(value, SecretBytes):
        try:
            revealed = value.get_secret_value().decode("utf-8")
        except UnicodeDecodeError:
            # It would come back as other bytes (the JSON form of SecretBytes is UTF-8 text), so refuse.
            raise ValueError(NOT_UTF8) from None
    elif isinstance(value, block_class):
        pass  # a nested block revealed its own secrets
    elif isinstance(value, BaseModel):
        revealed = reveal_secrets(value, dumped)
    elif isinstance(value, (list, tuple)) and isinstance(dumped, list) and len(value) == len(dumped):
        revealed = [_reveal(item, out, block_class) for item, out in zip(value, dumped, strict=True)]
    elif isinstance(value, dict) and isinstance(dumped, dict):
        revealed = {key: _reveal(value[key], out, block_class) if key in value else out for key, out in dumped.items()}
    return revealed


def nested_blocks(model: BaseModel, prefix: str = "") -> dict[str, Block]:
    """The blocks held by ``model``'s fields (and its plain sub-models' fields), by dotted path."""
    from headrace.blocks.core import Block

    found: dict[str, Block] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, Block):
            found[f"{prefix}{name}"] = value
        elif isinstance(value, BaseModel):
            found.update(nested_blocks(value, f"{prefix}{name}."))
    return found


def wire_data(block: Block, references: dict[str, UUID]) -> dict[str, Any]:
    """The document ``data`` for ``block``: secrets in clear, nested blocks as references by id.

    A value that cannot travel as JSON and come back the same raises :class:`ValueError`.
    """
    try:
        data: dict[str, Any] = block.model_dump(mode="json", context={INCLUDE_SECRETS: True})
    except PydanticSerializationError as exc:
        raise ValueError(NOT_UTF8 if NOT_UTF8 in str(exc) else str(exc).splitlines()[0]) from None
    for path, document_id in references.items():
        _set_path(data, path, {REFERENCE_KEY: str(document_id)})
    return data


def block_from_document(block_class: type[B], document: BlockDocument) -> B:
    """Rebuild a block (and its nested blocks) from a document read from the server."""
    if document.block_type_slug != block_class.block_type_slug:
        raise BlockTypeMismatch(
            document.name,
            block_class.block_type_slug,
            document.block_type_slug,
            f"load it with the class registered for {document.block_type_slug!r}",
        )
    data = copy.deepcopy(document.data)
    candidates = block_field_paths(block_class)
    for path, nested_document in document.references.items():
        nested_class = _nested_class(candidates.get(path, []), nested_document.block_type_slug)
        _set_path(data, path, block_from_document(nested_class, nested_document))
    try:
        block = block_class.model_validate(data)
    except ValidationError as exc:
        raise _invalid(block_class, document, exc) from None
    block._attach_document(document.id, document.name, document.is_anonymous)
    return block


def _nested_class(accepted: list[type[Block]], slug: str) -> type[Block]:
    for candidate in accepted:
        if candidate.block_type_slug == slug:
            return candidate
    from headrace.blocks.registry import block_class_for

    return block_class_for(slug)


def _invalid(block_class: type[Block], document: BlockDocument, exc: ValidationError) -> BlockInvalid:
    problems = field_problems(exc)
    slug = block_class.block_type_slug
    shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
    return BlockInvalid(
        f"the saved block {document.name!r} of type {slug!r} no longer fits {block_class.__qualname__} "
        f"({shown}); re-save it with {block_class.__name__}(...).save({document.name!r}, overwrite=True) "
        f"or `headrace block create {slug} {document.name} --from-json FILE --overwrite`"
    )


def _set_path(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    target = data
    for part in parents:
        child = target.get(part)
        if not isinstance(child, dict):
            return  # the parent is unset (None): nothing to put there
        target = child
    target[last] = value
