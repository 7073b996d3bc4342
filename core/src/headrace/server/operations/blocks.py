"""Blocks: block types, block schemas (versioned by checksum) and block documents with encrypted secrets.

Saving a document registers what it needs: its block type is upserted by slug (metadata updated) and
its schema by checksum within the type, so an SDK saves a block in one call. The document's secret
leaves (named by its schema, see :mod:`headrace.server.operations.block_data`) are stored as one Fernet
token in ``encrypted_secrets``; the public ``data`` column holds them as ``'********'``. A read returns
them only when asked (``include_secrets``; the API checks the caller's scope), and decrypts only then.

Nested blocks are ``{"$ref": "<id>"}`` in the data: each is checked to exist, recorded in
``block_document_references``, and answered in ``references`` (recursively) on read. A document that
others refer to cannot be deleted (409, naming them), and no document may refer to itself, directly or not.

Every function takes a :class:`~headrace.server.security.encryption.BlockCipher` where it may encrypt or
decrypt; callers keep one per process (the server on its app state, the embedded client on itself).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from headrace.schemas.base import Page, utcnow
from headrace.schemas.blocks import (
    OBFUSCATED,
    BlockDocument,
    BlockDocumentCreate,
    BlockDocumentFilter,
    BlockDocumentSort,
    BlockDocumentUpdate,
    BlockSchema,
    BlockSchemaCreate,
    BlockTypeCreate,
    BlockTypeFilter,
    BlockTypeInfo,
    block_schema_checksum,
)
from headrace.server.db import Database, models
from headrace.server.errors import Problem
from headrace.server.operations import block_data
from headrace.server.operations.pages import fetch_page
from headrace.server.security.encryption import (
    BlockCipher,
    EncryptionKeyError,
    generate_key,
    parse_keys,
    read_key_file,
    write_key_file,
)
from headrace.settings import Settings

__all__ = [
    "MAX_REFERENCE_DEPTH",
    "RotationReport",
    "create_block_document",
    "create_block_schema",
    "create_block_type",
    "delete_block_document",
    "read_block_document",
    "read_block_document_by_name",
    "read_block_documents",
    "read_block_schema",
    "read_block_type",
    "read_block_types",
    "reencrypt_block_secrets",
    "rotate_encryption_key",
    "update_block_document",
]

MAX_REFERENCE_DEPTH = 32
"""How deep nested blocks may go; a deeper chain is refused on write (and never followed further on read)."""


# ------------------------------------------------------------------------------------------- problems


def _type_not_found(slug: str) -> Problem:
    return Problem(404, f"no block type {slug!r}", kind="block-type-not-found")


def _document_not_found(what: str) -> Problem:
    return Problem(404, f"no block document {what}", kind="block-document-not-found")


def _name_taken(slug: str, name: str) -> Problem:
    return Problem(
        409,
        f"a block document named {name!r} of type {slug!r} exists already: update it (PATCH) or delete it first",
        kind="block-document-exists",
    )


def _invalid(detail: str) -> Problem:
    return Problem(422, detail, kind="invalid-block-document")


def _key_problem(exc: EncryptionKeyError) -> Problem:
    return Problem(500, str(exc), kind="encryption-key-error")


# -------------------------------------------------------------------------------------- wire models


def _type_info(row: models.BlockType) -> BlockTypeInfo:
    return BlockTypeInfo.model_validate(row)


def _schema(row: models.BlockSchema) -> BlockSchema:
    return BlockSchema(
        id=row.id,
        checksum=row.checksum,
        block_type_id=row.block_type_id,
        block_type_slug=row.block_type.slug,
        fields=row.fields,
        secret_fields=row.secret_fields,
        capabilities=row.capabilities,
        version=row.version,
        created=row.created,
    )


# -------------------------------------------------------------------------------------- block types


async def _upsert_block_type(
    database: Database, session: AsyncSession, block_type: BlockTypeCreate
) -> models.BlockType:
    """The type's row, inserted if new and its metadata brought up to date (safe against concurrent upserts)."""
    now = utcnow()
    metadata = block_type.model_dump(exclude={"slug"})
    await session.execute(
        database.insert(models.BlockType)
        .values(id=uuid.uuid4(), slug=block_type.slug, created=now, updated=now, **metadata)
        .on_conflict_do_nothing(index_elements=["slug"])
    )
    row = await session.scalar(
        sa.select(models.BlockType)
        .where(models.BlockType.slug == block_type.slug)
        .execution_options(populate_existing=True)
    )
    assert row is not None
    if any(getattr(row, field) != value for field, value in metadata.items()):
        for field, value in metadata.items():
            setattr(row, field, value)
        row.updated = now
        await session.flush()
    return row


