"""initial schema: flows, runs, task runs, states, logs, artifacts, variables, concurrency, API keys

Revision ID: 1eabcfb03d67
Revises:
Create Date: 2026-11-25 06:38:02.183390

One history for SQLite and PostgreSQL: use portable types (see headrace.server.db.types) and name every
constraint and index as models.NAMING_CONVENTION does. SQLite runs these in batch mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "1eabcfb03d67"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model types as of this revision (migrations never import the models).
STATE_TYPES = ("SCHEDULED", "PENDING", "RUNNING", "COMPLETED", "FAILED", "CRASHED", "CANCELLING", "CANCELLED", "PAUSED")


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=False, length=32)


def _time(name: str, nullable: bool = True) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _id() -> sa.Column[Any]:
    return sa.Column("id", sa.Uuid(), nullable=False)


def _state_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("state_id", sa.Uuid(), nullable=True),
        sa.Column("state_type", _enum("statetype", *STATE_TYPES), nullable=True),
        sa.Column("state_name", sa.String(), nullable=True),
        _time("state_timestamp"),
    ]


def _state_history(table: str, run_table: str, run_column: str) -> None:
    op.create_table(
        table,
        _id(),
        sa.Column(run_column, sa.Uuid(), nullable=False),
        sa.Column("type", _enum("statetype", *STATE_TYPES), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        _time("timestamp", nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("state_details", _json(), nullable=False),
        sa.Column("data", _json(), nullable=True),
        sa.ForeignKeyConstraint(
            [run_column], [f"{run_table}.id"], name=op.f(f"fk_{table}__{run_column}__{run_table}"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    )
    op.create_index(f"ix_{table}__{run_column}_timestamp", table, [run_column, "timestamp"])


def upgrade() -> None:
    op.create_table(
        "flows",
        _id(),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("tags", _json(), nullable=False),
        _time("created", nullable=False),
        _time("updated", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flows")),
        sa.UniqueConstraint("name", name=op.f("uq_flows__name")),
    )

    op.create_table(
        "flow_runs",
        _id(),
        sa.Column("flow_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("parameters", _json(), nullable=False),
        sa.Column("tags", _json(), nullable=False),
        *_state_columns(),
        sa.Column("run_count", sa.Integer(), nullable=False),
        _time("expected_start_time"),
        _time("next_scheduled_start_time"),
        _time("start_time"),
        _time("end_time"),
        sa.Column("total_run_time", sa.Double(), nullable=False),
        sa.Column("pause_keys", _json(), nullable=False),
        sa.Column("idempotency_key", sa.String(), nullable=True),
        sa.Column("parent_task_run_id", sa.Uuid(), nullable=True),
        sa.Column("concurrency_limits", _json(), nullable=False),
        sa.Column("max_retries", sa.Integer(), nullable=False),
        sa.Column("retry_delay_seconds", sa.Double(), nullable=False),
        sa.Column("retry_jitter_factor", sa.Double(), nullable=True),
        sa.Column("infrastructure_pid", sa.String(), nullable=True),
        _time("heartbeat_at"),
        _time("created", nullable=False),
        _time("updated", nullable=False),
        sa.ForeignKeyConstraint(
            ["flow_id"], ["flows.id"], name=op.f("fk_flow_runs__flow_id__flows"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_runs")),
        sa.UniqueConstraint("flow_id", "idempotency_key", name=op.f("uq_flow_runs__flow_id_idempotency_key")),
    )
    for columns in (
        ["flow_id", "created"],
        ["state_type", "expected_start_time"],
        ["state_name"],
        ["expected_start_time"],
        ["next_scheduled_start_time"],
        ["created"],
        ["end_time"],
        ["name"],
        ["parent_task_run_id"],
        ["heartbeat_at"],
    ):
        op.create_index(f"ix_flow_runs__{'_'.join(columns)}", "flow_runs", columns)
    _state_history("flow_run_states", "flow_runs", "flow_run_id")

    op.create_table(
        "task_runs",
        _id(),
        sa.Column("flow_run_id", sa.Uuid(), nullable=True),
        sa.Column("task_key", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("dynamic_key", sa.String(), nullable=False),
        sa.Column("cache_key", sa.String(), nullable=True),
        _time("cache_expiration"),
        sa.Column("tags", _json(), nullable=False),
        *_state_columns(),
        sa.Column("run_count", sa.Integer(), nullable=False),
        _time("start_time"),
        _time("end_time"),
        _time("created", nullable=False),
        _time("updated", nullable=False),
        sa.ForeignKeyConstraint(
            ["flow_run_id"], ["flow_runs.id"], name=op.f("fk_task_runs__flow_run_id__flow_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_runs")),
    )
    for columns in (["flow_run_id", "created"], ["state_type"], ["task_key"], ["cache_key"], ["created"], ["end_time"]):
        op.create_index(f"ix_task_runs__{'_'.join(columns)}", "task_runs", columns)
    _state_history("task_run_states", "task_runs", "task_run_id")

    op.create_table(
        "logs",
        _id(),
        sa.Column("flow_run_id", sa.Uuid(), nullable=True),
        sa.Column("task_run_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        _time("timestamp", nullable=False),
        _time("created", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_logs")),
    )
    for columns in (["flow_run_id", "timestamp"], ["task_run_id", "timestamp"], ["timestamp"]):
        op.create_index(f"ix_logs__{'_'.join(columns)}", "logs", columns)

    op.create_table(
        "artifacts",
        _id(),
        sa.Column("key", sa.String(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("type", _enum("artifacttype", "markdown", "table", "link"), nullable=False),
        sa.Column("data", _json(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("flow_run_id", sa.Uuid(), nullable=True),
        sa.Column("task_run_id", sa.Uuid(), nullable=True),
        _time("created", nullable=False),
        sa.ForeignKeyConstraint(
            ["flow_run_id"], ["flow_runs.id"], name=op.f("fk_artifacts__flow_run_id__flow_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifacts")),
        sa.UniqueConstraint("key", "version", name=op.f("uq_artifacts__key_version")),
    )
    for columns in (["flow_run_id"], ["task_run_id"], ["created"]):
        op.create_index(f"ix_artifacts__{'_'.join(columns)}", "artifacts", columns)

    op.create_table(
        "variables",
        _id(),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("value", _json(), nullable=True),
        sa.Column("tags", _json(), nullable=False),
        _time("created", nullable=False),
        _time("updated", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_variables")),
        sa.UniqueConstraint("name", name=op.f("uq_variables__name")),
    )

    op.create_table(
        "concurrency_limits",
        _id(),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("limit", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        _time("created", nullable=False),
        _time("updated", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_concurrency_limits")),
        sa.UniqueConstraint("name", name=op.f("uq_concurrency_limits__name")),
    )
    op.create_table(
        "concurrency_slots",
        _id(),
        sa.Column("limit_id", sa.Uuid(), nullable=False),
        sa.Column("lease_id", sa.Uuid(), nullable=False),
        sa.Column("holder", sa.String(), nullable=False),
        _time("expires_at", nullable=False),
        _time("created", nullable=False),
        sa.ForeignKeyConstraint(
            ["limit_id"],
            ["concurrency_limits.id"],
            name=op.f("fk_concurrency_slots__limit_id__concurrency_limits"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_concurrency_slots")),
        sa.UniqueConstraint("lease_id", "limit_id", name=op.f("uq_concurrency_slots__lease_id_limit_id")),
    )
    for columns in (["limit_id", "expires_at"], ["expires_at"], ["holder"]):
        op.create_index(f"ix_concurrency_slots__{'_'.join(columns)}", "concurrency_slots", columns)

    op.create_table(
        "api_keys",
        _id(),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("hashed_key", sa.String(), nullable=False),
        sa.Column("scope", _enum("scope", "read", "write", "admin"), nullable=False),
        _time("last_used"),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        _time("created", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("name", name=op.f("uq_api_keys__name")),
        sa.UniqueConstraint("hashed_key", name=op.f("uq_api_keys__hashed_key")),
    )


def downgrade() -> None:
    # Children before parents; dropping a table drops its indexes.
    for table in (
        "api_keys",
        "concurrency_slots",
        "concurrency_limits",
        "variables",
        "artifacts",
        "logs",
        "task_run_states",
        "task_runs",
        "flow_run_states",
        "flow_runs",
        "flows",
    ):
        op.drop_table(table)
