"""State rows and :class:`~headrace.schemas.states.State`: the conversions flow runs and task runs share.

A state row (``flow_run_states``, ``task_run_states``) stores the state's fields as they are, with
``state_details`` as a JSON object holding only the details that differ from their defaults.
"""

from __future__ import annotations

from typing import Any, Protocol
from uuid import UUID

from headrace.schemas.states import State, StateDetails, StateType

__all__ = ["StateRow", "details_values", "state_from_row", "state_order_key", "state_row_values"]


class StateRow(Protocol):
    """What both state models have in common."""

    id: UUID
    type: StateType
    name: str
    timestamp: Any
    message: str | None
    state_details: dict[str, Any]
    data: Any


def state_from_row(row: StateRow) -> State:
    return State.model_validate(
        {
            "id": row.id,
            "type": row.type,
            "name": row.name,
            "timestamp": row.timestamp,
            "message": row.message,
            "state_details": row.state_details or {},
            "data": row.data,
        }
    )


_DETAIL_DEFAULTS: dict[str, Any] = {name: info.default for name, info in StateDetails.model_fields.items()}


def details_values(details: StateDetails) -> dict[str, Any]:
    """The details that differ from their defaults (the JSON serializer writes datetimes and UUIDs as text).

    Cheaper than ``model_dump`` on the ingest hot path, where most states carry no details at all.
    """
    return {
        name: value for name in details.model_fields_set if (value := getattr(details, name)) != _DETAIL_DEFAULTS[name]
    }


def state_row_values(state: State) -> dict[str, Any]:
    """The columns of a state row for ``state`` (without the run id column)."""
    return {
        "id": state.id,
        "type": state.type,
        "name": state.name,
        "timestamp": state.timestamp,
        "message": state.message,
        "state_details": details_values(state.state_details),
        "data": state.data,
    }


# How far along a run a state type is, to order states that carry the same timestamp.
_PROGRESS: dict[StateType, int] = {
    StateType.SCHEDULED: 0,
    StateType.PENDING: 1,
    StateType.RUNNING: 2,
    StateType.PAUSED: 2,
    StateType.CANCELLING: 3,
    StateType.COMPLETED: 4,
    StateType.FAILED: 4,
    StateType.CRASHED: 4,
    StateType.CANCELLED: 4,
}


def state_order_key(timestamp: Any, state_type: StateType, state_id: UUID) -> tuple[Any, int, UUID]:
    """The order in which reported states supersede each other: by timestamp, then progress, then id.

    Total and independent of arrival order, so a run's current state after ingesting a set of records
    is the same whichever order (and however many times) they arrive in.
    """
    return (timestamp, _PROGRESS[StateType(state_type)], state_id)
