"""Bulk ingest of task-run state records, on SQLite and PostgreSQL: idempotent, ordered by state time."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from headrace.schemas.runs import MAX_INGEST_RECORDS
from headrace.testing.server import RunningServer

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


def _record(task_run_id: str, state_type: str, seconds: float, **fields: Any) -> dict[str, Any]:
    state = {"id": str(uuid.uuid4()), "type": state_type, "timestamp": (T0 + timedelta(seconds=seconds)).isoformat()}
    state.update(fields.pop("state", {}))
    return {"task_run_id": task_run_id, "task_key": "etl.step", "name": "step", "state": state, **fields}


def _lifecycle(task_run_id: str, flow_run_id: str | None = None, start: float = 0) -> list[dict[str, Any]]:
    return [
        _record(task_run_id, state_type, start + offset, flow_run_id=flow_run_id)
        for offset, state_type in enumerate(("PENDING", "RUNNING", "COMPLETED"))
    ]


def _ingest(api: httpx.Client, records: list[dict[str, Any]]) -> dict[str, int]:
    response = api.post("/task-runs/ingest", json=records)
    assert response.status_code == 201, response.text
    result: dict[str, int] = response.json()
    assert result["received"] == len(records)
    assert result["received"] == result["inserted"] + result["duplicates"] + result["skipped"]
    return result


def _task_run(api: httpx.Client, task_run_id: str) -> dict[str, Any]:
    response = api.get(f"/task-runs/{task_run_id}")
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


def _history(api: httpx.Client, task_run_id: str) -> list[dict[str, Any]]:
    history: list[dict[str, Any]] = api.get(f"/task-runs/{task_run_id}/states").json()
    return history


def test_the_same_batch_twice_stores_it_once(api: httpx.Client) -> None:
    flow_run = api.post("/flow-runs", json={"flow_name": "etl"}).json()["id"]
    task_run_id = str(uuid.uuid4())
    batch = _lifecycle(task_run_id, flow_run)
    assert _ingest(api, batch) == {"received": 3, "inserted": 3, "duplicates": 0, "skipped": 0}
    before = _task_run(api, task_run_id)

    assert _ingest(api, batch) == {"received": 3, "inserted": 0, "duplicates": 3, "skipped": 0}
    assert _task_run(api, task_run_id) == before  # not even `updated` moved
    assert len(_history(api, task_run_id)) == 3
    assert before["run_count"] == 1
    assert before["state"]["type"] == "COMPLETED"


def test_records_repeated_within_one_request_count_as_duplicates(api: httpx.Client) -> None:
    task_run_id = str(uuid.uuid4())
    batch = _lifecycle(task_run_id)
    result = _ingest(api, batch + batch[1:2] + batch)
    assert result == {"received": 7, "inserted": 3, "duplicates": 4, "skipped": 0}
    assert _task_run(api, task_run_id)["run_count"] == 1


def test_out_of_order_records_never_move_a_run_back(api: httpx.Client) -> None:
    task_run_id = str(uuid.uuid4())
    pending, running, completed = _lifecycle(task_run_id)
    _ingest(api, [completed])
    assert _task_run(api, task_run_id)["state"]["type"] == "COMPLETED"
    _ingest(api, [running])
    _ingest(api, [pending, running])  # late, and partly replayed

    run = _task_run(api, task_run_id)
    assert run["state"]["id"] == completed["state"]["id"]
    assert run["run_count"] == 1
    assert run["start_time"].startswith("2030-01-01T00:00:01")
    assert run["end_time"].startswith("2030-01-01T00:00:02")
    assert [s["type"] for s in _history(api, task_run_id)] == ["PENDING", "RUNNING", "COMPLETED"]


def test_the_current_state_does_not_depend_on_arrival_order(api: httpx.Client) -> None:
    # Same timestamp: the state further along wins, whichever arrives first.
    for order in ((0, 1), (1, 0)):
        task_run_id = str(uuid.uuid4())
        pair = [_record(task_run_id, "RUNNING", 7), _record(task_run_id, "COMPLETED", 7)]
        for index in order:
            _ingest(api, [pair[index]])
        assert _task_run(api, task_run_id)["state"]["type"] == "COMPLETED"


def test_retries_count_runs_and_keep_the_first_start(api: httpx.Client) -> None:
    task_run_id = str(uuid.uuid4())
    records = [
        _record(task_run_id, "PENDING", 0),
        _record(task_run_id, "RUNNING", 1),
        _record(task_run_id, "SCHEDULED", 2, state={"name": "AwaitingRetry"}),
        _record(task_run_id, "RUNNING", 3, state={"name": "Retrying"}),
        _record(task_run_id, "COMPLETED", 4),
    ]
    _ingest(api, records[3:])  # the end first
    _ingest(api, records[:3])
    run = _task_run(api, task_run_id)
    assert run["run_count"] == 2
    assert run["state"]["type"] == "COMPLETED"
    assert run["start_time"].startswith("2030-01-01T00:00:01")
    assert [s["name"] for s in _history(api, task_run_id)] == [
        "Pending",
        "Running",
        "AwaitingRetry",
        "Retrying",
        "Completed",
    ]


def test_many_runs_in_one_request(api: httpx.Client) -> None:
    flow_runs = [api.post("/flow-runs", json={"flow_name": "etl"}).json()["id"] for _ in range(3)]
    task_runs = [str(uuid.uuid4()) for _ in range(600)]
    records = [r for i, t in enumerate(task_runs) for r in _lifecycle(t, flow_runs[i % 3], start=i)]
    assert _ingest(api, records) == {"received": 1800, "inserted": 1800, "duplicates": 0, "skipped": 0}

    for flow_run in flow_runs:
        page = api.post("/task-runs/filter", json={"flow_run_ids": [flow_run], "state_types": ["COMPLETED"]}).json()
        assert page["total"] == 200
    sample = _task_run(api, task_runs[-1])
    assert sample["state"]["type"] == "COMPLETED"
    assert sample["run_count"] == 1
    assert len(_history(api, task_runs[-1])) == 3


def test_records_about_a_deleted_flow_run_are_skipped(api: httpx.Client) -> None:
    gone = api.post("/flow-runs", json={"flow_name": "etl"}).json()["id"]
    alive = api.post("/flow-runs", json={"flow_name": "etl"}).json()["id"]
    assert api.delete(f"/flow-runs/{gone}").status_code == 204
    orphan, kept = str(uuid.uuid4()), str(uuid.uuid4())
    result = _ingest(api, _lifecycle(orphan, gone) + _lifecycle(kept, alive))
    assert result == {"received": 6, "inserted": 3, "duplicates": 0, "skipped": 3}
    assert api.get(f"/task-runs/{orphan}").status_code == 404
    assert _task_run(api, kept)["flow_run_id"] == alive


def test_a_record_without_its_state_id_is_refused(api: httpx.Client) -> None:
    record = _record(str(uuid.uuid4()), "RUNNING", 0)
    del record["state"]["id"]
    response = api.post("/task-runs/ingest", json=[record])
    assert response.status_code == 422
    assert "state.id" in response.json()["detail"]


def test_an_empty_batch_is_fine(api: httpx.Client) -> None:
    assert _ingest(api, []) == {"received": 0, "inserted": 0, "duplicates": 0, "skipped": 0}


def test_too_many_records_in_one_request_is_a_problem(api: httpx.Client) -> None:
    record = _record(str(uuid.uuid4()), "RUNNING", 0)
    response = api.post("/task-runs/ingest", json=[record] * (MAX_INGEST_RECORDS + 1))
    assert response.status_code == 422
    assert f"at most {MAX_INGEST_RECORDS}" in response.json()["detail"]
    assert api.post("/task-runs/filter", json={}).json()["total"] == 0


def _replay_concurrently(live_server: RunningServer, batch: list[dict[str, Any]], senders: int) -> list[dict[str, int]]:
    barrier = threading.Barrier(senders)
    results: list[dict[str, int]] = []
    errors: list[BaseException] = []

    def send() -> None:
        try:
            with httpx.Client(base_url=live_server.api_url, timeout=60) as client:
                barrier.wait()
                results.append(_ingest(client, batch))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    return results


@pytest.mark.parametrize("runs_exist", [False, True])
def test_concurrent_replays_of_one_batch_store_it_once(live_server: RunningServer, runs_exist: bool) -> None:
    senders = 8
    with httpx.Client(base_url=live_server.api_url, timeout=60) as client:
        flow_run = client.post("/flow-runs", json={"flow_name": "etl"}).json()["id"]
    for _ in range(3):
        task_runs = [str(uuid.uuid4()) for _ in range(50)]
        lifecycles = [_lifecycle(t, flow_run) for t in task_runs]
        if runs_exist:
            with httpx.Client(base_url=live_server.api_url, timeout=60) as client:
                _ingest(client, [pending for pending, _, _ in lifecycles])
            batch = [r for _, running, completed in lifecycles for r in (running, completed)]
        else:
            batch = [r for lifecycle in lifecycles for r in lifecycle]

        results = _replay_concurrently(live_server, batch, senders)
        assert sum(r["inserted"] for r in results) == len(batch)
        assert sum(r["duplicates"] for r in results) == len(batch) * (senders - 1)
        with httpx.Client(base_url=live_server.api_url, timeout=60) as client:
            page = client.post("/task-runs/filter", json={"ids": task_runs, "limit": 200}).json()
            assert page["total"] == len(task_runs)
            assert all(run["run_count"] == 1 and run["state"]["type"] == "COMPLETED" for run in page["items"])
            assert len(_history(client, task_runs[0])) == 3


def _sqlite_processors(column_type: Any) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """SQLAlchemy's SQLite bind processor for ``column_type`` (as the engines are configured) and the fast one."""
    from sqlalchemy.dialects import sqlite

    from headrace.server.db.driver import fast_sqlite_processor
    from headrace.server.db.types import json_dumps

    dialect = sqlite.dialect(json_serializer=json_dumps)
    expected = column_type.dialect_impl(dialect).bind_processor(dialect)
    fast = fast_sqlite_processor(column_type)
    assert expected is not None
    assert fast is not None
    return expected, fast


