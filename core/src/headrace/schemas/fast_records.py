"""Reading serialized run records as the server's bulk endpoints do, at a fraction of the CPU.

Two readers use it: the embedded client (:mod:`headrace.client.embedded`), which stores the records the
shipper sends it in this very process, so that validating them is part of what every task run costs the
flow; and the server's ingest routes (task-run records and logs, through
:class:`~headrace.server.api.bodies.JsonBody`'s ``fast`` reader), where it is most of the CPU a record
costs outside the database. The wire models
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
import functools
from collections.abc import Sequence
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from headrace.schemas.base import RecordKind, plain_text
from headrace.schemas.logs import LogCreate
from headrace.schemas.runs import TaskRunRecord
from headrace.schemas.states import State

__all__ = ["FastList", "can_stand_in", "plain_text", "validate_records", "validators"]


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


def _fast_model_if_it_can_stand_in(model: type[BaseModel], replace: dict[str, Any]) -> type[BaseModel] | None:
    if not can_stand_in(model, _KNOWN_VALIDATORS[model]):
        return None  # State's own validators need no check: the fast model's state inherits them
    return _fast_model(model, replace)


@functools.cache
def _models() -> dict[str, tuple[type[BaseModel], type[BaseModel] | None]]:
    """kind -> (the wire model, its fast model or None when that cannot stand in).

    Built on first use, not at import: building the models and their validators costs ~15 ms, which a
    server's start-up (it imports this module with its routes) should not wait for.
    """
    return {
        "task_runs": (TaskRunRecord, _fast_model_if_it_can_stand_in(TaskRunRecord, {"state": _StateWithId})),
        "logs": (LogCreate, _fast_model_if_it_can_stand_in(LogCreate, {})),
    }


@functools.cache
def validators() -> dict[str, tuple[TypeAdapter[Any], TypeAdapter[Any] | None]]:
    """kind -> (the wire model's validator, the fast model's or None), built on first use."""
    return {
        kind: (TypeAdapter(wire), TypeAdapter(fast) if fast is not None else None)
        for kind, (wire, fast) in _models().items()
    }


def validate_records(kind: RecordKind, payloads: Sequence[bytes]) -> list[Any]:
    """The records of ``payloads``, read as the server reads them; raises the wire model's ``ValidationError``.

    The records are instances of the wire model or of its fast model, which have the same fields.
    """
    full, fast = validators()[kind]
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


class FastList:
    """A JSON array of at most ``max_length`` records of one kind, read with the fast model (the server's bodies).

    :meth:`read` gives ``None`` whenever the wire model must decide (an escape that may be unstorable
    text, anything the fast model refuses, no fast model): the caller then reads the payload as before,
    with the wire model's own answers and errors.
    """

    def __init__(self, kind: RecordKind, max_length: int) -> None:
        self._kind = kind
        self._max_length = max_length

    @functools.cached_property
    def _adapter(self) -> TypeAdapter[list[Any]] | None:
        """Built at the first read (see :func:`_models`)."""
        fast = _models()[self._kind][1]
        if fast is None:
            return None
        records: Any = Annotated[list[fast], Field(max_length=self._max_length)]  # type: ignore[valid-type]
        return TypeAdapter(records)

    def read(self, payload: bytes) -> list[Any] | None:
        """The records, or ``None`` when the wire model must read ``payload``."""
        adapter = self._adapter
        if adapter is None or not plain_text(payload):
            return None
        try:
            return adapter.validate_json(payload)
        except ValidationError:
            return None
