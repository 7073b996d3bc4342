"""Flows over the API, on SQLite and PostgreSQL: create-or-find, read, filter, delete."""

from __future__ import annotations

import uuid

import httpx
import pytest


def test_create_returns_201_then_the_same_flow_with_200(api: httpx.Client) -> None:
    first = api.post("/flows", json={"name": "etl", "tags": ["nightly"]})
    assert first.status_code == 201
    flow = first.json()
    assert flow["name"] == "etl"
    assert flow["tags"] == ["nightly"]

    again = api.post("/flows", json={"name": "etl", "tags": ["other"]})
    assert again.status_code == 200
    assert again.json() == flow  # found, not changed


def test_read_by_id_and_by_name(api: httpx.Client) -> None:
    flow = api.post("/flows", json={"name": "reports/daily"}).json()
    assert api.get(f"/flows/{flow['id']}").json() == flow
    assert api.get("/flows/name/reports%2Fdaily").json() == flow


@pytest.mark.parametrize("path", [f"/flows/{uuid.uuid4()}", "/flows/name/nothing-here"])
def test_unknown_flow_is_a_404_problem(api: httpx.Client, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "not found" in response.json()["detail"]


def test_invalid_flow_is_a_422_problem(api: httpx.Client) -> None:
    response = api.post("/flows", json={"name": ""})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "name"]
    assert api.post("/flows", json={"name": "x", "colour": "red"}).status_code == 422


def test_filter_by_name_and_tags_with_pagination(api: httpx.Client) -> None:
    for index in range(7):
        tags = ["team-a"] + (["critical"] if index % 2 == 0 else [])
        api.post("/flows", json={"name": f"pipeline-{index}", "tags": tags})
    api.post("/flows", json={"name": "other_thing", "tags": ["team-b"]})

    everything = api.post("/flows/filter", json={}).json()
    assert everything["total"] == 8
    assert len(everything["items"]) == 8
    assert [f["name"] for f in everything["items"]] == sorted(f["name"] for f in everything["items"])

    critical = api.post("/flows/filter", json={"tags_all": ["team-a", "critical"]}).json()
    assert {f["name"] for f in critical["items"]} == {"pipeline-0", "pipeline-2", "pipeline-4", "pipeline-6"}

    # name_like is a case-insensitive substring; LIKE wildcards in it are taken literally
    assert api.post("/flows/filter", json={"name_like": "PIPELINE"}).json()["total"] == 7
    assert [f["name"] for f in api.post("/flows/filter", json={"name_like": "r_t"}).json()["items"]] == ["other_thing"]
    assert api.post("/flows/filter", json={"name_like": "%"}).json()["total"] == 0

    pages = [
        api.post("/flows/filter", json={"name_like": "pipeline", "limit": 3, "offset": o}).json() for o in (0, 3, 6)
    ]
    assert [p["total"] for p in pages] == [7, 7, 7]
    names = [f["name"] for page in pages for f in page["items"]]
    assert names == [f"pipeline-{i}" for i in range(7)]
    assert (pages[0]["limit"], pages[0]["offset"]) == (3, 0)


def test_filter_without_a_body_uses_the_defaults(api: httpx.Client) -> None:
    api.post("/flows", json={"name": "one"})
    page = api.post("/flows/filter").json()
    assert page["total"] == 1
    assert page["limit"] == 50
    assert page["offset"] == 0


@pytest.mark.parametrize("bounds", [{"limit": 0}, {"limit": 201}, {"offset": -1}])
def test_page_bounds_are_enforced(api: httpx.Client, bounds: dict[str, int]) -> None:
    response = api.post("/flows/filter", json=bounds)
    assert response.status_code == 422
    assert response.json()["type"].endswith("/validation-error")


def test_delete_removes_the_flow_with_its_runs(api: httpx.Client) -> None:
    flow = api.post("/flows", json={"name": "doomed"}).json()
    run = api.post("/flow-runs", json={"flow_id": flow["id"]}).json()
    kept = api.post("/flow-runs", json={"flow_name": "kept"}).json()

    assert api.delete(f"/flows/{flow['id']}").status_code == 204
    assert api.get(f"/flows/{flow['id']}").status_code == 404
    assert api.get(f"/flow-runs/{run['id']}").status_code == 404
    assert api.get(f"/flow-runs/{kept['id']}").status_code == 200
    assert api.delete(f"/flows/{flow['id']}").status_code == 404