async def create_block_type(database: Database, block_type: BlockTypeCreate) -> BlockTypeInfo:
    """Register a block type, or update the metadata of the one with this slug."""
    async with database.write() as session:
        row = await _upsert_block_type(database, session, block_type)
        return _type_info(row)


async def read_block_type(database: Database, slug: str) -> BlockTypeInfo:
    async with database.read() as session:
        row = await session.scalar(sa.select(models.BlockType).where(models.BlockType.slug == slug))
    if row is None:
        raise _type_not_found(slug)
    return _type_info(row)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def read_block_types(database: Database, type_filter: BlockTypeFilter) -> Page[BlockTypeInfo]:
    query = sa.select(models.BlockType)
    if type_filter.slugs is not None:
        query = query.where(models.BlockType.slug.in_(type_filter.slugs))
    if type_filter.name_like:
        pattern = f"%{_escape_like(type_filter.name_like)}%"
        query = query.where(
            sa.or_(models.BlockType.slug.ilike(pattern, escape="\\"), models.BlockType.name.ilike(pattern, escape="\\"))
        )
    async with database.read() as session:
        rows, total = await fetch_page(
            session, query, [models.BlockType.slug.asc()], limit=type_filter.limit, offset=type_filter.offset
        )
    return Page[BlockTypeInfo](
        items=[_type_info(row) for row in rows], total=total, limit=type_filter.limit, offset=type_filter.offset
    )


# ------------------------------------------------------------------------------------ block schemas


async def _upsert_block_schema(
    database: Database, session: AsyncSession, block_type: models.BlockType, schema: BlockSchemaCreate
) -> models.BlockSchema:
    """The schema's row for this type and checksum, inserted if new (the first registration wins).

    Except for secrets: the checksum covers the JSON schema only, so a registration that names secret
    paths the stored row lacks (a client that learned to see more of them) adds them to the row. Secret
    paths are never removed, so no registration can make later documents store a secret in clear.
    """
    checksum = block_schema_checksum(schema.fields)
    await session.execute(
        database.insert(models.BlockSchema)
        .values(
            id=uuid.uuid4(),
            checksum=checksum,
            block_type_id=block_type.id,
            fields=schema.fields,
            secret_fields=schema.secret_fields,
            capabilities=schema.capabilities,
            version=schema.version,
            created=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["block_type_id", "checksum"])
    )
    row = await session.scalar(
        sa.select(models.BlockSchema).where(
            models.BlockSchema.block_type_id == block_type.id, models.BlockSchema.checksum == checksum
        )
    )
    assert row is not None
    missing = [path for path in schema.secret_fields if path not in row.secret_fields]
    if missing:
        row.secret_fields = [*row.secret_fields, *missing]
        await session.flush()
    return row


async def create_block_schema(database: Database, schema: BlockSchemaCreate) -> BlockSchema:
    """Register a schema for an existing block type; the same fields again answer the stored schema."""
    async with database.write() as session:
        block_type = await session.scalar(
            sa.select(models.BlockType).where(models.BlockType.slug == schema.block_type_slug)
        )
        if block_type is None:
            raise _invalid(f"no block type {schema.block_type_slug!r}: register it first (POST /api/block-types)")
        row = await _upsert_block_schema(database, session, block_type, schema)
        return _schema(row)


