"""Saving, loading and deleting block documents through an orchestration client.

These coroutines run on the process loop (see :mod:`headrace.blocks.api`) and turn the API's answers
into the block errors: 404 → :class:`BlockNotFound` (or :class:`BlockTypeMismatch` when the name exists
under another type), 409 on create → :class:`BlockAlreadyExists`, 403 when secrets were asked for →
:class:`BlockSecretsForbidden`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID, uuid4

from pydantic import ValidationError

from headrace.blocks.errors import (
    BlockAlreadyExists,
    BlockError,
    BlockNotFound,
    BlockSecretsForbidden,
    BlockTypeMismatch,
    field_problems,
)
from headrace.blocks.schema import block_field_paths, block_schema_create, block_type_create, secret_field_paths
from headrace.blocks.serialization import block_from_document, nested_blocks, wire_data
from headrace.client.base import ApiError
from headrace.schemas.blocks import BlockDocument, BlockDocumentCreate, BlockDocumentFilter, BlockDocumentUpdate

if TYPE_CHECKING:
    from headrace.blocks.core import Block
    from headrace.client.base import OrchestrationClient

__all__ = ["delete_block", "load_block", "needs_secrets", "read_document", "save_block"]

B = TypeVar("B", bound="Block")


def needs_secrets(block_class: type[Block]) -> bool:
    """Whether loading ``block_class`` needs secret values (its own, or possibly a nested block's).

    A block without any lets a read-only API key load it: secrets are asked for only when there are some.
    """
    return bool(secret_field_paths(block_class) or block_field_paths(block_class))


async def save_block(
    client: OrchestrationClient, block: Block, name: str, *, overwrite: bool = False, is_anonymous: bool = False
) -> UUID:
    """Save ``block`` as ``name`` (its anonymous nested blocks first, see :func:`_save_nested`); returns the id."""
    references = await _save_nested(client, block)
    return await _save(client, block, name, references, overwrite=overwrite, is_anonymous=is_anonymous)


async def _save_nested(client: OrchestrationClient, block: Block) -> dict[str, UUID]:
    """Save ``block``'s nested blocks that belong to it; return the document id of each, by field path.

    A nested block saved under its own name is a reference to that document, left as it is. One never
    saved, or saved anonymously along with a parent, belongs to the parent: it is saved with it, so that
    changes made to it are kept. An anonymous document that is gone (its last parent was deleted or
    overwritten) is saved anew.
    """
    references: dict[str, UUID] = {}
    for path, nested in nested_blocks(block).items():
        document_id = nested.block_document_id
        if document_id is None or nested._block_is_anonymous:
            document_id = await _save_anonymous(client, nested)
        references[path] = document_id
    return references


async def _save_anonymous(client: OrchestrationClient, block: Block) -> UUID:
    references = await _save_nested(client, block)
    document_id = block.block_document_id
    if document_id is not None:
        data, create = _wire(block, block.block_document_name or "anonymous", references, is_anonymous=True)
        try:
            document = await client.update_block_document(
                document_id, BlockDocumentUpdate(data=data, block_schema=create.block_schema)
            )
        except ApiError as exc:
            if exc.status != 404:
                raise _failure(f"cannot save the nested block of type {type(block).block_type_slug!r}", exc) from None
        else:
            return document.id
    return await _save(client, block, f"anonymous-{uuid4().hex}", references, overwrite=False, is_anonymous=True)


def _wire(
    block: Block, name: str, references: dict[str, UUID], *, is_anonymous: bool
) -> tuple[dict[str, Any], BlockDocumentCreate]:
    """The document data and the create request for ``block``; a value that cannot be saved is a BlockError."""
    block_class = type(block)
    slug = block_class.block_type_slug
    try:
        data = wire_data(block, references)
    except ValueError as exc:
        raise BlockError(f"cannot save block {name!r} of type {slug!r}: {exc}") from None
    try:
        create = BlockDocumentCreate(
            name=name,
            block_type=block_type_create(block_class),
            block_schema=block_schema_create(block_class),
            data=data,
            is_anonymous=is_anonymous,
        )
    except ValidationError as exc:
        raise BlockError(f"cannot save block {name!r} of type {slug!r}: {field_problems(exc)[0]}") from None
    return data, create


async def _save(
    client: OrchestrationClient,
    block: Block,
    name: str,
    references: dict[str, UUID],
    *,
    overwrite: bool,
    is_anonymous: bool,
) -> UUID:
    from headrace.blocks.cache import forget_block

    slug = type(block).block_type_slug
    data, create = _wire(block, name, references, is_anonymous=is_anonymous)
    try:
        document = await client.create_block_document(create)
    except ApiError as exc:
        if exc.status != 409:
            raise _failure(f"cannot save block {name!r} of type {slug!r}", exc) from None
        if not overwrite:
            raise BlockAlreadyExists(slug, name) from None
        existing = await _read(client, slug, name, include_secrets=False)
        try:
            document = await client.update_block_document(
                existing.id, BlockDocumentUpdate(data=data, block_schema=create.block_schema)
            )
        except ApiError as update_error:
            raise _failure(f"cannot overwrite block {name!r} of type {slug!r}", update_error) from None
    block._attach_document(document.id, name, is_anonymous)
    forget_block(slug, name)
    return document.id


async def load_block(client: OrchestrationClient, block_class: type[B], name: str) -> B:
    """Read the document (with secrets when the class has any) and rebuild the block from it."""
    document = await _read(client, block_class.block_type_slug, name, include_secrets=needs_secrets(block_class))
    return block_from_document(block_class, document)


async def delete_block(client: OrchestrationClient, slug: str, name: str) -> None:
    """Delete the document ``name`` of type ``slug``; one that other blocks refer to is refused."""
    from headrace.blocks.cache import forget_block

    document = await _read(client, slug, name, include_secrets=False)
    try:
        await client.delete_block_document(document.id)
    except ApiError as exc:
        if exc.status == 404:
            raise BlockNotFound(slug, name) from None
        raise _failure(f"cannot delete block {name!r} of type {slug!r}", exc) from None
    forget_block(slug, name)


async def read_document(client: OrchestrationClient, slug: str, name: str) -> BlockDocument:
    """The document ``name`` of type ``slug`` as anyone with read scope sees it: secrets obfuscated."""
    return await _read(client, slug, name, include_secrets=False)


async def _read(client: OrchestrationClient, slug: str, name: str, *, include_secrets: bool) -> BlockDocument:
    try:
        return await client.read_block_document_by_name(slug, name, include_secrets=include_secrets)
    except ApiError as exc:
        if exc.status == 404:
            await _raise_missing(client, slug, name)
        if exc.status == 403 and include_secrets:
            raise BlockSecretsForbidden(
                f"block {name!r} of type {slug!r} has secret fields, and reading their values needs an API key "
                "with write scope; the key in HEADRACE_API_KEY has read scope only"
            ) from None
        raise _failure(f"cannot read block {name!r} of type {slug!r}", exc) from None


async def _raise_missing(client: OrchestrationClient, slug: str, name: str) -> None:
    """Raise :class:`BlockTypeMismatch` if ``name`` exists under other types, else :class:`BlockNotFound`."""
    try:
        page = await client.read_block_documents(BlockDocumentFilter(name_like=name, limit=50))
        others = sorted({d.block_type_slug for d in page.items if d.name == name and d.block_type_slug != slug})
    except Exception:  # only a better message was at stake
        others = []
    if others:
        raise BlockTypeMismatch(
            name, slug, others[0], f"load it with Block.load({others[0] + '/' + name!r}) or that type's class"
        )
    raise BlockNotFound(slug, name)


def _failure(what: str, exc: ApiError) -> BlockError:
    return BlockError(f"{what}: {exc.detail}")
