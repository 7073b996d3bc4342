"""Variables: create, read, update, delete by name, filters, size bound, against a live server."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from headrace.schemas.artifacts import MAX_VARIABLE_VALUE_BYTES


def _create(api: httpx.Client, name: str, value: Any, tags: list[str] | None = None) -> dict[str, Any]:
    response = api.post("/variables", json={"name": name, "value": value, "tags": tags or []})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("value", ["text", 42, 1.5, True, None, [1, "two", None], {"nested": {"list": [1, 2]}}])
def test_any_json_value_round_trips(api: httpx.Client, value: Any) -> None:
    created = _create(api, "thing", value, ["a"])
    assert created["value"] == value
    assert created["tags"] == ["a"]
    assert created["name"] == "thing"
    assert api.get("/variables/name/thing").json() == created


def test_a_taken_name_is_a_409_problem(api: httpx.Client) -> None:
    _create(api, "region", "eu-west-1")
    response = api.post("/variables", json={"name": "region", "value": "us-east-1"})
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/variable-exists")
    assert "'region'" in response.json()["detail"]
    assert api.get("/variables/name/region").json()["value"] == "eu-west-1"


def test_names_are_checked(api: httpx.Client) -> None:
    for name in ("Upper", "with space", "dot.ted", ""):
        assert api.post("/variables", json={"name": name, "value": 1}).status_code == 422, name


def test_a_value_over_the_bound_is_a_clear_422_problem(api: httpx.Client) -> None:
    big = "x" * MAX_VARIABLE_VALUE_BYTES
    response = api.post("/variables", json={"name": "big", "value": big})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "body.value" in detail
    assert f"at most {MAX_VARIABLE_VALUE_BYTES:,}" in detail
    fits = "x" * (MAX_VARIABLE_VALUE_BYTES - 2)  # two bytes for the JSON quotes
    assert _create(api, "fits", fits)["value"] == fits
    assert api.patch("/variables/name/fits", json={"value": big}).status_code == 422
    assert api.get("/variables/name/fits").json()["value"] == fits


def test_update_changes_only_what_is_given(api: httpx.Client) -> None:
    created = _create(api, "threshold", 10, ["ops"])
    value_only = api.patch("/variables/name/threshold", json={"value": 20})
    assert value_only.status_code == 200
    assert value_only.json()["value"] == 20
    assert value_only.json()["tags"] == ["ops"]
    assert value_only.json()["updated"] > created["updated"]
    assert value_only.json()["created"] == created["created"]
    tags_only = api.patch("/variables/name/threshold", json={"tags": ["ops", "prod"]}).json()
    assert tags_only["value"] == 20
    assert tags_only["tags"] == ["ops", "prod"]
    to_null = api.patch("/variables/name/threshold", json={"value": None}).json()
    assert to_null["value"] is None
    assert to_null["tags"] == ["ops", "prod"]
    assert api.get("/variables/name/threshold").json() == to_null
    assert api.patch("/variables/name/threshold", json={"name": "renamed"}).status_code == 422


def test_delete(api: httpx.Client) -> None:
    _create(api, "temp", 1)
    assert api.delete("/variables/name/temp").status_code == 204
    assert api.get("/variables/name/temp").status_code == 404
    assert api.delete("/variables/name/temp").status_code == 404
    assert _create(api, "temp", 2)["value"] == 2  # the name is free again


def test_unknown_names_are_404_problems(api: httpx.Client) -> None:
    for response in (
        api.get("/variables/name/missing"),
        api.patch("/variables/name/missing", json={"value": 1}),
        api.delete("/variables/name/missing"),
    ):
        assert response.status_code == 404
        assert response.json()["type"].endswith("/variable-not-found")
        assert "'missing'" in response.json()["detail"]


def test_filter_by_name_tags_and_pages(api: httpx.Client) -> None:
    _create(api, "db_host", "h", ["db", "prod"])
    _create(api, "db_port", 5432, ["db"])
    _create(api, "api-url", "u", ["prod"])
    _create(api, "under_score", 1)

    def names(**query: Any) -> list[str]:
        response = api.post("/variables/filter", json=query)
        assert response.status_code == 200, response.text
        return [item["name"] for item in response.json()["items"]]

    assert names() == ["api-url", "db_host", "db_port", "under_score"]
    assert names(name_like="DB_") == ["db_host", "db_port"]  # case-insensitive, and "_" is not a wildcard
    assert names(name_like="r_s") == ["under_score"]
    assert names(name_like="b_h") == ["db_host"]
    assert names(name_like="%") == []
    assert names(names=["db_port", "api-url", "nope"]) == ["api-url", "db_port"]
    assert names(tags=["db"]) == ["db_host", "db_port"]
    assert names(tags=["db", "prod"]) == ["db_host"]
    api.patch("/variables/name/db_port", json={"value": 5433})
    assert names(sort="UPDATED_DESC")[0] == "db_port"
    page = api.post("/variables/filter", json={"limit": 3, "offset": 3}).json()
    assert page["total"] == 4
    assert [item["name"] for item in page["items"]] == ["under_score"]