async def read_block_schema(database: Database, schema_id: UUID) -> BlockSchema:
    async with database.read() as session:
        row = await session.scalar(sa.select(models.BlockSchema).where(models.BlockSchema.id == schema_id))
        if row is None:
            raise Problem(404, f"no block schema with id {schema_id}", kind="block-schema-not-found")
        return _schema(row)


# ------------------------------------------------------------------------------------------- secrets


def _decrypt(cipher: BlockCipher, token: bytes | None) -> dict[block_data.Leaf, Any]:
    if token is None:
        return {}
    try:
        return block_data.from_blob_payload(cipher.decrypt(token))
    except EncryptionKeyError as exc:
        raise _key_problem(exc) from None
    except block_data.DataError as exc:
        raise Problem(500, str(exc), kind="encryption-key-error") from None


async def _encrypt(session: AsyncSession, cipher: BlockCipher, secrets: dict[block_data.Leaf, Any]) -> bytes | None:
    """The blob for ``secrets`` (None when there are none, so documents without secrets need no key)."""
    if not secrets:
        return None
    # A missing key file is created only while no document holds secrets: otherwise the key was lost,
    # and a new one would leave those documents unreadable for good. The user must restore it.
    create = not cipher.has_key() and not await _any_secrets(session)
    try:
        return cipher.encrypt(block_data.blob_payload(secrets), create=create)
    except EncryptionKeyError as exc:
        if not cipher.has_key():
            raise Problem(
                500,
                f"{exc}, but block documents in this database hold secrets encrypted with a key: restore the key "
                "(from your backup) rather than letting a new one be made",
                kind="encryption-key-error",
            ) from None
        raise _key_problem(exc) from None


async def _any_secrets(session: AsyncSession) -> bool:
    found = await session.scalar(
        sa.select(models.BlockDocument.id).where(models.BlockDocument.encrypted_secrets.is_not(None)).limit(1)
    )
    return found is not None


# -------------------------------------------------------------------------------------- references


async def _check_references(session: AsyncSession, references: dict[str, UUID], document_id: UUID | None) -> None:
    """Every referenced document exists, and none of them leads back to ``document_id`` (no cycles)."""
    if not references:
        return
    targets = set(references.values())
    found = set(
        (await session.scalars(sa.select(models.BlockDocument.id).where(models.BlockDocument.id.in_(targets)))).all()
    )
    for path, target in sorted(references.items()):
        if target not in found:
            raise _invalid(f"the reference at {path!r} names block document {target}, which does not exist")
    frontier, seen, depth = targets, set(targets), 1
    while frontier:
        if document_id is not None and document_id in frontier:
            raise _invalid("a block document cannot refer to itself, directly or through other documents")
        depth += 1
        if depth > MAX_REFERENCE_DEPTH:
            raise _invalid(f"nested blocks may be at most {MAX_REFERENCE_DEPTH} levels deep")
        rows = await session.scalars(
            sa.select(models.BlockDocumentReference.referenced_id).where(
                models.BlockDocumentReference.parent_id.in_(frontier)
            )
        )
        frontier = set(rows.all())
        if document_id is not None and document_id in frontier:
            raise _invalid("a block document cannot refer to itself, directly or through other documents")
        frontier -= seen
        seen |= frontier


async def _referenced_by(session: AsyncSession, parent_id: UUID) -> set[UUID]:
    rows = await session.scalars(
        sa.select(models.BlockDocumentReference.referenced_id).where(
            models.BlockDocumentReference.parent_id == parent_id
        )
    )
    return set(rows.all())


