"""The server's tables as typed SQLAlchemy 2 ORM models, portable between SQLite and PostgreSQL.

Conventions (keep them when adding tables in later migrations):

- Primary keys are UUIDs. Rows the SDK creates on its own (task runs, their states, logs) use the
  client-generated id, which is what makes their ingestion idempotent.
- Timestamps are :class:`~headrace.server.db.types.UtcDateTime` (aware, UTC); ``created`` and ``updated``
  are set by Python on insert and update (no server defaults, so bulk Core inserts get them too).
- JSON columns use :data:`~headrace.server.db.types.JSON_TYPE`; tags are a JSON array of strings,
  filtered with :func:`~headrace.server.db.types.json_contains_all`.
- Constraint and index names follow :data:`NAMING_CONVENTION`, so migrations can address them by name
  on both dialects (SQLite's batch mode needs names).
- A run owns its task runs and state history: ``ON DELETE CASCADE``. Records that the SDK ships
  asynchronously and that must never be refused (logs; the task run an artifact or a subflow points to)
  carry plain indexed id columns rather than foreign keys: a late record about a deleted run is stored,
  not rejected, and retention removes it later.
- Column names follow the wire models in :mod:`headrace.schemas`, so a row converts without a mapping:
  ``schemas.runs.FlowRun.model_validate(row, from_attributes=True)`` (the flag is needed for the nested
  ``state``). Fields the wire adds (``ConcurrencyLimit.slots_in_use``) are computed by the API.
- Relationships to collections are ``lazy="raise"``: in async code an implicit load is an error anyway,
  so load history explicitly (``selectinload(FlowRun.states)``). The current state (``FlowRun.state``,
  ``TaskRun.state``) is loaded with the run (``selectin``), since every API answer includes it.
- Annotations are evaluated as the module runs (no ``from __future__ import annotations``): with strings,
  SQLAlchemy evaluates each of them while it maps the classes, about a sixth of this module's import, which
  every server start pays. Only a relationship to a class defined further down is written in quotes.
"""

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from headrace.schemas.artifacts import ArtifactType
from headrace.schemas.auth import Scope
from headrace.schemas.states import StateType, utcnow
from headrace.server.db.types import JSON_TYPE, UUID_TYPE, RetryDelays, UtcDateTime, str_enum

__all__ = [
    "NAMING_CONVENTION",
    "ApiKey",
    "Artifact",
    "Base",
    "BlockDocument",
    "BlockDocumentReference",
    "BlockSchema",
    "BlockType",
    "ConcurrencyLimit",
    "ConcurrencySlot",
    "Flow",
    "FlowRun",
    "FlowRunState",
    "Log",
    "TaskRun",
    "TaskRunState",
    "Variable",
]

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s__%(column_0_N_name)s",
    "uq": "uq_%(table_name)s__%(column_0_N_name)s",
    "ck": "ck_%(table_name)s__%(constraint_name)s",
    "fk": "fk_%(table_name)s__%(column_0_name)s__%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        uuid.UUID: UUID_TYPE,
        datetime: UtcDateTime(),
        dict[str, Any]: JSON_TYPE,
        list[str]: JSON_TYPE,
        Any: JSON_TYPE,
    }


def _new_id() -> uuid.UUID:
    return uuid.uuid4()


class _Row:
    """Columns every table has: a UUID key and the creation time."""

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=_new_id, sort_order=-1)
    created: Mapped[datetime] = mapped_column(default=utcnow)


class _UpdatedRow(_Row):
    updated: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Flow(_UpdatedRow, Base):
    __tablename__ = "flows"

    name: Mapped[str] = mapped_column(unique=True)
    tags: Mapped[list[str]] = mapped_column(default=list)


