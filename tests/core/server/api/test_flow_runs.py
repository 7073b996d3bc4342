"""Flow runs over the API, on SQLite and PostgreSQL: create (idempotently), read, filter, sort, delete."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest


def _at(minutes: float) -> str:
    return (datetime(2030, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=minutes)).isoformat()


def _scheduled(minutes: float) -> dict[str, Any]:
    return {"type": "SCHEDULED", "state_details": {"scheduled_time": _at(minutes)}}


def test_create_by_flow_name_creates_the_flow(api: httpx.Client) -> None:
    response = api.post("/flow-runs", json={"flow_name": "etl", "parameters": {"day": "2030-01-01"}, "tags": ["t"]})
    assert response.status_code == 201
    run = response.json()
    flow = api.get("/flows/name/etl").json()
    assert run["flow_id"] == flow["id"]
    assert run["parameters"] == {"day": "2030-01-01"}
    assert run["tags"] == ["t"]
    assert run["name"]  # a generated, readable name
    # Scheduled for now unless told otherwise: claimable at once
    assert run["state"]["type"] == "SCHEDULED"
    assert run["state"]["name"] == "Scheduled"
    assert run["state"]["state_details"]["scheduled_time"] == run["expected_start_time"]
    assert run["state"]["state_details"]["flow_run_id"] == run["id"]
    assert run["run_count"] == 0
    assert run["start_time"] is None
    assert run["end_time"] is None
    assert api.get(f"/flow-runs/{run['id']}").json() == run


def test_create_by_flow_id_and_with_an_initial_state(api: httpx.Client) -> None:
    flow = api.post("/flows", json={"name": "etl"}).json()
    run = api.post("/flow-runs", json={"flow_id": flow["id"], "name": "my-run", "state": _scheduled(90)}).json()
    assert run["name"] == "my-run"
    assert run["state"]["state_details"]["scheduled_time"] == _at(90).replace("+00:00", "Z")
    assert (
        run["expected_start_time"]
        == run["next_scheduled_start_time"]
        == run["state"]["state_details"]["scheduled_time"]
    )

    running = api.post("/flow-runs", json={"flow_id": flow["id"], "state": {"type": "RUNNING"}}).json()
    assert running["state"]["type"] == "RUNNING"
    assert running["run_count"] == 1
    assert running["start_time"] is not None


@pytest.mark.parametrize(
    "body",
    [
        {},  # neither flow_id nor flow_name
        {"flow_name": "etl", "flow_id": str(uuid.uuid4())},  # both
        {"flow_name": "etl", "max_retries": -1},
        {"flow_name": "etl", "state": {"type": "SOMETHING"}},
    ],
)
def test_invalid_create_is_a_422_problem(api: httpx.Client, body: dict[str, Any]) -> None:
    response = api.post("/flow-runs", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def test_unknown_flow_id_is_refused(api: httpx.Client) -> None:
    missing = str(uuid.uuid4())
    response = api.post("/flow-runs", json={"flow_id": missing})
    assert response.status_code == 422
    assert missing in response.json()["detail"]


def test_a_refused_initial_state_is_a_422_problem_and_creates_nothing(api: httpx.Client) -> None:
    run_id = str(uuid.uuid4())
    response = api.post("/flow-runs", json={"id": run_id, "flow_name": "etl", "state": {"type": "PAUSED"}})
    assert response.status_code == 422
    body = response.json()
    assert body["type"].endswith("/state-rejected")
    assert "Illegal transition" in body["detail"]
    assert body["rule"] == "PreventIllegalTransitions"
    assert api.get(f"/flow-runs/{run_id}").status_code == 404


def test_create_is_idempotent_by_client_id(api: httpx.Client) -> None:
    run_id = str(uuid.uuid4())
    first = api.post("/flow-runs", json={"id": run_id, "flow_name": "etl"})
    again = api.post("/flow-runs", json={"id": run_id, "flow_name": "etl", "tags": ["changed"]})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert api.post("/flow-runs/filter", json={}).json()["total"] == 1


def test_create_is_idempotent_by_idempotency_key_per_flow(api: httpx.Client) -> None:
    first = api.post("/flow-runs", json={"flow_name": "etl", "idempotency_key": "2030-01-01"})
    again = api.post("/flow-runs", json={"flow_name": "etl", "idempotency_key": "2030-01-01"})
    other_flow = api.post("/flow-runs", json={"flow_name": "other", "idempotency_key": "2030-01-01"})
    other_key = api.post("/flow-runs", json={"flow_name": "etl", "idempotency_key": "2030-01-02"})
    assert [r.status_code for r in (first, again, other_flow, other_key)] == [201, 200, 201, 201]
    assert again.json()["id"] == first.json()["id"]
    assert len({r.json()["id"] for r in (first, other_flow, other_key)}) == 3


def test_unknown_run_is_a_404_problem(api: httpx.Client) -> None:
    missing = uuid.uuid4()
    for response in (
        api.get(f"/flow-runs/{missing}"),
        api.get(f"/flow-runs/{missing}/states"),
        api.delete(f"/flow-runs/{missing}"),
        api.post(f"/flow-runs/{missing}/set-state", json={"state": {"type": "PENDING"}}),
    ):
        assert response.status_code == 404
        assert response.json()["detail"] == f"flow run {missing} not found"
    assert api.get("/flow-runs/not-a-uuid").status_code == 422


def test_delete_removes_the_run_its_history_and_task_runs(api: httpx.Client) -> None:
    run = api.post("/flow-runs", json={"flow_name": "etl"}).json()
    task_run_id = str(uuid.uuid4())
    record = {
        "task_run_id": task_run_id,
        "flow_run_id": run["id"],
        "task_key": "etl.extract",
        "name": "extract-0",
        "state": {"id": str(uuid.uuid4()), "type": "RUNNING"},
    }
    assert api.post("/task-runs/ingest", json=[record]).status_code == 201

    assert api.delete(f"/flow-runs/{run['id']}").status_code == 204
    assert api.get(f"/flow-runs/{run['id']}").status_code == 404
    assert api.get(f"/task-runs/{task_run_id}").status_code == 404
    assert api.get(f"/flows/{run['flow_id']}").status_code == 200  # the flow stays


def _make_runs(api: httpx.Client) -> dict[str, dict[str, Any]]:
    specs = {
        "alpha": {"flow_name": "etl", "tags": ["a", "b"], "state": _scheduled(30)},
        "bravo": {"flow_name": "etl", "tags": ["a"], "state": _scheduled(10)},
        "charlie": {"flow_name": "report", "tags": ["b"], "state": _scheduled(20)},
        "delta": {"flow_name": "report", "tags": [], "state": {"type": "RUNNING"}},
        "echo": {"flow_name": "etl", "tags": ["a", "b"], "state": {"type": "PENDING"}},
    }
    return {name: api.post("/flow-runs", json={"name": name, **spec}).json() for name, spec in specs.items()}


def _names(api: httpx.Client, query: dict[str, Any]) -> list[str]:
    response = api.post("/flow-runs/filter", json=query)
    assert response.status_code == 200, response.text
    return [run["name"] for run in response.json()["items"]]


def test_filters(api: httpx.Client) -> None:
    runs = _make_runs(api)
    etl = api.get("/flows/name/etl").json()["id"]
    sort = {"sort": "NAME_ASC"}
    assert _names(api, {**sort, "flow_ids": [etl]}) == ["alpha", "bravo", "echo"]
    assert _names(api, {**sort, "flow_names": ["report"]}) == ["charlie", "delta"]
    assert _names(api, {**sort, "ids": [runs["alpha"]["id"], runs["delta"]["id"]]}) == ["alpha", "delta"]
    assert _names(api, {**sort, "state_types": ["PENDING", "RUNNING"]}) == ["delta", "echo"]
    assert _names(api, {**sort, "state_names": ["Scheduled"]}) == ["alpha", "bravo", "charlie"]
    assert _names(api, {**sort, "tags_all": ["a", "b"]}) == ["alpha", "echo"]
    assert _names(api, {**sort, "name_like": "HAR"}) == ["charlie"]
    window = {"expected_start_time_after": _at(15), "expected_start_time_before": _at(30)}
    assert _names(api, {**sort, **window}) == ["alpha", "charlie"]
    assert _names(api, {**sort, "flow_names": ["etl"], "tags_all": ["b"], "state_types": ["SCHEDULED"]}) == ["alpha"]
    assert _names(api, {"parent_task_run_ids": [str(uuid.uuid4())]}) == []


def test_sorts(api: httpx.Client) -> None:
    _make_runs(api)
    created_order = ["alpha", "bravo", "charlie", "delta", "echo"]
    assert _names(api, {}) == created_order[::-1]  # newest first by default
    assert _names(api, {"sort": "CREATED_ASC"}) == created_order
    assert _names(api, {"sort": "NAME_DESC"}) == sorted(created_order, reverse=True)
    scheduled = {"state_types": ["SCHEDULED"]}
    assert _names(api, {**scheduled, "sort": "EXPECTED_START_TIME_ASC"}) == ["bravo", "charlie", "alpha"]
    assert _names(api, {**scheduled, "sort": "EXPECTED_START_TIME_DESC"}) == ["alpha", "charlie", "bravo"]
    assert api.post("/flow-runs/filter", json={"sort": "SIDEWAYS"}).status_code == 422


def test_pagination_counts_every_match_and_pages_do_not_overlap(api: httpx.Client) -> None:
    for index in range(12):
        api.post("/flow-runs", json={"flow_name": "etl", "name": f"run-{index:02d}"})
    api.post("/flow-runs", json={"flow_name": "other"})

    seen: list[str] = []
    for offset in range(0, 15, 5):
        page = api.post(
            "/flow-runs/filter", json={"flow_names": ["etl"], "sort": "NAME_ASC", "limit": 5, "offset": offset}
        ).json()
        assert page["total"] == 12
        assert page["limit"] == 5
        assert page["offset"] == offset
        seen += [run["name"] for run in page["items"]]
    assert seen == [f"run-{index:02d}" for index in range(12)]

    for bounds in ({"limit": 0}, {"limit": 201}, {"offset": -5}):
        response = api.post("/flow-runs/filter", json=bounds)
        assert response.status_code == 422
        assert response.json()["errors"][0]["loc"][-1] in bounds


def test_openapi_documents_the_flow_run_routes(live_server: Any) -> None:
    document = httpx.get(f"{live_server.url}/openapi.json").json()
    paths = document["paths"]
    for path, method in [
        ("/api/flows", "post"),
        ("/api/flows/filter", "post"),
        ("/api/flows/{flow_id}", "delete"),
        ("/api/flow-runs", "post"),
        ("/api/flow-runs/filter", "post"),
        ("/api/flow-runs/{flow_run_id}/set-state", "post"),
        ("/api/flow-runs/{flow_run_id}/states", "get"),
        ("/api/task-runs/ingest", "post"),
        ("/api/task-runs/filter", "post"),
        ("/api/task-runs/{task_run_id}/states", "get"),
    ]:
        operation = paths[path][method]
        assert {"404", "422"} <= set(operation["responses"]), (path, method)
    set_state = paths["/api/flow-runs/{flow_run_id}/set-state"]["post"]["responses"]
    assert {"200", "201"} <= set(set_state)
    assert "OrchestrationResult" in document["components"]["schemas"]


def test_a_replayed_create_answers_with_the_run_whatever_else_changed(api: httpx.Client) -> None:
    """The run with the id wins over everything the replay would be refused for (or would create)."""
    run_id = str(uuid.uuid4())
    first = api.post("/flow-runs", json={"id": run_id, "flow_name": "etl"})
    assert first.status_code == 201
    replays = [
        {"id": run_id, "flow_name": "a-flow-nobody-created"},  # would create a flow
        {"id": run_id, "flow_id": str(uuid.uuid4())},  # an unknown flow
        {"id": run_id, "flow_name": "etl", "state": {"type": "PAUSED"}},  # a refused initial state
    ]
    for body in replays:
        again = api.post("/flow-runs", json=body)
        assert again.status_code == 200, again.text
        assert again.json() == first.json()
    assert api.get("/flows/name/a-flow-nobody-created").status_code == 404
    assert api.post("/flow-runs/filter", json={}).json()["total"] == 1


def test_a_refused_initial_state_with_an_idempotency_key_answers_with_the_existing_run(api: httpx.Client) -> None:
    first = api.post("/flow-runs", json={"flow_name": "etl", "idempotency_key": "k"})
    again = api.post("/flow-runs", json={"flow_name": "etl", "idempotency_key": "k", "state": {"type": "PAUSED"}})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    refused = api.post("/flow-runs", json={"flow_name": "etl", "idempotency_key": "new", "state": {"type": "PAUSED"}})
    assert refused.status_code == 422
