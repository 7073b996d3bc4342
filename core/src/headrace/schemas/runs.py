"""Flows, flow runs, task runs and their states as they travel over the wire."""

from __future__ import annotations

import enum
from typing import Any
from uuid import UUID, uuid4

from pydantic import Field, NonNegativeFloat, field_validator, model_validator

from headrace.schemas.base import MAX_INTEGER, ActionModel, PaginationFilter, UtcDatetime, WireModel
from headrace.schemas.states import State, StateType

NAME_MAX = 200

#: The most task-run records one ingest request may carry; a client splits larger batches.
MAX_INGEST_RECORDS = 10_000


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
    """Create a flow run of ``flow_id`` or of ``flow_name`` (exactly one; a new name creates the flow).

    Idempotent twice over: creating again with the same ``id``, or with the same ``idempotency_key`` for
    the same flow, returns the run created the first time (and changes nothing).
    """

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
    max_retries: int = Field(
        default=0, ge=0, le=MAX_INTEGER, description="Flow-level retries the server applies on failure."
    )
    retry_delay_seconds: NonNegativeFloat | list[NonNegativeFloat] = Field(
        default=0.0, description="Seconds before each retry: one number for all, or one per retry (the last repeats)."
    )
    retry_jitter_factor: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_flow(self) -> FlowRunCreate:
        if (self.flow_id is None) == (self.flow_name is None):
            raise ValueError("give exactly one of flow_id and flow_name")
        return self


class FlowRun(WireModel):
    id: UUID
    flow_id: UUID
    name: str
    parameters: dict[str, Any]
    tags: list[str]
    state: State | None
    run_count: int
    expected_start_time: UtcDatetime | None
    next_scheduled_start_time: UtcDatetime | None = Field(
        description="When a Scheduled run may be claimed (its Scheduled state's time); null otherwise."
    )
    start_time: UtcDatetime | None
    end_time: UtcDatetime | None
    total_run_time: float = Field(description="Seconds spent Running, over all tries.")
    idempotency_key: str | None
    parent_task_run_id: UUID | None
    concurrency_limits: list[str]
    max_retries: int
    retry_delay_seconds: float | list[float]
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
    """Propose a state for a flow run. To rerun a finished run, propose Scheduled with ``state_details.rerun``.

    ``state.id`` identifies the proposal: sending the same proposal again (a retry after a lost answer)
    is answered with the state it produced, and nothing is written twice.
    """

    state: State
    force: bool = Field(
        default=False,
        description="Write the state without consulting the orchestration rules (repair; needs an admin key).",
    )


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


class TaskRunSort(str, enum.Enum):
    CREATED_ASC = "CREATED_ASC"
    CREATED_DESC = "CREATED_DESC"
    START_TIME_ASC = "START_TIME_ASC"
    START_TIME_DESC = "START_TIME_DESC"
    NAME_ASC = "NAME_ASC"
    NAME_DESC = "NAME_DESC"


class TaskRunFilter(PaginationFilter):
    ids: list[UUID] = Field(default_factory=list)
    flow_run_ids: list[UUID] = Field(default_factory=list)
    state_types: list[StateType] = Field(default_factory=list)
    task_keys: list[str] = Field(default_factory=list)
    tags_all: list[str] = Field(default_factory=list)
    name_like: str | None = None
    sort: TaskRunSort = TaskRunSort.CREATED_ASC


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
    state: State = Field(description="The state the task run entered; its `id` is required (it keys the record).")

    @field_validator("state", mode="before")
    @classmethod
    def _state_has_an_id(cls, value: Any) -> Any:
        # A record without its id would get a new one on every delivery, and a replay would be stored twice.
        if isinstance(value, dict) and value.get("id") is None:
            raise ValueError("a task-run record's state needs its client-generated id (state.id)")
        return value


class IngestResult(WireModel):
    """What an ingest request did, after its transaction committed: ``received = inserted + duplicates + skipped``."""

    received: int = Field(description="Records in the request.")
    inserted: int = Field(description="Records stored now.")
    duplicates: int = Field(description="Records stored before (a replay), or repeated in the request: ignored.")
    skipped: int = Field(
        default=0,
        description="Records about a run that no longer exists (deleted): acknowledged, and not stored.",
    )