@pytest.mark.parametrize(
    "value",
    [
        datetime(2030, 1, 1, tzinfo=timezone.utc),  # no microseconds
        datetime(2030, 6, 30, 23, 59, 59, 999999, tzinfo=timezone.utc),
        datetime(2030, 6, 30, 12, 0, 0, 5, tzinfo=timezone(timedelta(hours=-7))),  # converted to UTC
        datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc),
        TypeAdapter(datetime).validate_python("2030-06-30T12:00:00.25Z"),  # pydantic's own UTC zone object
        datetime(2030, 6, 30, 12, 0, tzinfo=timezone(timedelta(0), "UTC")),  # a UTC zone that is not timezone.utc
        None,
    ],
)
def test_the_fast_sqlite_timestamp_processor_matches_sqlalchemys(value: datetime | None) -> None:
    from headrace.server.db.types import UtcDateTime

    expected, fast = _sqlite_processors(UtcDateTime())
    assert fast(value) == expected(value)


def test_the_fast_sqlite_timestamp_processor_refuses_naive_datetimes_as_sqlalchemy_does() -> None:
    from headrace.server.db.types import UtcDateTime

    expected, fast = _sqlite_processors(UtcDateTime())
    naive = datetime(2030, 1, 1, 12, 0)
    with pytest.raises(ValueError, match="naive datetime") as from_sqlalchemy:
        expected(naive)
    with pytest.raises(ValueError, match="naive datetime") as from_fast:
        fast(naive)
    assert str(from_fast.value) == str(from_sqlalchemy.value)


@pytest.mark.parametrize("value", [None, {}, {"a": [1, 2.5, None, "é"]}, [1, "two"], "text", 3])
def test_the_fast_sqlite_json_processor_matches_sqlalchemys(value: Any) -> None:
    from headrace.server.db.types import JSON_TYPE

    expected, fast = _sqlite_processors(JSON_TYPE)
    assert fast(value) == expected(value)
