"""Run states: the nine state types, the named states built on them, and the state model.

A state has a *type* (what the orchestration rules reason about) and a *name* (what people read).
Named states such as ``AwaitingRetry`` or ``Cached`` are states of a standard type with a distinct
name, so that rules stay few while the history stays expressive.
"""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, field_validator


class StateType(str, enum.Enum):
    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CRASHED = "CRASHED"
    CANCELLING = "CANCELLING"
    CANCELLED = "CANCELLED"
    PAUSED = "PAUSED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATE_TYPES

    @property
    def default_name(self) -> str:
        return self.value.capitalize()


TERMINAL_STATE_TYPES: frozenset[StateType] = frozenset(
    {StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED}
)

# The named states: name -> the type it is a special case of.
NAMED_STATES: dict[str, StateType] = {
    "AwaitingRetry": StateType.SCHEDULED,
    "Late": StateType.SCHEDULED,
    "AwaitingConcurrencySlot": StateType.SCHEDULED,
    "Retrying": StateType.RUNNING,
    "Cached": StateType.COMPLETED,
    "TimedOut": StateType.FAILED,
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime | None) -> datetime | None:
    """Naive timestamps are taken as UTC; aware ones are converted, so comparisons never mix zones."""
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class StateDetails(BaseModel):
    """Facts about a state that the rules or the engine need; all optional."""

    model_config = ConfigDict(extra="forbid")

    flow_run_id: UUID | None = None
    task_run_id: UUID | None = None
    scheduled_time: datetime | None = None
    cache_key: str | None = None
    cache_expiration: datetime | None = None
    retriable: bool | None = None
    pause_timeout: datetime | None = None
    pause_reschedule: bool = False
    pause_key: str | None = None
    transition_id: UUID | None = None
    # Set on a Scheduled proposal to run a finished (terminal) run again from the start; see docs/orchestration.md.
    rerun: bool = False

    @field_validator("scheduled_time", "cache_expiration", "pause_timeout")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return as_utc(value)


class State(BaseModel):
    """A state a run was in, from ``timestamp`` on. ``data`` holds a result reference, never a value."""

    model_config = ConfigDict(extra="forbid")

    id: UUID = Field(default_factory=uuid4)
    type: StateType
    name: str = ""
    timestamp: datetime = Field(default_factory=utcnow)
    message: str | None = None
    state_details: StateDetails = Field(default_factory=StateDetails)
    data: Any = None

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)

    def model_post_init(self, __context: Any) -> None:
        if not self.name:
            self.name = self.type.default_name
        elif self.name in NAMED_STATES and NAMED_STATES[self.name] is not self.type:
            raise ValueError(f"state name {self.name!r} belongs to type {NAMED_STATES[self.name].value}")

    @property
    def is_terminal(self) -> bool:
        return self.type.is_terminal
