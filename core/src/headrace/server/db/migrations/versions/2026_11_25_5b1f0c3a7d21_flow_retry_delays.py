"""flow_runs.retry_delay_seconds holds one delay per retry: a JSON array instead of one number

Revision ID: 5b1f0c3a7d21
Revises: 9662788764cf
Create Date: 2026-11-25 10:30:00.000000

A flow's ``retry_delay_seconds`` may be a list (or a callable, which the SDK turns into one), as a task's
may; the server's retry rule needs all of it. Existing values become one-element arrays, which mean the
same (the last delay repeats). See headrace.server.db.types.RetryDelays for why even one number is stored
as an array.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "5b1f0c3a7d21"
down_revision: str | Sequence[str] | None = "9662788764cf"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "flow_runs",
            "retry_delay_seconds",
            type_=postgresql.JSONB(none_as_null=True),
            existing_type=sa.Float(),
            existing_nullable=False,
            postgresql_using="jsonb_build_array(retry_delay_seconds)",
        )
        return
    with op.batch_alter_table("flow_runs") as batch:
        batch.alter_column(
            "retry_delay_seconds", type_=sa.JSON(none_as_null=True), existing_type=sa.Float(), existing_nullable=False
        )
    op.execute("UPDATE flow_runs SET retry_delay_seconds = json_array(retry_delay_seconds)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "flow_runs",
            "retry_delay_seconds",
            type_=sa.Float(),
            existing_type=postgresql.JSONB(none_as_null=True),
            existing_nullable=False,
            postgresql_using="(retry_delay_seconds->>0)::float",
        )
        return
    op.execute("UPDATE flow_runs SET retry_delay_seconds = json_extract(retry_delay_seconds, '$[0]')")
    with op.batch_alter_table("flow_runs") as batch:
        batch.alter_column(
            "retry_delay_seconds", type_=sa.Float(), existing_type=sa.JSON(none_as_null=True), existing_nullable=False
        )