async def _drop_orphaned_anonymous(session: AsyncSession, candidates: set[UUID]) -> None:
    """Delete the anonymous documents among ``candidates`` that no document refers to any more.

    An anonymous document exists only as a nested block of its parent (it was saved along with it): once
    the parent is deleted or overwritten with another nested block, nobody can reach it, yet it would keep
    its secrets. Its own anonymous children follow it, level by level.
    """
    while candidates:
        referenced = sa.select(models.BlockDocumentReference.referenced_id).where(
            models.BlockDocumentReference.referenced_id.in_(candidates)
        )
        orphans = set(
            (
                await session.scalars(
                    sa.select(models.BlockDocument.id).where(
                        models.BlockDocument.id.in_(candidates),
                        models.BlockDocument.is_anonymous.is_(True),
                        models.BlockDocument.id.not_in(referenced),
                    )
                )
            ).all()
        )
        if not orphans:
            return
        candidates = set(
            (
                await session.scalars(
                    sa.select(models.BlockDocumentReference.referenced_id).where(
                        models.BlockDocumentReference.parent_id.in_(orphans)
                    )
                )
            ).all()
        )
        await session.execute(
            sa.delete(models.BlockDocumentReference).where(models.BlockDocumentReference.parent_id.in_(orphans))
        )
        await session.execute(sa.delete(models.BlockDocument).where(models.BlockDocument.id.in_(orphans)))


async def _record_references(session: AsyncSession, parent_id: UUID, references: dict[str, UUID]) -> None:
    """Replace the parent's references; anonymous documents it no longer refers to are dropped."""
    before = await _referenced_by(session, parent_id)
    await session.execute(
        sa.delete(models.BlockDocumentReference).where(models.BlockDocumentReference.parent_id == parent_id)
    )
    if references:
        now = utcnow()
        await session.execute(
            sa.insert(models.BlockDocumentReference),
            [
                {"id": uuid.uuid4(), "parent_id": parent_id, "path": path, "referenced_id": target, "created": now}
                for path, target in sorted(references.items())
            ],
        )
    await _drop_orphaned_anonymous(session, before - set(references.values()))


# ------------------------------------------------------------------------------- reading documents


async def _documents(
    session: AsyncSession, cipher: BlockCipher, rows: Iterable[models.BlockDocument], *, include_secrets: bool
) -> list[BlockDocument]:
    """Wire documents for ``rows``, each with its nested documents (loaded level by level, not one by one)."""
    rows = list(rows)
    loaded: dict[UUID, models.BlockDocument] = {row.id: row for row in rows}
    edges: dict[UUID, list[tuple[str, UUID]]] = {}
    frontier = set(loaded)
    for _ in range(MAX_REFERENCE_DEPTH):
        if not frontier:
            break
        result = await session.execute(
            sa.select(
                models.BlockDocumentReference.parent_id,
                models.BlockDocumentReference.path,
                models.BlockDocumentReference.referenced_id,
            ).where(models.BlockDocumentReference.parent_id.in_(frontier))
        )
        missing: set[UUID] = set()
        for parent, path, target in result.all():
            edges.setdefault(parent, []).append((path, target))
            if target not in loaded:
                missing.add(target)
        if missing:
            found = await session.scalars(sa.select(models.BlockDocument).where(models.BlockDocument.id.in_(missing)))
            loaded.update((row.id, row) for row in found.all())
        frontier = missing

    def build(row: models.BlockDocument, ancestors: frozenset[UUID]) -> BlockDocument:
        data = row.data
        if include_secrets and row.encrypted_secrets is not None:
            data = block_data.merge_secrets(row.data, _decrypt(cipher, row.encrypted_secrets))
        references = {
            path: build(loaded[target], ancestors | {row.id})
            for path, target in sorted(edges.get(row.id, []))
            if target in loaded and target not in ancestors and target != row.id
        }
        return BlockDocument(
            id=row.id,
            name=row.name,
            is_anonymous=row.is_anonymous,
            block_type_slug=row.block_type.slug,
            block_type_name=row.block_type.name,
            block_schema_id=row.block_schema_id,
            block_schema_checksum=row.block_schema.checksum,
            data=data,
            references=references,
            created=row.created,
            updated=row.updated,
        )

    return [build(row, frozenset()) for row in rows]


async def read_block_document(
    database: Database, cipher: BlockCipher, document_id: UUID, *, include_secrets: bool = False
) -> BlockDocument:
    async with database.read() as session:
        row = await session.scalar(sa.select(models.BlockDocument).where(models.BlockDocument.id == document_id))
        if row is None:
            raise _document_not_found(f"with id {document_id}")
        return (await _documents(session, cipher, [row], include_secrets=include_secrets))[0]


