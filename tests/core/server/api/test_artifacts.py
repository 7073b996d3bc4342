"""Artifacts: typed data, keyed versions, reads, filters, deletion, against a live server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from headrace.server.db import Database
from headrace.settings import Settings


def _create(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    fields.setdefault("type", "markdown")
    fields.setdefault("data", "# Report")
    response = api.post("/artifacts", json=fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _flow_run(settings: Settings, new_flow_run: Callable[[Database], Awaitable[uuid.UUID]]) -> str:
    """A flow run row, made directly in the database (artifacts may point to one)."""

    async def make() -> uuid.UUID:
        async with Database.from_settings(settings) as database:
            return await new_flow_run(database)

    return str(asyncio.run(make()))


@pytest.mark.parametrize(
    ("type_", "data"),
    [
        ("markdown", "# Title\n\nSome *text*."),
        ("table", [{"a": 1, "b": "x"}, {"a": 2, "b": None}]),
        ("table", [[1, "x"], [2, "y"]]),
        ("table", []),
        ("link", "https://example.com/report?day=1"),
        ("link", "s3://bucket/path/to/object.csv"),
    ],
)
def test_create_and_read_each_type(api: httpx.Client, type_: str, data: Any) -> None:
    created = _create(api, type=type_, data=data, description="what it is")
    assert created["type"] == type_
    assert created["data"] == data
    assert created["description"] == "what it is"
    assert created["key"] is None
    assert created["version"] == 1
    assert api.get(f"/artifacts/{created['id']}").json() == created


@pytest.mark.parametrize(
    ("type_", "data", "complaint"),
    [
        ("markdown", {"not": "text"}, "markdown"),
        ("table", "a,b\n1,2", "list of rows"),
        ("table", [{"a": 1}, [1]], "all objects"),
        ("table", [1, 2], "all objects"),
        ("link", "not a url", "URL"),
        ("link", ["https://example.com"], "URL"),
        ("chart", "x", "type"),
    ],
)
def test_data_must_fit_the_type(api: httpx.Client, type_: str, data: Any, complaint: str) -> None:
    response = api.post("/artifacts", json={"type": type_, "data": data})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert complaint in response.json()["detail"]


def test_invalid_keys_are_refused(api: httpx.Client) -> None:
    for key in ("Upper", "under_score", "-leading", "with space"):
        response = api.post("/artifacts", json={"key": key, "type": "markdown", "data": "x"})
        assert response.status_code == 422, key
        assert "lower-case letters" in response.json()["detail"]


def test_a_key_gets_a_new_version_each_time_and_the_latest_is_current(api: httpx.Client) -> None:
    first = _create(api, key="daily-report", data="v1")
    second = _create(api, key="daily-report", data="v2")
    third = _create(api, key="daily-report", data="v3")
    other = _create(api, key="other-report", data="o1")
    assert [first["version"], second["version"], third["version"], other["version"]] == [1, 2, 3, 1]
    assert api.get("/artifacts/key/daily-report").json() == third
    assert api.get(f"/artifacts/{first['id']}").json()["data"] == "v1"

    versions = api.get("/artifacts/key/daily-report/versions").json()
    assert versions["total"] == 3
    assert [item["version"] for item in versions["items"]] == [3, 2, 1]
    page = api.get("/artifacts/key/daily-report/versions", params={"limit": 1, "offset": 1}).json()
    assert [item["data"] for item in page["items"]] == ["v2"]
    assert page["total"] == 3


def test_concurrent_creates_of_one_key_get_distinct_versions(api: httpx.Client) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        created = list(pool.map(lambda i: _create(api, key="busy", data=f"d{i}"), range(16)))
    assert sorted(item["version"] for item in created) == list(range(1, 17))
    assert api.get("/artifacts/key/busy").json()["version"] == 16


def test_deleting_the_latest_version_makes_the_previous_one_current(api: httpx.Client) -> None:
    _create(api, key="report", data="v1")
    latest = _create(api, key="report", data="v2")
    assert api.delete(f"/artifacts/{latest['id']}").status_code == 204
    assert api.get(f"/artifacts/{latest['id']}").status_code == 404
    assert api.get("/artifacts/key/report").json()["data"] == "v1"
    assert api.delete(f"/artifacts/{latest['id']}").status_code == 404


def test_unknown_ids_and_keys_are_404_problems(api: httpx.Client) -> None:
    for path in (f"/artifacts/{uuid.uuid4()}", "/artifacts/key/nothing-here", "/artifacts/key/nothing-here/versions"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith("/artifact-not-found")
    assert api.get("/artifacts/not-a-uuid").status_code == 422


def test_an_artifact_may_belong_to_a_flow_run(
    api: httpx.Client, server_settings: Settings, new_flow_run: Callable[[Database], Awaitable[uuid.UUID]]
) -> None:
    run = _flow_run(server_settings, new_flow_run)
    task = str(uuid.uuid4())
    created = _create(api, flow_run_id=run, task_run_id=task)
    assert created["flow_run_id"] == run
    assert created["task_run_id"] == task


def test_an_unknown_flow_run_is_a_404_problem(api: httpx.Client) -> None:
    missing = str(uuid.uuid4())
    response = api.post("/artifacts", json={"type": "markdown", "data": "x", "flow_run_id": missing})
    assert response.status_code == 404
    assert response.json()["type"].endswith("/flow-run-not-found")
    assert missing in response.json()["detail"]


def test_filter_by_key_run_type_and_latest(
    api: httpx.Client, server_settings: Settings, new_flow_run: Callable[[Database], Awaitable[uuid.UUID]]
) -> None:
    run = _flow_run(server_settings, new_flow_run)
    task = str(uuid.uuid4())
    a1 = _create(api, key="a", data="a1", flow_run_id=run)
    a2 = _create(api, key="a", data="a2", flow_run_id=run, task_run_id=task)
    b1 = _create(api, key="b", type="table", data=[[1]])
    loose = _create(api, type="link", data="https://example.com", flow_run_id=run)

    def ids(**query: Any) -> list[str]:
        response = api.post("/artifacts/filter", json=query)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert ids() == [loose["id"], b1["id"], a2["id"], a1["id"]]  # newest first
    assert ids(sort="CREATED_ASC") == [a1["id"], a2["id"], b1["id"], loose["id"]]
    assert ids(sort="KEY_ASC") == [a2["id"], a1["id"], b1["id"], loose["id"]]
    assert ids(key="a") == [a2["id"], a1["id"]]
    assert ids(flow_run_ids=[run]) == [loose["id"], a2["id"], a1["id"]]
    assert ids(task_run_ids=[task]) == [a2["id"]]
    assert ids(types=["table", "link"]) == [loose["id"], b1["id"]]
    assert ids(latest_only=True) == [b1["id"], a2["id"]]
    assert ids(latest_only=True, flow_run_ids=[run]) == [a2["id"]]
    page = api.post("/artifacts/filter", json={"limit": 2, "offset": 2}).json()
    assert page["total"] == 4
    assert [item["id"] for item in page["items"]] == [a2["id"], a1["id"]]
    assert api.post("/artifacts/filter", json={"latest": True}).status_code == 422
