"""Routes for blocks: block types, block schemas and block documents.

Reads need read scope; reads that ask for secret values (``include_secrets=true``) need write scope,
because whoever may change a block's credentials may see them and nobody else may. The key that
decrypts secrets is resolved once per app (:func:`get_cipher`), on first use.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response

from headrace.schemas.auth import Scope
from headrace.schemas.base import Page
from headrace.schemas.blocks import (
    BlockDocument,
    BlockDocumentCreate,
    BlockDocumentFilter,
    BlockDocumentUpdate,
    BlockSchema,
    BlockSchemaCreate,
    BlockTypeCreate,
    BlockTypeFilter,
    BlockTypeInfo,
)
from headrace.server.api.bodies import TOO_LARGE_RESPONSE, bounded_body_route
from headrace.server.api.dependencies import Caller, DatabaseDep, Read, Write, forbidden
from headrace.server.errors import Problem
from headrace.server.operations import blocks as operations
from headrace.server.problems import PROBLEM_RESPONSES
from headrace.server.security.encryption import BlockCipher, EncryptionKeyError

MAX_BLOCK_BODY_BYTES = 1024 * 1024
"""Room for a document with its block type (code example, description) and its schema's JSON schema."""

_responses = {**PROBLEM_RESPONSES, **TOO_LARGE_RESPONSE}
_route_class = bounded_body_route(MAX_BLOCK_BODY_BYTES)
types_router = APIRouter(prefix="/block-types", tags=["blocks"], responses=_responses, route_class=_route_class)
schemas_router = APIRouter(prefix="/block-schemas", tags=["blocks"], responses=_responses, route_class=_route_class)
documents_router = APIRouter(prefix="/block-documents", tags=["blocks"], responses=_responses, route_class=_route_class)
router = APIRouter()
"""What :func:`headrace.server.api.api_router` mounts: the three routers above."""


def get_cipher(request: Request) -> BlockCipher:
    """The app's cipher, made on first use (a malformed ``HEADRACE_SERVER_ENCRYPTION_KEY`` is a 500 problem)."""
    cipher: BlockCipher | None = getattr(request.app.state, "block_cipher", None)
    if cipher is None:
        try:
            cipher = BlockCipher(request.app.state.settings)
        except EncryptionKeyError as exc:
            raise Problem(500, str(exc), kind="encryption-key-error") from None
        request.app.state.block_cipher = cipher
    return cipher


CipherDep = Annotated[BlockCipher, Depends(get_cipher)]
Slug = Annotated[str, Path(max_length=100, description="The block type's slug, e.g. 's3-bucket'.")]
Name = Annotated[str, Path(max_length=200, description="The block document's name.")]
IncludeSecrets = Annotated[
    bool, Query(description="Answer secret values in clear instead of '********' (needs write scope).")
]


def _may_see_secrets(caller: Caller, include_secrets: bool) -> None:
    if include_secrets and not caller.scope.allows(Scope.WRITE):
        raise forbidden(caller, Scope.WRITE)


# ---------------------------------------------------------------------------------------- block types


@types_router.post("", summary="Register a block type, or update the metadata of the one with its slug.")
async def create_block_type(database: DatabaseDep, _: Write, block_type: BlockTypeCreate) -> BlockTypeInfo:
    return await operations.create_block_type(database, block_type)


@types_router.post("/filter", summary="Block types by slug or name, in pages, sorted by slug.")
async def filter_block_types(
    database: DatabaseDep, _: Read, type_filter: Annotated[BlockTypeFilter, Body(default_factory=BlockTypeFilter)]
) -> Page[BlockTypeInfo]:
    return await operations.read_block_types(database, type_filter)


@types_router.get("/{slug}", summary="One block type by slug.")
async def read_block_type(database: DatabaseDep, _: Read, slug: Slug) -> BlockTypeInfo:
    return await operations.read_block_type(database, slug)


@types_router.get("/{slug}/block-documents/{name}", summary="One block document by its type's slug and its name.")
async def read_block_document_by_name(
    database: DatabaseDep,
    cipher: CipherDep,
    caller: Read,
    slug: Slug,
    name: Name,
    *,
    include_secrets: IncludeSecrets = False,
) -> BlockDocument:
    _may_see_secrets(caller, include_secrets)
    return await operations.read_block_document_by_name(database, cipher, slug, name, include_secrets=include_secrets)


# -------------------------------------------------------------------------------------- block schemas


@schemas_router.post("", summary="Register a schema version of a block type; the same fields answer the same schema.")
async def create_block_schema(database: DatabaseDep, _: Write, schema: BlockSchemaCreate) -> BlockSchema:
    return await operations.create_block_schema(database, schema)


@schemas_router.get("/{schema_id}", summary="One block schema by id.")
async def read_block_schema(database: DatabaseDep, _: Read, schema_id: UUID) -> BlockSchema:
    return await operations.read_block_schema(database, schema_id)


# ------------------------------------------------------------------------------------ block documents


@documents_router.post(
    "", status_code=201, summary="Save a block document (its type and schema too); 409 if the name is taken."
)
async def create_block_document(
    database: DatabaseDep, cipher: CipherDep, _: Write, document: BlockDocumentCreate
) -> BlockDocument:
    return await operations.create_block_document(database, cipher, document)


@documents_router.post("/filter", summary="Block documents by type and name, in pages.")
async def filter_block_documents(
    database: DatabaseDep,
    cipher: CipherDep,
    caller: Read,
    document_filter: Annotated[BlockDocumentFilter, Body(default_factory=BlockDocumentFilter)],
) -> Page[BlockDocument]:
    _may_see_secrets(caller, document_filter.include_secrets)
    return await operations.read_block_documents(database, cipher, document_filter)


@documents_router.get("/{document_id}", summary="One block document by id.")
async def read_block_document(
    database: DatabaseDep,
    cipher: CipherDep,
    caller: Read,
    document_id: UUID,
    *,
    include_secrets: IncludeSecrets = False,
) -> BlockDocument:
    _may_see_secrets(caller, include_secrets)
    return await operations.read_block_document(database, cipher, document_id, include_secrets=include_secrets)


@documents_router.patch(
    "/{document_id}", summary="Replace a document's data; secrets sent as '********' keep their stored values."
)
async def update_block_document(
    database: DatabaseDep, cipher: CipherDep, _: Write, document_id: UUID, update: BlockDocumentUpdate
) -> BlockDocument:
    return await operations.update_block_document(database, cipher, document_id, update)


@documents_router.delete("/{document_id}", status_code=204, summary="Delete a block document; 409 while referenced.")
async def delete_block_document(database: DatabaseDep, _: Write, document_id: UUID) -> Response:
    await operations.delete_block_document(database, document_id)
    return Response(status_code=204)


router.include_router(types_router)
router.include_router(schemas_router)
router.include_router(documents_router)
