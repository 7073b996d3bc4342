"""blocks: block types, block schemas, block documents and their references

Revision ID: 9662788764cf
Revises: 1eabcfb03d67
Create Date: 2026-11-25 14:10:00.000000

Block secrets are never stored in clear: ``block_documents.encrypted_secrets`` holds one Fernet token
whose key lives outside the database (see headrace.server.security.encryption).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "9662788764cf"
down_revision: str | Sequence[str] | None = "1eabcfb03d67"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def _time(name: str, nullable: bool = True) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _id() -> sa.Column[Any]:
    return sa.Column("id", sa.Uuid(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "block_types",
        _id(),
        sa.Column("slug", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("documentation_url", sa.String(), nullable=True),
        sa.Column("code_example", sa.Text(), nullable=True),
        sa.Column("logo_url", sa.String(), nullable=True),
        _time("created", nullable=False),
        _time("updated", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_block_types")),
        sa.UniqueConstraint("slug", name=op.f("uq_block_types__slug")),
    )
    op.create_table(
        "block_schemas",
        _id(),
        sa.Column("checksum", sa.String(), nullable=False),
        sa.Column("block_type_id", sa.Uuid(), nullable=False),
        sa.Column("fields", _json(), nullable=False),
        sa.Column("secret_fields", _json(), nullable=False),
        sa.Column("capabilities", _json(), nullable=False),
        sa.Column("version", sa.String(), nullable=True),
        _time("created", nullable=False),
        sa.ForeignKeyConstraint(
            ["block_type_id"],
            ["block_types.id"],
            name=op.f("fk_block_schemas__block_type_id__block_types"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_block_schemas")),
        sa.UniqueConstraint("block_type_id", "checksum", name=op.f("uq_block_schemas__block_type_id_checksum")),
    )
    op.create_table(
        "block_documents",
        _id(),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("block_type_id", sa.Uuid(), nullable=False),
        sa.Column("block_schema_id", sa.Uuid(), nullable=False),
        sa.Column("data", _json(), nullable=False),
        sa.Column("encrypted_secrets", sa.LargeBinary(), nullable=True),
        sa.Column("is_anonymous", sa.Boolean(), nullable=False),
        _time("created", nullable=False),
        _time("updated", nullable=False),
        sa.ForeignKeyConstraint(
            ["block_type_id"],
            ["block_types.id"],
            name=op.f("fk_block_documents__block_type_id__block_types"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["block_schema_id"],
            ["block_schemas.id"],
            name=op.f("fk_block_documents__block_schema_id__block_schemas"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_block_documents")),
        sa.UniqueConstraint("block_type_id", "name", name=op.f("uq_block_documents__block_type_id_name")),
    )
    for columns in (["name"], ["block_schema_id"], ["updated"]):
        op.create_index(f"ix_block_documents__{'_'.join(columns)}", "block_documents", columns)
    op.create_table(
        "block_document_references",
        _id(),
        sa.Column("parent_id", sa.Uuid(), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("referenced_id", sa.Uuid(), nullable=False),
        _time("created", nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["block_documents.id"],
            name=op.f("fk_block_document_references__parent_id__block_documents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["referenced_id"],
            ["block_documents.id"],
            name=op.f("fk_block_document_references__referenced_id__block_documents"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_block_document_references")),
        sa.UniqueConstraint("parent_id", "path", name=op.f("uq_block_document_references__parent_id_path")),
    )
    op.create_index(
        "ix_block_document_references__referenced_id",
        "block_document_references",
        ["referenced_id"],
    )


def downgrade() -> None:
    # Children before parents; dropping a table drops its indexes.
    for table in ("block_document_references", "block_documents", "block_schemas", "block_types"):
        op.drop_table(table)
