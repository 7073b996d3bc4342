"""headrace.schemas.fast_records: serialized records are read to exactly what the wire models read, for less."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError, field_validator

from headrace.schemas import fast_records as ingest
from headrace.schemas.fast_records import can_stand_in, plain_text, validate_records
from headrace.schemas.logs import LogCreate
from headrace.schemas.runs import TaskRunRecord
from headrace.schemas.states import State, StateDetails, StateType

_RECORD = TypeAdapter(TaskRunRecord)


def _record(**changes: Any) -> dict[str, Any]:
    state = State(
        type=StateType.FAILED,
        message="boom ünï 😀",
        state_details=StateDetails(cache_key="k", retriable=False),
    )
    record = TaskRunRecord(
        task_run_id=uuid.uuid4(),
        flow_run_id=uuid.uuid4(),
        task_key="task-key",
        name="task-0",
        dynamic_key="0",
        tags=["a", "é"],
        state=state,
    )
    data: dict[str, Any] = json.loads(record.model_dump_json())
    data.update(changes)
    return data


def _state(**changes: Any) -> dict[str, Any]:
    state: dict[str, Any] = _record()["state"]
    state.update(changes)
    return state


def _outcome(validate: Any, payload: bytes) -> Any:
    try:
        return validate(payload).model_dump()
    except ValidationError as exc:
        return [(error["type"], error["loc"], error["msg"]) for error in exc.errors()]


def test_the_fast_path_is_in_use_for_both_kinds() -> None:
    """If a wire model gains a Python validator, the fast path switches itself off: review this module."""
    assert all(fast is not None for _, fast in ingest.validators().values())


@pytest.mark.parametrize(
    "data",
    [
        _record(),
        _record(flow_run_id=None, cache_key="c", tags=[]),
        _record(state=_state(timestamp="2024-01-01T02:00:00+02:00")),
        _record(state=_state(timestamp="2024-01-01T00:00:00")),  # naive: taken as UTC
        _record(state=_state(data={"storage": "file:///x", "key": "k", "serializer": "json"})),
        _record(state={key: value for key, value in _state().items() if key != "id"}),
        _record(state=_state(id=None)),
        _record(name=""),
        _record(name="x" * 5000),
        _record(bogus=1),
        _record(state=_state(type="NOT-A-TYPE")),
        _record(state=_state(state_details={"unknown": 1})),
        _record(name="nul\x00inside"),
        _record(tags=["nul\x00inside"]),
        _record(state=_state(message="C:\\u0000 is only text")),
    ],
    ids=[
        "failed-state",
        "no-flow-run",
        "offset-time",
        "naive-time",
        "result-reference",
        "state-without-id",
        "state-id-null",
        "empty-name",
        "long-name",
        "unknown-field",
        "unknown-state-type",
        "unknown-detail",
        "nul-in-name",
        "nul-in-tag",
        "escape-lookalike",
    ],
)
def test_task_run_records_read_as_the_wire_model_reads_them(data: dict[str, Any]) -> None:
    payload = json.dumps(data, ensure_ascii=False).encode()  # non-ASCII text raw, as pydantic writes it
    expected = _outcome(_RECORD.validate_json, payload)
    assert _outcome(lambda raw: validate_records("task_runs", [raw])[0], payload) == expected


def test_plain_records_take_the_fast_path() -> None:
    payload = json.dumps(_record(), ensure_ascii=False).encode()
    assert plain_text(payload)
    (record,) = validate_records("task_runs", [payload])
    assert type(record) is not TaskRunRecord
    assert record.model_dump() == _RECORD.validate_json(payload).model_dump()


def test_a_refused_record_raises_the_wire_models_error() -> None:
    state = {key: value for key, value in _state().items() if key != "id"}
    payload = json.dumps(_record(state=state), ensure_ascii=False).encode()
    with pytest.raises(ValidationError) as refused:
        validate_records("task_runs", [payload])
    assert "client-generated id" in str(refused.value)


def test_logs_read_as_the_wire_model_reads_them() -> None:
    good = LogCreate(level=20, message="hello").model_dump_json().encode()
    bad_level = LogCreate.model_construct(level=500, message="x").model_dump_json().encode()
    nul = LogCreate.model_construct(level=20, message="a\x00b").model_dump_json().encode()
    wire = TypeAdapter(LogCreate)
    for payload in (good, bad_level, nul):
        expected = _outcome(wire.validate_json, payload)
        assert _outcome(lambda raw: validate_records("logs", [raw])[0], payload) == expected


def test_plain_text_refuses_utf16_and_encoded_surrogates_but_not_hangul() -> None:
    assert not plain_text('{"name":"a\x00"}'.encode("utf-16"))  # no escape to search for: zero bytes instead
    assert not plain_text('{"name":"a\ud800"}'.encode("utf-8", "surrogatepass"))
    assert plain_text('{"name":"\ud55c"}'.encode())  # Hangul starts with the same lead byte, and is fine


def test_plain_text_sees_every_escape_of_unstorable_text() -> None:
    assert plain_text(b'{"name":"caf\xc3\xa9"}')
    assert not plain_text(b'{"name":"a\\u0000"}')
    assert not plain_text(b'{"name":"\\ud83d\\ude00"}')  # a valid pair: a false alarm, read by the wire model
    assert not plain_text(b'{"name":"\\uDFFF"}')


def test_a_model_with_a_validator_the_fast_model_does_not_know_cannot_be_stood_in_for() -> None:
    class Stricter(TaskRunRecord):
        @field_validator("name")
        @classmethod
        def _no_spaces(cls, value: str) -> str:
            if " " in value:
                raise ValueError("no spaces")
            return value

    assert can_stand_in(TaskRunRecord, {"_storable_text", "_state_has_an_id"})
    assert not can_stand_in(Stricter, {"_storable_text", "_state_has_an_id"})