class FlowRun(_UpdatedRow, Base):
    """A run of a flow. The ``state_*`` columns copy the current state for filtering and sorting.

    Every update of a run's row writes a new state (a new ``state_id``) and the columns that go with it;
    the other columns never change after the insert. PostgreSQL's compare-and-set transitions and the
    runs a server remembers (``operations.recent_runs``) rely on that: a new kind of update must either
    write a state too or be checked by the compare-and-set.
    """

    __tablename__ = "flow_runs"
    __table_args__ = (
        sa.UniqueConstraint("flow_id", "idempotency_key"),
        sa.Index("ix_flow_runs__flow_id_created", "flow_id", "created"),
        sa.Index("ix_flow_runs__state_type_expected_start_time", "state_type", "expected_start_time"),
        sa.Index("ix_flow_runs__state_name", "state_name"),
        sa.Index("ix_flow_runs__expected_start_time", "expected_start_time"),
        sa.Index("ix_flow_runs__next_scheduled_start_time", "next_scheduled_start_time"),
        sa.Index("ix_flow_runs__created", "created"),
        sa.Index("ix_flow_runs__end_time", "end_time"),
        sa.Index("ix_flow_runs__name", "name"),
        sa.Index("ix_flow_runs__parent_task_run_id", "parent_task_run_id"),
        sa.Index("ix_flow_runs__heartbeat_at", "heartbeat_at"),
    )

    flow_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("flows.id", ondelete="CASCADE"))
    name: Mapped[str]
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tags: Mapped[list[str]] = mapped_column(default=list)

    state_id: Mapped[uuid.UUID | None] = mapped_column(doc="The current row of flow_run_states.")
    state_type: Mapped[StateType | None] = mapped_column(str_enum(StateType))
    state_name: Mapped[str | None]
    state_timestamp: Mapped[datetime | None]

    run_count: Mapped[int] = mapped_column(default=0)
    expected_start_time: Mapped[datetime | None]
    next_scheduled_start_time: Mapped[datetime | None] = mapped_column(doc="When a Scheduled run may start.")
    start_time: Mapped[datetime | None]
    end_time: Mapped[datetime | None]
    total_run_time: Mapped[float] = mapped_column(default=0.0, doc="Seconds spent Running, over all tries.")
    pause_keys: Mapped[list[str]] = mapped_column(default=list, doc="Pause keys already used by this run.")

    idempotency_key: Mapped[str | None]
    parent_task_run_id: Mapped[uuid.UUID | None] = mapped_column(doc="The task run of a subflow's parent.")
    concurrency_limits: Mapped[list[str]] = mapped_column(default=list)
    max_retries: Mapped[int] = mapped_column(default=0)
    retry_delay_seconds: Mapped[float | list[float]] = mapped_column(RetryDelays(), default=0.0)
    retry_jitter_factor: Mapped[float | None]

    infrastructure_pid: Mapped[str | None] = mapped_column(doc="Where the run executes, for cancellation.")
    heartbeat_at: Mapped[datetime | None] = mapped_column(doc="Last sign of life from the running process.")

    flow: Mapped[Flow] = relationship(lazy="raise")
    state: Mapped["FlowRunState | None"] = relationship(
        primaryjoin="foreign(FlowRun.state_id) == FlowRunState.id", viewonly=True, lazy="selectin"
    )
    states: Mapped[list["FlowRunState"]] = relationship(
        back_populates="flow_run",
        lazy="raise",
        passive_deletes=True,
        order_by="FlowRunState.timestamp",
        foreign_keys="FlowRunState.flow_run_id",
    )
    task_runs: Mapped[list["TaskRun"]] = relationship(back_populates="flow_run", lazy="raise", passive_deletes=True)


class _StateRow:
    """The columns of one state in a run's history (flow run or task run): a ``State`` on the wire."""

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=_new_id, sort_order=-1)
    type: Mapped[StateType] = mapped_column(str_enum(StateType))
    name: Mapped[str]
    timestamp: Mapped[datetime] = mapped_column(default=utcnow)
    message: Mapped[str | None] = mapped_column(sa.Text())
    state_details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    data: Mapped[Any | None]


class FlowRunState(_StateRow, Base):
    """One entry in a flow run's state history."""

    __tablename__ = "flow_run_states"
    __table_args__ = (sa.Index("ix_flow_run_states__flow_run_id_timestamp", "flow_run_id", "timestamp"),)

    flow_run_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("flow_runs.id", ondelete="CASCADE"))

    flow_run: Mapped[FlowRun] = relationship(back_populates="states", lazy="raise", foreign_keys=[flow_run_id])


