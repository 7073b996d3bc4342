"""The API key routes against a live server: create (key shown once, hash stored), list, revoke."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from headrace.server.db import Database, models
from headrace.settings import Settings
from headrace.testing.server import RunningServer


@pytest.fixture
def admin(api: httpx.Client) -> Iterator[httpx.Client]:
    """A client holding an admin key: the first key, created while auth is off."""
    created = api.post("/api-keys", json={"name": "admin", "scope": "admin"})
    assert created.status_code == 201
    with httpx.Client(
        base_url=api.base_url, timeout=30, headers={"Authorization": f"Bearer {created.json()['key']}"}
    ) as client:
        yield client


def stored_rows(settings: Settings) -> list[Any]:
    async def read() -> list[Any]:
        async with Database.from_settings(settings) as database, database.read() as session:
            return list((await session.execute(sa.select(models.ApiKey.name, models.ApiKey.hashed_key))).all())

    return asyncio.run(read())


def test_create_returns_the_key_once_and_stores_only_its_hash(admin: httpx.Client, server_settings: Settings) -> None:
    response = admin.post("/api-keys", json={"name": "ci", "scope": "write"})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "name", "scope", "created", "last_used", "revoked", "key"}
    assert body["name"] == "ci"
    assert body["scope"] == "write"
    assert body["revoked"] is False
    assert body["last_used"] is None
    key = body["key"]
    assert key.startswith("hr_")
    assert len(key) >= 40
    rows = dict(stored_rows(server_settings))
    assert rows["ci"] == hashlib.sha256(key.encode()).hexdigest()
    assert key not in rows.values()
    listed = admin.get("/api-keys")
    assert listed.status_code == 200
    assert key not in listed.text
    assert rows["ci"] not in listed.text
    assert all(set(item) == {"id", "name", "scope", "created", "last_used", "revoked"} for item in listed.json())


def test_the_scope_defaults_to_read(admin: httpx.Client) -> None:
    assert admin.post("/api-keys", json={"name": "viewer"}).json()["scope"] == "read"


def test_list_shows_every_key_oldest_first(admin: httpx.Client) -> None:
    for name in ("b", "a"):
        admin.post("/api-keys", json={"name": name})
    assert [key["name"] for key in admin.get("/api-keys").json()] == ["admin", "b", "a"]


def test_a_duplicate_name_is_a_409_problem(admin: httpx.Client) -> None:
    admin.post("/api-keys", json={"name": "ci"})
    response = admin.post("/api-keys", json={"name": "ci", "scope": "admin"})
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "an API key named 'ci' already exists"


@pytest.mark.parametrize(
    "body",
    [{"name": ""}, {"name": "x", "scope": "root"}, {"name": "x", "extra": 1}, {"scope": "read"}, {"name": "x" * 201}],
)
def test_invalid_bodies_are_422_problems(admin: httpx.Client, body: dict[str, Any]) -> None:
    response = admin.post("/api-keys", json=body)
    assert response.status_code == 422
    assert response.json()["type"].endswith("/validation-error")


def test_revoke_refuses_the_key_marks_it_and_is_idempotent(admin: httpx.Client) -> None:
    created = admin.post("/api-keys", json={"name": "ci", "scope": "write"}).json()
    ci = {"Authorization": f"Bearer {created['key']}"}
    assert admin.get("/version", headers=ci).status_code == 200
    assert admin.delete(f"/api-keys/{created['id']}").status_code == 204
    assert admin.get("/version", headers=ci).status_code == 401
    (listed,) = [key for key in admin.get("/api-keys").json() if key["name"] == "ci"]
    assert listed["revoked"] is True
    assert admin.delete(f"/api-keys/{created['id']}").status_code == 204


def test_revoking_an_unknown_key_is_a_404_problem(admin: httpx.Client) -> None:
    response = admin.delete("/api-keys/00000000-0000-4000-8000-000000000000")
    assert response.status_code == 404
    assert "no API key" in response.json()["detail"]


def test_a_revoked_key_s_name_can_be_used_again(admin: httpx.Client) -> None:
    old = admin.post("/api-keys", json={"name": "ci"}).json()
    admin.delete(f"/api-keys/{old['id']}")
    new = admin.post("/api-keys", json={"name": "ci", "scope": "write"})
    assert new.status_code == 201
    assert [(key["name"], key["revoked"]) for key in admin.get("/api-keys").json()] == [
        ("admin", False),
        ("ci", False),
    ]
    assert admin.get("/version", headers={"Authorization": f"Bearer {old['key']}"}).status_code == 401
    assert admin.get("/version", headers={"Authorization": f"Bearer {new.json()['key']}"}).status_code == 200


def test_another_replica_refuses_a_revoked_key_after_its_cache_window(
    admin: httpx.Client, start_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from headrace.server.api import dependencies

    monkeypatch.setattr(dependencies, "KEY_CACHE_SECONDS", 0.2)
    other: RunningServer = start_server()
    created = admin.post("/api-keys", json={"name": "ci"}).json()
    headers = {"Authorization": f"Bearer {created['key']}"}
    assert httpx.get(f"{other.api_url}/version", headers=headers).status_code == 200  # now cached there
    assert admin.delete(f"/api-keys/{created['id']}").status_code == 204
    deadline = time.monotonic() + 30
    while (status := httpx.get(f"{other.api_url}/version", headers=headers).status_code) == 200:
        assert time.monotonic() < deadline, "the other replica never noticed the revocation"
        time.sleep(0.05)
    assert status == 401