async def read_block_document_by_name(
    database: Database, cipher: BlockCipher, type_slug: str, name: str, *, include_secrets: bool = False
) -> BlockDocument:
    async with database.read() as session:
        row = await session.scalar(
            sa.select(models.BlockDocument)
            .join(models.BlockType, models.BlockType.id == models.BlockDocument.block_type_id)
            .where(models.BlockType.slug == type_slug, models.BlockDocument.name == name)
        )
        if row is None:
            raise _document_not_found(f"named {name!r} of type {type_slug!r}")
        return (await _documents(session, cipher, [row], include_secrets=include_secrets))[0]


async def read_block_documents(
    database: Database, cipher: BlockCipher, document_filter: BlockDocumentFilter
) -> Page[BlockDocument]:
    query = sa.select(models.BlockDocument)
    if document_filter.block_type_slugs is not None:
        type_ids = sa.select(models.BlockType.id).where(models.BlockType.slug.in_(document_filter.block_type_slugs))
        query = query.where(models.BlockDocument.block_type_id.in_(type_ids))
    if document_filter.name_like:
        pattern = f"%{_escape_like(document_filter.name_like)}%"
        query = query.where(models.BlockDocument.name.ilike(pattern, escape="\\"))
    if not document_filter.include_anonymous:
        query = query.where(models.BlockDocument.is_anonymous.is_(False))
    if document_filter.sort is BlockDocumentSort.UPDATED_DESC:
        order = [models.BlockDocument.updated.desc(), models.BlockDocument.name.asc(), models.BlockDocument.id.asc()]
    elif document_filter.sort is BlockDocumentSort.NAME_DESC:
        order = [models.BlockDocument.name.desc(), models.BlockDocument.id.desc()]
    else:
        order = [models.BlockDocument.name.asc(), models.BlockDocument.id.asc()]
    async with database.read() as session:
        rows, total = await fetch_page(
            session, query, order, limit=document_filter.limit, offset=document_filter.offset
        )
        items = await _documents(session, cipher, rows, include_secrets=document_filter.include_secrets)
    return Page[BlockDocument](items=items, total=total, limit=document_filter.limit, offset=document_filter.offset)


# ------------------------------------------------------------------------------- writing documents


async def create_block_document(
    database: Database, cipher: BlockCipher, document: BlockDocumentCreate
) -> BlockDocument:
    """Save a new document (registering its type and schema); 409 when the name is taken for its type."""
    try:
        references = block_data.find_references(document.data)
    except block_data.DataError as exc:
        raise _invalid(str(exc)) from None
    try:
        async with database.write() as session:
            block_type = await _upsert_block_type(database, session, document.block_type)
            schema = await _upsert_block_schema(database, session, block_type, document.block_schema)
            taken = await session.scalar(
                sa.select(models.BlockDocument.id).where(
                    models.BlockDocument.block_type_id == block_type.id, models.BlockDocument.name == document.name
                )
            )
            if taken is not None:
                raise _name_taken(block_type.slug, document.name)
            await _check_references(session, references, None)
            try:
                public, secrets = block_data.split_secrets(document.data, schema.secret_fields, {})
            except block_data.DataError as exc:
                raise _invalid(f"{exc} (a new document has no stored secrets)") from None
            now = utcnow()
            row = models.BlockDocument(
                id=uuid.uuid4(),
                name=document.name,
                block_type=block_type,
                block_schema=schema,
                data=public,
                encrypted_secrets=await _encrypt(session, cipher, secrets),
                is_anonymous=document.is_anonymous,
                created=now,
                updated=now,
            )
            session.add(row)
            await session.flush()
            await _record_references(session, row.id, references)
            return (await _documents(session, cipher, [row], include_secrets=False))[0]
    except IntegrityError:  # a concurrent create of the same name won between the check and the insert
        raise _name_taken(document.block_type.slug, document.name) from None