class TaskRun(_UpdatedRow, Base):
    """A task run, created by the SDK with its own id and kept current by state-record ingestion."""

    __tablename__ = "task_runs"
    __table_args__ = (
        sa.Index("ix_task_runs__flow_run_id_created", "flow_run_id", "created"),
        sa.Index("ix_task_runs__state_type", "state_type"),
        sa.Index("ix_task_runs__task_key", "task_key"),
        sa.Index("ix_task_runs__cache_key", "cache_key"),
        sa.Index("ix_task_runs__created", "created"),
        sa.Index("ix_task_runs__end_time", "end_time"),
    )

    flow_run_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("flow_runs.id", ondelete="CASCADE"))
    task_key: Mapped[str]
    name: Mapped[str]
    dynamic_key: Mapped[str] = mapped_column(default="0")
    cache_key: Mapped[str | None]
    cache_expiration: Mapped[datetime | None]
    tags: Mapped[list[str]] = mapped_column(default=list)

    state_id: Mapped[uuid.UUID | None] = mapped_column(doc="The current row of task_run_states.")
    state_type: Mapped[StateType | None] = mapped_column(str_enum(StateType))
    state_name: Mapped[str | None]
    state_timestamp: Mapped[datetime | None]

    run_count: Mapped[int] = mapped_column(default=0)
    start_time: Mapped[datetime | None]
    end_time: Mapped[datetime | None]

    flow_run: Mapped[FlowRun | None] = relationship(back_populates="task_runs", lazy="raise")
    state: Mapped["TaskRunState | None"] = relationship(
        primaryjoin="foreign(TaskRun.state_id) == TaskRunState.id", viewonly=True, lazy="selectin"
    )
    states: Mapped[list["TaskRunState"]] = relationship(
        back_populates="task_run",
        lazy="raise",
        passive_deletes=True,
        order_by="TaskRunState.timestamp",
        foreign_keys="TaskRunState.task_run_id",
    )


class TaskRunState(_StateRow, Base):
    """One entry in a task run's state history; its id is the client's, so re-ingestion is a no-op."""

    __tablename__ = "task_run_states"
    __table_args__ = (sa.Index("ix_task_run_states__task_run_id_timestamp", "task_run_id", "timestamp"),)

    task_run_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("task_runs.id", ondelete="CASCADE"))

    task_run: Mapped[TaskRun] = relationship(back_populates="states", lazy="raise", foreign_keys=[task_run_id])


class Log(Base):
    """A run log line. ``id`` is the client's; run ids are plain columns (logs are never refused)."""

    __tablename__ = "logs"
    __table_args__ = (
        sa.Index("ix_logs__flow_run_id_timestamp", "flow_run_id", "timestamp"),
        sa.Index("ix_logs__task_run_id_timestamp", "task_run_id", "timestamp"),
        sa.Index("ix_logs__timestamp", "timestamp"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=_new_id)
    flow_run_id: Mapped[uuid.UUID | None]
    task_run_id: Mapped[uuid.UUID | None]
    name: Mapped[str]
    level: Mapped[int]
    message: Mapped[str] = mapped_column(sa.Text())
    timestamp: Mapped[datetime]
    created: Mapped[datetime] = mapped_column(default=utcnow)


class Artifact(_Row, Base):
    """One version of an artifact. Rows sharing a ``key`` are its versions; the highest is current."""

    __tablename__ = "artifacts"
    __table_args__ = (
        sa.UniqueConstraint("key", "version"),
        sa.Index("ix_artifacts__flow_run_id", "flow_run_id"),
        sa.Index("ix_artifacts__task_run_id", "task_run_id"),
        sa.Index("ix_artifacts__created", "created"),
    )

    key: Mapped[str | None]
    version: Mapped[int] = mapped_column(default=1)
    type: Mapped[ArtifactType] = mapped_column(str_enum(ArtifactType))
    data: Mapped[Any | None]
    description: Mapped[str | None] = mapped_column(sa.Text())
    flow_run_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("flow_runs.id", ondelete="CASCADE"))
    task_run_id: Mapped[uuid.UUID | None]


class Variable(_UpdatedRow, Base):
    __tablename__ = "variables"

    name: Mapped[str] = mapped_column(unique=True)
    value: Mapped[Any | None]
    tags: Mapped[list[str]] = mapped_column(default=list)


class ConcurrencyLimit(_UpdatedRow, Base):
    """A named limit. Slots in use are the unexpired rows of ``concurrency_slots`` that point to it."""

    __tablename__ = "concurrency_limits"

    name: Mapped[str] = mapped_column(unique=True)
    limit: Mapped[int]
    active: Mapped[bool] = mapped_column(default=True)

    slots: Mapped[list["ConcurrencySlot"]] = relationship(
        back_populates="concurrency_limit", lazy="raise", passive_deletes=True
    )


