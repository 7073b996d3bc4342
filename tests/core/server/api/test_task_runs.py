"""Task runs over the API, on SQLite and PostgreSQL: read, filter, sort, state history."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


def _record(task_run_id: str, state_type: str, seconds: float, **fields: Any) -> dict[str, Any]:
    state = {"id": str(uuid.uuid4()), "type": state_type, "timestamp": (T0 + timedelta(seconds=seconds)).isoformat()}
    state.update(fields.pop("state", {}))
    return {"task_run_id": task_run_id, "task_key": "etl.extract", "name": "extract-0", "state": state, **fields}


def _ingest(api: httpx.Client, records: list[dict[str, Any]]) -> dict[str, Any]:
    response = api.post("/task-runs/ingest", json=records)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def test_read_a_task_run_and_its_history(api: httpx.Client) -> None:
    flow_run = api.post("/flow-runs", json={"flow_name": "etl"}).json()
    task_run_id = str(uuid.uuid4())
    records = [
        _record(task_run_id, "PENDING", 0, flow_run_id=flow_run["id"], tags=["io"]),
        _record(task_run_id, "RUNNING", 1, flow_run_id=flow_run["id"], tags=["io"]),
        _record(
            task_run_id,
            "COMPLETED",
            3,
            flow_run_id=flow_run["id"],
            tags=["io"],
            cache_key="abc",
            state={"message": "done", "data": {"ref": "file:///r.json"}},
        ),
    ]
    _ingest(api, records)

    task_run = api.get(f"/task-runs/{task_run_id}").json()
    assert task_run["flow_run_id"] == flow_run["id"]
    assert (task_run["task_key"], task_run["name"], task_run["dynamic_key"]) == ("etl.extract", "extract-0", "0")
    assert task_run["tags"] == ["io"]
    assert task_run["cache_key"] == "abc"
    assert task_run["state"]["type"] == "COMPLETED"
    assert task_run["state"]["id"] == records[2]["state"]["id"]
    assert task_run["state"]["message"] == "done"
    assert task_run["state"]["data"] == {"ref": "file:///r.json"}
    assert task_run["state"]["state_details"]["task_run_id"] == task_run_id
    assert task_run["run_count"] == 1
    assert datetime.fromisoformat(task_run["start_time"].replace("Z", "+00:00")) == T0 + timedelta(seconds=1)
    assert datetime.fromisoformat(task_run["end_time"].replace("Z", "+00:00")) == T0 + timedelta(seconds=3)

    history = api.get(f"/task-runs/{task_run_id}/states").json()
    assert [s["id"] for s in history] == [r["state"]["id"] for r in records]
    assert [s["type"] for s in history] == ["PENDING", "RUNNING", "COMPLETED"]


def test_unknown_task_run_is_a_404_problem(api: httpx.Client) -> None:
    missing = uuid.uuid4()
    for path in (f"/task-runs/{missing}", f"/task-runs/{missing}/states"):
        response = api.get(path)
        assert response.status_code == 404
        assert response.json()["detail"] == f"task run {missing} not found"


def _make_task_runs(api: httpx.Client) -> dict[str, str]:
    first = api.post("/flow-runs", json={"flow_name": "etl"}).json()["id"]
    second = api.post("/flow-runs", json={"flow_name": "etl"}).json()["id"]
    ids = {name: str(uuid.uuid4()) for name in ("load-a", "load-b", "extract-a", "report")}
    # One request each, so that their creation times differ.
    _ingest(
        api, [_record(ids["load-a"], "RUNNING", 5, flow_run_id=first, task_key="etl.load", name="load-a", tags=["db"])]
    )
    _ingest(
        api,
        [
            _record(
                ids["load-b"], "COMPLETED", 2, flow_run_id=first, task_key="etl.load", name="load-b", tags=["db", "x"]
            )
        ],
    )
    _ingest(
        api,
        [
            _record(
                ids["extract-a"], "FAILED", 9, flow_run_id=second, task_key="etl.extract", name="extract-a", tags=["x"]
            )
        ],
    )
    _ingest(api, [_record(ids["report"], "PENDING", 1, task_key="report", name="report")])  # no flow run
    return {"first": first, "second": second, **ids}


def _names(api: httpx.Client, query: dict[str, Any]) -> list[str]:
    response = api.post("/task-runs/filter", json=query)
    assert response.status_code == 200, response.text
    return [run["name"] for run in response.json()["items"]]


def test_filters_and_sorts(api: httpx.Client) -> None:
    made = _make_task_runs(api)
    by_name = {"sort": "NAME_ASC"}
    assert _names(api, {}) == ["load-a", "load-b", "extract-a", "report"]  # oldest first by default
    assert _names(api, {"sort": "CREATED_DESC"}) == ["report", "extract-a", "load-b", "load-a"]
    assert _names(api, {**by_name, "flow_run_ids": [made["first"]]}) == ["load-a", "load-b"]
    assert _names(api, {**by_name, "state_types": ["COMPLETED", "FAILED"]}) == ["extract-a", "load-b"]
    assert _names(api, {**by_name, "task_keys": ["etl.load", "report"]}) == ["load-a", "load-b", "report"]
    assert _names(api, {**by_name, "tags_all": ["x"]}) == ["extract-a", "load-b"]
    assert _names(api, {**by_name, "tags_all": ["db", "x"]}) == ["load-b"]
    assert _names(api, {**by_name, "name_like": "LOAD"}) == ["load-a", "load-b"]
    assert _names(api, {"ids": [made["report"]]}) == ["report"]
    assert _names(api, {"sort": "NAME_DESC"}) == ["report", "load-b", "load-a", "extract-a"]
    # Only load-a has been Running (at T0 + 5 s): runs that never ran sort last.
    assert _names(api, {"sort": "START_TIME_ASC"})[0] == "load-a"


def test_pagination(api: httpx.Client) -> None:
    records = [_record(str(uuid.uuid4()), "RUNNING", 0, name=f"task-{index:02d}") for index in range(9)]
    _ingest(api, records)
    pages = [
        api.post("/task-runs/filter", json={"sort": "NAME_ASC", "limit": 4, "offset": o}).json() for o in (0, 4, 8)
    ]
    assert [p["total"] for p in pages] == [9, 9, 9]
    assert [r["name"] for p in pages for r in p["items"]] == [f"task-{index:02d}" for index in range(9)]


@pytest.mark.parametrize("query", [{"limit": 0}, {"limit": 201}, {"sort": "EXPECTED_START_TIME_ASC"}, {"bogus": 1}])
def test_invalid_filters_are_422_problems(api: httpx.Client, query: dict[str, Any]) -> None:
    response = api.post("/task-runs/filter", json=query)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
