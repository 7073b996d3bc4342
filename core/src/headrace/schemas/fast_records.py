"""Reading serialized run records as the server's bulk endpoints do, at a fraction of the CPU.

The embedded client (:mod:`headrace.client.embedded`) stores the records the shipper sends it in this
very process, so validating them is part of what every task run costs the flow. The wire models
(:class:`~headrace.schemas.runs.TaskRunRecord`, :class:`~headrace.schemas.logs.LogCreate`) carry two
validators written in Python: one walks every string looking for text no database stores (NUL, lone
surrogates), the other insists that a task-run record's state has its id. Any Python "before" validator
also makes pydantic build the whole record as Python objects before validating it, instead of
validating straight from the JSON: together that was half the cost of reading a record.

:func:`validate_records` therefore reads a payload in two steps:

1. its bytes are looked at: the JSON parser refuses raw control characters and bytes that are not
   UTF-8, so text a database refuses can only arrive as a ``\\u0000`` or a surrogate ``\\uD8xx``
   escape. A payload without any of them is read with a *fast model*: the same fields, defaults and
   constraints, no Python validators, and a state whose ``id`` is required (what the second validator
   checks);
2. anything else — a payload with such an escape, or one the fast model refuses — goes through the wire
   model itself, which then decides, with the server's own messages.

The fast model accepts a subset of what the wire model accepts, and reads it to the same values. It is
built from the wire model's fields when this module is imported, and only while the wire model's
validators are exactly the two above: a validator added later turns the fast path off (everything then
goes through the wire model) rather than being skipped.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, create_model

from headrace.schemas.base import plain_text
from headrace.schemas.logs import LogCreate
from headrace.schemas.runs import TaskRunRecord
from headrace.schemas.states import State

if TYPE_CHECKING:
    from headrace.client.base import RecordKind

__all__ = ["can_stand_in", "plain_text", "validate_records"]


# The Python validators each wire model has, which the fast models stand in for (see the docstring).
_KNOWN_VALIDATORS: dict[type[BaseModel], set[str]] = {
    TaskRunRecord: {"_storable_text", "_state_has_an_id"},
    LogCreate: {"_storable_text"},
}


def _validator_names(model: type[BaseModel]) -> set[str]:
    decorators = model.__pydantic_decorators__
    return {
        *decorators.model_validators,
        *decorators.field_validators,
        *decorators.validators,
        *decorators.root_validators,
    }


def can_stand_in(model: type[BaseModel], known: set[str]) -> bool:
    """Whether ``model``'s Python validators are exactly ``known`` (the ones a fast model stands in for)."""
    return _validator_names(model) == known


class _StateWithId(State):
    """A state whose ``id`` must be given, as a task-run record's must (what ``_state_has_an_id`` checks)."""

    id: UUID


def _fast_model(model: type[BaseModel], replace: dict[str, Any]) -> type[BaseModel]:
    """``model``'s fields (annotations, defaults, constraints) on a plain model with no Python validators."""
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        annotation = replace.get(name, info.annotation)
        fields[name] = (annotation, copy.copy(info))
    fast: type[BaseModel] = create_model(
        f"_Fast{model.__name__}",
        __config__=ConfigDict(**model.model_config),  # extra="forbid" and whatever else the wire model says
        __module__=__name__,
        **fields,
    )
    return fast


def _fast_adapter(model: type[BaseModel], replace: dict[str, Any]) -> TypeAdapter[Any] | None:
    if not can_stand_in(model, _KNOWN_VALIDATORS[model]):
        return None  # State's own validators need no check: the fast model's state inherits them
    return TypeAdapter(_fast_model(model, replace))


# kind -> (the wire model's validator, the fast model's or None when it cannot stand in)
_VALIDATORS: dict[str, tuple[TypeAdapter[Any], TypeAdapter[Any] | None]] = {
    "task_runs": (TypeAdapter(TaskRunRecord), _fast_adapter(TaskRunRecord, {"state": _StateWithId})),
    "logs": (TypeAdapter(LogCreate), _fast_adapter(LogCreate, {})),
}


def validate_records(kind: RecordKind, payloads: Sequence[bytes]) -> list[Any]:
    """The records of ``payloads``, read as the server reads them; raises the wire model's ``ValidationError``.

    The records are instances of the wire model or of its fast model, which have the same fields.
    """
    full, fast = _VALIDATORS[kind]
    records: list[Any] = []
    for payload in payloads:
        if fast is not None and plain_text(payload):
            try:
                records.append(fast.validate_json(payload))
                continue
            except ValidationError:
                pass  # the wire model decides, with its own message
        records.append(full.validate_json(payload))
    return records