async def update_block_document(
    database: Database, cipher: BlockCipher, document_id: UUID, update: BlockDocumentUpdate
) -> BlockDocument:
    """Replace a document's data (and, with ``block_schema``, move it to that schema version).

    Secret leaves sent as ``'********'`` keep their stored values; the stored secrets are decrypted only
    when some leaf asks for that.
    """
    try:
        references = block_data.find_references(update.data)
    except block_data.DataError as exc:
        raise _invalid(str(exc)) from None
    async with database.write() as session:
        row = await session.scalar(
            sa.select(models.BlockDocument)
            .where(models.BlockDocument.id == document_id)
            .with_for_update(of=models.BlockDocument)
        )
        if row is None:
            raise _document_not_found(f"with id {document_id}")
        schema = row.block_schema
        if update.block_schema is not None:
            if update.block_schema.block_type_slug != row.block_type.slug:
                raise _invalid(
                    f"the block schema is for type {update.block_schema.block_type_slug!r}, "
                    f"the document is of type {row.block_type.slug!r}"
                )
            schema = await _upsert_block_schema(database, session, row.block_type, update.block_schema)
        await _check_references(session, references, row.id)
        leaves = block_data.secret_leaves(update.data, schema.secret_fields)
        keeps_stored = any(value == OBFUSCATED for _, value in leaves)
        stored = _decrypt(cipher, row.encrypted_secrets) if keeps_stored else {}
        try:
            public, secrets = block_data.split_secrets(update.data, schema.secret_fields, stored)
        except block_data.DataError as exc:
            raise _invalid(str(exc)) from None
        row.data = public
        row.encrypted_secrets = await _encrypt(session, cipher, secrets)
        row.block_schema = schema
        row.updated = utcnow()
        await session.flush()
        await _record_references(session, row.id, references)
        return (await _documents(session, cipher, [row], include_secrets=False))[0]


async def delete_block_document(database: Database, document_id: UUID) -> None:
    """Delete a document and its references to others; 409 naming the documents that refer to it.

    The anonymous documents it held (nested blocks saved along with it) go with it, unless another
    document refers to them too.
    """
    async with database.write() as session:
        row = await session.scalar(sa.select(models.BlockDocument).where(models.BlockDocument.id == document_id))
        if row is None:
            raise _document_not_found(f"with id {document_id}")
        parents = (
            await session.execute(
                sa.select(models.BlockType.slug, models.BlockDocument.name, models.BlockDocumentReference.path)
                .join(models.BlockDocument, models.BlockDocument.id == models.BlockDocumentReference.parent_id)
                .join(models.BlockType, models.BlockType.id == models.BlockDocument.block_type_id)
                .where(models.BlockDocumentReference.referenced_id == document_id)
                .order_by(models.BlockType.slug, models.BlockDocument.name, models.BlockDocumentReference.path)
            )
        ).all()
        if parents:
            named = ", ".join(f"{slug}/{name} (field {path!r})" for slug, name, path in parents[:10])
            more = f" and {len(parents) - 10} more" if len(parents) > 10 else ""
            raise Problem(
                409,
                f"block document {row.block_type.slug}/{row.name} is used by {named}{more}: "
                "change or delete those first",
                kind="block-document-referenced",
                parents=[{"block_type_slug": slug, "name": name, "path": path} for slug, name, path in parents],
            )
        children = await _referenced_by(session, row.id)
        await session.execute(
            sa.delete(models.BlockDocumentReference).where(models.BlockDocumentReference.parent_id == row.id)
        )
        await session.delete(row)
        await session.flush()
        await _drop_orphaned_anonymous(session, children)


# -------------------------------------------------------------------------------------- key rotation