class ConcurrencySlot(_Row, Base):
    """One slot taken against one limit. Slots taken together share a ``lease_id`` and expire together."""

    __tablename__ = "concurrency_slots"
    __table_args__ = (
        # One slot per limit per lease: acquiring again with the same client-generated lease id takes nothing.
        sa.UniqueConstraint("lease_id", "limit_id"),
        sa.Index("ix_concurrency_slots__limit_id_expires_at", "limit_id", "expires_at"),
        sa.Index("ix_concurrency_slots__expires_at", "expires_at"),
        sa.Index("ix_concurrency_slots__holder", "holder"),
    )

    limit_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("concurrency_limits.id", ondelete="CASCADE"))
    lease_id: Mapped[uuid.UUID]
    holder: Mapped[str]
    expires_at: Mapped[datetime]

    concurrency_limit: Mapped[ConcurrencyLimit] = relationship(back_populates="slots", lazy="raise")


class ApiKey(_Row, Base):
    """An API key: only its SHA-256 hash is stored (see ``headrace.server.security.keys``)."""

    __tablename__ = "api_keys"

    name: Mapped[str] = mapped_column(unique=True)
    hashed_key: Mapped[str] = mapped_column(unique=True)
    scope: Mapped[Scope] = mapped_column(str_enum(Scope))
    last_used: Mapped[datetime | None]
    revoked: Mapped[bool] = mapped_column(default=False)


class BlockType(_UpdatedRow, Base):
    """A kind of block a plugin contributes, by slug; saving a document of it updates its metadata."""

    __tablename__ = "block_types"

    slug: Mapped[str] = mapped_column(unique=True)
    name: Mapped[str]
    description: Mapped[str] = mapped_column(sa.Text(), default="")
    documentation_url: Mapped[str | None]
    code_example: Mapped[str | None] = mapped_column(sa.Text())
    logo_url: Mapped[str | None]


class BlockSchema(_Row, Base):
    """One version of a block class's fields, identified within its type by the checksum of ``fields``."""

    __tablename__ = "block_schemas"
    __table_args__ = (sa.UniqueConstraint("block_type_id", "checksum"),)

    checksum: Mapped[str]
    block_type_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("block_types.id", ondelete="CASCADE"))
    fields: Mapped[dict[str, Any]]
    secret_fields: Mapped[list[str]] = mapped_column(default=list)
    capabilities: Mapped[list[str]] = mapped_column(default=list)
    version: Mapped[str | None]

    block_type: Mapped[BlockType] = relationship(lazy="joined", innerjoin=True)


class BlockDocument(_UpdatedRow, Base):
    """A saved block. ``data`` holds the public values (secret leaves read as the obfuscated marker);
    the secret values are one Fernet token in ``encrypted_secrets`` (see ``headrace.server.security.encryption``),
    so no secret is ever stored in clear."""

    __tablename__ = "block_documents"
    __table_args__ = (
        sa.UniqueConstraint("block_type_id", "name"),
        sa.Index("ix_block_documents__name", "name"),
        sa.Index("ix_block_documents__block_schema_id", "block_schema_id"),
        sa.Index("ix_block_documents__updated", "updated"),
    )

    name: Mapped[str]
    block_type_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("block_types.id", ondelete="RESTRICT"))
    block_schema_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("block_schemas.id", ondelete="RESTRICT"))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    encrypted_secrets: Mapped[bytes | None] = mapped_column(sa.LargeBinary(), doc="Fernet token of the secrets.")
    is_anonymous: Mapped[bool] = mapped_column(default=False)

    block_type: Mapped[BlockType] = relationship(lazy="joined", innerjoin=True)
    block_schema: Mapped[BlockSchema] = relationship(lazy="joined", innerjoin=True)


class BlockDocumentReference(_Row, Base):
    """A nested block: the parent's field at ``path`` (dotted) refers to another document.

    Deleting the parent deletes its references; a referenced document cannot be deleted (``RESTRICT``;
    the API answers 409 naming the parents first).
    """

    __tablename__ = "block_document_references"
    __table_args__ = (
        sa.UniqueConstraint("parent_id", "path"),
        sa.Index("ix_block_document_references__referenced_id", "referenced_id"),
    )

    parent_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("block_documents.id", ondelete="CASCADE"))
    path: Mapped[str]
    referenced_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("block_documents.id", ondelete="RESTRICT"))
