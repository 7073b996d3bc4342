"""Blocks on the wire: block types, block schemas (versioned by checksum) and block documents.

A *block type* is what a plugin contributes (slug, description, documentation URL, code example). A
*block schema* is the JSON schema of one version of a block class, identified by the checksum of its
fields; it names the paths of its secret fields. A *block document* is a named, saved configuration:
its ``data`` follows one block schema.

Secret values never travel back from the server unless the caller asks with ``include_secrets=true``
and holds write scope: each secret leaf is replaced by :data:`OBFUSCATED`. Sending :data:`OBFUSCATED`
back for a secret leaf keeps the stored value, so a document read without its secrets can be edited
and saved safely.

A nested block is stored by reference: in ``data`` it is ``{"$ref": "<block document id>"}`` (see
:data:`REFERENCE_KEY`), and a read answers with the referenced documents in ``references``, keyed by
the dotted path of the field that holds each one.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from typing import Any
from uuid import UUID

from pydantic import Field, field_validator, model_validator

from headrace.schemas.base import ActionModel, PaginationFilter, UtcDatetime, WireModel

__all__ = [
    "OBFUSCATED",
    "REFERENCE_KEY",
    "BlockDocument",
    "BlockDocumentCreate",
    "BlockDocumentFilter",
    "BlockDocumentSort",
    "BlockDocumentUpdate",
    "BlockSchema",
    "BlockSchemaCreate",
    "BlockTypeCreate",
    "BlockTypeFilter",
    "BlockTypeInfo",
    "block_schema_checksum",
]

OBFUSCATED = "********"
"""What a secret value reads as in every response that did not ask for secrets."""

REFERENCE_KEY = "$ref"
"""In a document's ``data``, ``{"$ref": "<uuid>"}`` stands for the nested block document with that id."""

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")
SECRET_PATH_PATTERN = re.compile(r"^(\*|[A-Za-z_][A-Za-z0-9_]*)(\.(\*|[A-Za-z_][A-Za-z0-9_]*))*$")


def block_schema_checksum(fields: dict[str, Any]) -> str:
    """``'sha256:<hex>'`` of the canonical JSON of a block schema's ``fields`` (sorted keys, compact, ASCII).

    The server computes it on its side; clients may compute it to compare a class with a stored schema.
    """
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _check_slug(value: str, what: str) -> str:
    if not SLUG_PATTERN.match(value):
        raise ValueError(f"{what} use lower-case letters, digits and dashes, e.g. 'prod-bucket'")
    return value


class BlockTypeCreate(ActionModel):
    """A block type as a plugin declares it; creating an existing slug updates its metadata."""

    slug: str = Field(max_length=100, description="Lower-case letters, digits and dashes, e.g. 's3-bucket'.")
    name: str = Field(max_length=200, description="Display name, e.g. 'S3 Bucket'.")
    description: str = Field(default="", max_length=10_000)
    documentation_url: str | None = Field(default=None, max_length=2_000)
    code_example: str | None = Field(default=None, max_length=10_000)
    logo_url: str | None = Field(default=None, max_length=2_000)

    @field_validator("slug")
    @classmethod
    def _slug(cls, slug: str) -> str:
        return _check_slug(slug, "block type slugs")


class BlockTypeInfo(WireModel):
    id: UUID
    slug: str
    name: str
    description: str
    documentation_url: str | None
    code_example: str | None
    logo_url: str | None
    created: UtcDatetime
    updated: UtcDatetime


class BlockTypeFilter(PaginationFilter):
    """Block types by slug or by a substring of their slug or name, sorted by slug."""

    slugs: list[str] | None = Field(default=None, description="Only these block types.")
    name_like: str | None = Field(
        default=None, max_length=200, description="Case-insensitive substring of the slug or the display name."
    )


class BlockSchemaCreate(ActionModel):
    """One version of a block class's fields. The server computes the checksum from ``fields``."""

    block_type_slug: str = Field(max_length=100)
    fields: dict[str, Any] = Field(description="The JSON schema of the block class.")
    secret_fields: list[str] = Field(
        default_factory=list,
        description="Dotted paths of the secret leaves; '*' matches every key of a secret mapping.",
    )
    capabilities: list[str] = Field(default_factory=list, description="e.g. 'read-path', 'write-path', 'notify'.")
    version: str | None = Field(default=None, max_length=100, description="The version of the contributing plugin.")

    @field_validator("block_type_slug")
    @classmethod
    def _slug(cls, slug: str) -> str:
        return _check_slug(slug, "block type slugs")

    @field_validator("secret_fields")
    @classmethod
    def _paths(cls, paths: list[str]) -> list[str]:
        for path in paths:
            if not SECRET_PATH_PATTERN.match(path):
                raise ValueError(f"secret field {path!r} is not a dotted path such as 'token' or 'headers.*'")
        return paths


class BlockSchema(WireModel):
    id: UUID
    checksum: str = Field(description="'sha256:<hex>' of the canonical JSON of 'fields'.")
    block_type_id: UUID
    block_type_slug: str
    fields: dict[str, Any]
    secret_fields: list[str]
    capabilities: list[str]
    version: str | None
    created: UtcDatetime


class BlockDocumentCreate(ActionModel):
    """Save a block: its type and schema travel with it and are registered if the server lacks them."""

    name: str = Field(max_length=200, description="Lower-case letters, digits and dashes, unique per block type.")
    block_type: BlockTypeCreate
    block_schema: BlockSchemaCreate
    data: dict[str, Any]
    is_anonymous: bool = Field(
        default=False, description="A nested block saved along with its parent; hidden from listings by default."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        return _check_slug(name, "block names")

    @model_validator(mode="after")
    def _same_type(self) -> BlockDocumentCreate:
        if self.block_schema.block_type_slug != self.block_type.slug:
            raise ValueError(
                f"the block schema is for type {self.block_schema.block_type_slug!r}, "
                f"the document for type {self.block_type.slug!r}"
            )
        return self


class BlockDocumentUpdate(ActionModel):
    """Replace a document's data; secret leaves sent as the obfuscated value keep their stored value.

    With ``block_schema`` the document moves to that schema version (after a change to the block class).
    """

    data: dict[str, Any]
    block_schema: BlockSchemaCreate | None = None


class BlockDocument(WireModel):
    id: UUID
    name: str
    is_anonymous: bool
    block_type_slug: str
    block_type_name: str
    block_schema_id: UUID
    block_schema_checksum: str
    data: dict[str, Any] = Field(description="Secret leaves read as '********' unless secrets were asked for.")
    references: dict[str, BlockDocument] = Field(
        default_factory=dict, description="The nested block documents, keyed by the dotted path that refers to each."
    )
    created: UtcDatetime
    updated: UtcDatetime


class BlockDocumentSort(str, enum.Enum):
    NAME_ASC = "NAME_ASC"
    NAME_DESC = "NAME_DESC"
    UPDATED_DESC = "UPDATED_DESC"


class BlockDocumentFilter(PaginationFilter):
    block_type_slugs: list[str] | None = Field(default=None, description="Only documents of these types.")
    name_like: str | None = Field(default=None, max_length=200, description="Case-insensitive substring of the name.")
    include_anonymous: bool = False
    include_secrets: bool = Field(default=False, description="Needs write scope.")
    sort: BlockDocumentSort = BlockDocumentSort.NAME_ASC