async def reencrypt_block_secrets(
    database: Database, decrypt_keys: list[str], new_key: str, *, only_stale: bool = False
) -> int:
    """Re-encrypt every document's secrets under ``new_key``, in one transaction; return how many changed.

    ``decrypt_keys`` are tried in turn to open each blob. With ``only_stale``, blobs ``new_key`` already
    opens are left alone (the sweep after a rotation). On PostgreSQL the table is locked against other
    writers for the transaction, so no document is written under an old key while it runs.
    """
    from cryptography.fernet import Fernet, InvalidToken, MultiFernet  # only here: not at server start-up

    opener = MultiFernet([Fernet(key) for key in [new_key, *decrypt_keys]])
    newest = Fernet(new_key)
    changed = 0
    async with database.write() as session:
        if database.dialect == "postgresql":
            await session.execute(sa.text("LOCK TABLE block_documents IN SHARE ROW EXCLUSIVE MODE"))
        rows = (
            await session.execute(
                sa.select(models.BlockDocument.id, models.BlockDocument.encrypted_secrets).where(
                    models.BlockDocument.encrypted_secrets.is_not(None)
                )
            )
        ).all()
        for document_id, token in rows:
            assert token is not None  # selected so
            if only_stale:
                try:
                    newest.decrypt(token)
                    continue
                except InvalidToken:
                    pass
            try:
                plain = opener.decrypt(token)
            except InvalidToken:
                raise EncryptionKeyError(
                    f"the secrets of block document {document_id} cannot be decrypted with the current key(s): "
                    "nothing was changed; restore the key they were encrypted with first"
                ) from None
            await session.execute(
                sa.update(models.BlockDocument)
                .where(models.BlockDocument.id == document_id)
                .values(encrypted_secrets=newest.encrypt(plain))
            )
            changed += 1
    return changed


@dataclass(frozen=True)
class RotationReport:
    """What a rotation did: how many documents it re-encrypted, and what the operator must still do."""

    documents: int
    key_file: str | None
    next_step: str | None


async def rotate_encryption_key(database: Database, settings: Settings, new_key: str | None) -> RotationReport:
    """Re-encrypt every document's secrets under a new key and make that key the only one.

    Key file (no ``HEADRACE_SERVER_ENCRYPTION_KEY``): the file first lists the new key before the old
    ones (every process then decrypts under either and encrypts under the new one), then the documents
    are re-encrypted in one transaction, a sweep catches any document written under the old key
    meanwhile, and only then is the file rewritten with the new key alone. A crash at any step leaves a
    key file that opens every document; running ``rotate`` again finishes the job.

    Environment: the process cannot change another process's environment. With ``new_key``, documents
    are re-encrypted under it (the configured keys decrypt) and the report says to set the variable to
    it; without, the variable must list two or more keys (``NEW,OLD``), and documents are re-encrypted
    under the first.
    """
    if new_key is not None:
        new_key = parse_keys(new_key, "--new-key")[0]
    cipher = BlockCipher(settings)
    if cipher.source.from_environment:
        current = cipher.keys()
        if new_key is None:
            if len(current) < 2:
                raise EncryptionKeyError(
                    "the key comes from HEADRACE_SERVER_ENCRYPTION_KEY: list the new key before the old one "
                    "('NEW,OLD') on every process and run this again, or pass --new-key"
                )
            new_key, current = current[0], current[1:]
        documents = await reencrypt_block_secrets(database, current, new_key)
        documents += await reencrypt_block_secrets(database, current, new_key, only_stale=True)
        return RotationReport(
            documents=documents,
            key_file=None,
            next_step="set HEADRACE_SERVER_ENCRYPTION_KEY to the new key alone on every server, worker and client "
            "that opens this database",
        )
    path = cipher.source.path
    assert path is not None
    old = read_key_file(path) if path.exists() else []
    if not old:
        async with database.read() as session:
            if await _any_secrets(session):
                raise EncryptionKeyError(
                    f"the key file {path} does not exist but block documents hold secrets: restore it first"
                )
    if new_key is None:
        new_key = generate_key()
    write_key_file(path, [new_key, *[key for key in old if key != new_key]])
    documents = await reencrypt_block_secrets(database, old, new_key)
    documents += await reencrypt_block_secrets(database, old, new_key, only_stale=True)
    write_key_file(path, [new_key])
    return RotationReport(documents=documents, key_file=str(path), next_step=None)
