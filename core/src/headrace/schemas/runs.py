"""Flows, flow runs, task runs and their states as they travel over the wire."""

from __future__ import annotations

import enum
from typing import Any
from uuid import UUID, uuid4

from pydantic import Field

from headrace.schemas.base import ActionModel, PaginationFilter, UtcDatetime, WireModel
from headrace.schemas.states import State, StateType

NAME_MAX = 200


class FlowCreate(ActionModel):
    name: str = Field(min_length=1, max_length=NAME_MAX)
    tags: list[str] = Field(default_factory=list)


class Flow(WireModel):
    id: UUID
    name: str
    tags: list[str]
    created: UtcDatetime
    updated: UtcDatetime


class FlowFilter(PaginationFilter):
    name_like: str | None = Field(default=None, description="Case-insensitive substring of the name.")
    tags_all: list[str] = Field(default_factory=list, description="Flows carrying every one of these tags.")


class FlowRunCreate(ActionModel):
    """Create a flow run. Either ``flow_id`` or ``flow_name`` (the flow is created if it is new)."""

    id: UUID = Field(default_factory=uuid4, description="Client-generated id; creating twice is idempotent.")
    flow_id: UUID | None = None
    flow_name: str | None = Field(default=None, min_length=1, max_length=NAME_MAX)
    name: str | None = Field(default=None, max_length=NAME_MAX)
    parameters: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    state: State | None = Field(default=None, description="Initial state; Scheduled (now) if omitted.")
    idempotency_key: str | None = Field(default=None, max_length=NAME_MAX)
    parent_task_run_id: UUID | None = None
    concurrency_limits: list[str] = Field(
        default_factory=list, description="Names of concurrency limits whose slots the run needs to start."
    )
    max_retries: int = Field(default=0, ge=0, description="Flow-level retries the server applies on failure.")
    retry_delay_seconds: float = Field(default=0.0, ge=0)
    retry_jitter_factor: float | None = Field(default=None, ge=0)


class FlowRun(WireModel):
    id: UUID
    flow_id: UUID
    name: str
    parameters: dict[str, Any]
    tags: list[str]
    state: State | None
    run_count: int
    expected_start_time: UtcDatetime | None
    start_time: UtcDatetime | None
    end_time: UtcDatetime | None
    total_run_time: float
    idempotency_key: str | None
    parent_task_run_id: UUID | None
    concurrency_limits: list[str]
    max_retries: int
    retry_delay_seconds: float
    retry_jitter_factor: float | None
    created: UtcDatetime
    updated: UtcDatetime


class FlowRunSort(str, enum.Enum):
    CREATED_DESC = "CREATED_DESC"
    CREATED_ASC = "CREATED_ASC"
    EXPECTED_START_TIME_DESC = "EXPECTED_START_TIME_DESC"
    EXPECTED_START_TIME_ASC = "EXPECTED_START_TIME_ASC"
    NAME_ASC = "NAME_ASC"
    NAME_DESC = "NAME_DESC"


class FlowRunFilter(PaginationFilter):
    ids: list[UUID] = Field(default_factory=list)
    flow_ids: list[UUID] = Field(default_factory=list)
    flow_names: list[str] = Field(default_factory=list)
    state_types: list[StateType] = Field(default_factory=list)
    state_names: list[str] = Field(default_factory=list)
    tags_all: list[str] = Field(default_factory=list)
    name_like: str | None = None
    parent_task_run_ids: list[UUID] = Field(default_factory=list)
    expected_start_time_after: UtcDatetime | None = None
    expected_start_time_before: UtcDatetime | None = None
    sort: FlowRunSort = FlowRunSort.CREATED_DESC


class SetStateRequest(ActionModel):
    state: State
    force: bool = Field(default=False, description="Skip the orchestration rules (admin repair only).")
    rerun: bool = Field(default=False, description="Propose a terminal run be run again.")
    holder: str | None = Field(default=None, description="Who proposes (a worker), for claims and slots.")


class OrchestrationStatus(str, enum.Enum):
    ACCEPT = "ACCEPT"
    REJECT = "REJECT"
    WAIT = "WAIT"
    ABORT = "ABORT"


class OrchestrationResult(WireModel):
    """The answer to a proposed state: the state in force afterwards and, unless accepted, why."""

    status: OrchestrationStatus
    state: State | None
    reason: str | None = None
    retry_after: float | None = Field(default=None, description="Seconds to wait before proposing again.")
    rule: str | None = Field(default=None, description="The orchestration rule that decided.")


class TaskRun(WireModel):
    id: UUID
    flow_run_id: UUID | None
    task_key: str
    name: str
    dynamic_key: str
    cache_key: str | None
    tags: list[str]
    state: State | None
    run_count: int
    start_time: UtcDatetime | None
    end_time: UtcDatetime | None
    created: UtcDatetime
    updated: UtcDatetime


class TaskRunFilter(PaginationFilter):
    ids: list[UUID] = Field(default_factory=list)
    flow_run_ids: list[UUID] = Field(default_factory=list)
    state_types: list[StateType] = Field(default_factory=list)
    task_keys: list[str] = Field(default_factory=list)
    tags_all: list[str] = Field(default_factory=list)
    name_like: str | None = None
    sort: FlowRunSort = FlowRunSort.CREATED_ASC


class TaskRunRecord(ActionModel):
    """One task-run state change as the SDK reports it; the ingest endpoint upserts by ids.

    ``state.id`` identifies the record: ingesting the same record again changes nothing.
    """

    task_run_id: UUID
    flow_run_id: UUID | None = None
    task_key: str = Field(min_length=1, max_length=NAME_MAX * 2)
    name: str = Field(min_length=1, max_length=NAME_MAX)
    dynamic_key: str = "0"
    cache_key: str | None = None
    tags: list[str] = Field(default_factory=list)
    state: State


class IngestResult(WireModel):
    """What an ingest request did, after its transaction committed."""

    received: int
    inserted: int
    duplicates: int
