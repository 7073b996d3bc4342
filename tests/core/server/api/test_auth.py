"""Authentication and scopes against a live server: when auth is on, what 401 and 403 look like, and a
sweep over every route of the app (so that a route added without a scope guard fails here)."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from headrace.schemas.auth import Scope
from headrace.server.api import dependencies
from headrace.server.api.dependencies import ScopeGuard
from headrace.server.db import Database
from headrace.server.operations.api_keys import create_api_key, revoke_api_key
from headrace.settings import Settings
from headrace.testing.server import RunningServer

StartServer = Callable[..., RunningServer]

WRONG_KEY = "hr_" + "x" * 43


def make_keys(settings: Settings, **scopes: Scope) -> dict[str, str]:
    """Create keys on the database directly (as ``headrace server api-key create`` does): name -> key."""

    async def create() -> dict[str, str]:
        async with Database.from_settings(settings) as database:
            return {name: (await create_api_key(database, name, scope)).key for name, scope in scopes.items()}

    return asyncio.run(create())


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_problem(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, (response.request.method, response.request.url, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].endswith(f"/{kind}")
    assert body["detail"]
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    return body


@pytest.fixture
def keys(server_settings: Settings) -> dict[str, str]:
    return make_keys(server_settings, reader=Scope.READ, writer=Scope.WRITE, admin=Scope.ADMIN)


@pytest.fixture
def secured(start_server: StartServer, keys: dict[str, str]) -> Iterator[httpx.Client]:
    """A client on a live server on whose database one key of each scope exists."""
    server = start_server()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


# ------------------------------------------------------------------------------------- when auth is on


def test_auth_is_off_while_no_key_exists(api: httpx.Client) -> None:
    assert api.get("/version").status_code == 200
    assert api.get("/version", headers=bearer(WRONG_KEY)).status_code == 200
    assert api.get("/admin/settings").status_code == 200


def test_the_first_key_switches_auth_on_at_once(api: httpx.Client) -> None:
    assert api.get("/version").status_code == 200  # caches "no key" on this replica
    created = api.post("/api-keys", json={"name": "first", "scope": "admin"})
    assert created.status_code == 201
    assert_problem(api.get("/version"), 401, "unauthenticated")
    assert api.get("/version", headers=bearer(created.json()["key"])).status_code == 200


def test_a_key_made_elsewhere_switches_auth_on_after_the_cache_window(
    start_server: StartServer, server_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dependencies, "KEY_CACHE_SECONDS", 0.2)
    server = start_server()
    assert httpx.get(f"{server.api_url}/version").status_code == 200
    make_keys(server_settings, elsewhere=Scope.READ)  # another process: the server is not told
    deadline = time.monotonic() + 30
    while (status := httpx.get(f"{server.api_url}/version").status_code) == 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert status == 401


def test_auth_required_by_setting_refuses_requests_with_no_key_in_the_database(start_server: StartServer) -> None:
    server = start_server(server_auth_required=True)
    assert_problem(httpx.get(f"{server.api_url}/version"), 401, "unauthenticated")
    assert_problem(httpx.post(f"{server.api_url}/api-keys", json={"name": "x"}), 401, "unauthenticated")


def test_health_stays_open(start_server: StartServer, keys: dict[str, str]) -> None:
    server = start_server(server_auth_required=True)
    assert httpx.get(f"{server.api_url}/health").status_code == 200
    assert httpx.get(f"{server.api_url}/health", headers=bearer(WRONG_KEY)).status_code == 200


def test_docs_and_openapi_stay_open(secured: httpx.Client) -> None:
    assert secured.get("/openapi.json").status_code == 200
    assert secured.get("/docs").status_code == 200


# ------------------------------------------------------------------------------------------------- 401


@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer(WRONG_KEY),
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer    x"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": WRONG_KEY},
        bearer("hr_" + "y" * 5000),
        {"Authorization": "Bearer h\u00e9".encode("latin-1")},
    ],
    ids=["missing", "wrong", "empty", "spaces", "basic", "no-scheme", "huge", "latin1"],
)
def test_requests_without_a_valid_key_get_401(secured: httpx.Client, headers: dict[str, Any]) -> None:
    body = assert_problem(secured.get("/api/version", headers=headers), 401, "unauthenticated")
    assert body["title"] == "Unauthorized"


def test_a_revoked_key_is_refused_at_once(secured: httpx.Client, keys: dict[str, str]) -> None:
    assert secured.get("/api/version", headers=bearer(keys["reader"])).status_code == 200
    listed = secured.get("/api/api-keys", headers=bearer(keys["admin"])).json()
    reader_id = next(key["id"] for key in listed if key["name"] == "reader")
    assert secured.delete(f"/api/api-keys/{reader_id}", headers=bearer(keys["admin"])).status_code == 204
    body = assert_problem(secured.get("/api/version", headers=bearer(keys["reader"])), 401, "unauthenticated")
    assert "revoked" in body["detail"]


def test_revoking_every_key_keeps_auth_on(secured: httpx.Client, server_settings: Settings) -> None:
    async def revoke_all() -> None:
        async with Database.from_settings(server_settings) as database:
            for name in ("reader", "writer", "admin"):
                await revoke_api_key(database, name)

    asyncio.run(revoke_all())
    # Another process revoked the keys; whatever this replica cached, nobody gets in without a key.
    assert_problem(secured.get("/api/version"), 401, "unauthenticated")


def test_an_unauthenticated_request_is_refused_before_its_body_is_read(secured: httpx.Client) -> None:
    malformed = secured.post("/api/api-keys", content=b"{not json", headers={"content-type": "application/json"})
    assert_problem(malformed, 401, "unauthenticated")
    assert_problem(secured.post("/api/api-keys", json={"scope": "nonsense"}), 401, "unauthenticated")
    assert_problem(secured.delete("/api/api-keys/not-a-uuid"), 401, "unauthenticated")
    assert_problem(secured.get("/api/no-such-route"), 401, "unauthenticated")


def test_text_no_database_can_store_is_refused_not_a_server_error(secured: httpx.Client, keys: dict[str, str]) -> None:
    admin = bearer(keys["admin"])
    for path in ("/api/api-keys/a%00b", "/api/api-keys?x=a%00b"):
        assert_problem(secured.delete(path, headers=admin), 400, "bad-request")
    assert_problem(secured.delete("/api/api-keys/a%00b"), 401, "unauthenticated")  # the key comes first
    for body in (r'{"name": "a\u0000b"}', r'{"name": "a\udc80b"}'):  # JSON escapes: NUL, a lone surrogate
        response = secured.post("/api/api-keys", content=body, headers={**admin, "content-type": "application/json"})
        assert_problem(response, 422, "validation-error")


# ------------------------------------------------------------------------------------------------- 403


def test_a_read_key_cannot_write_and_a_write_key_cannot_manage_keys(
    secured: httpx.Client, keys: dict[str, str]
) -> None:
    for name in ("reader", "writer"):
        body = assert_problem(
            secured.post("/api/api-keys", json={"name": "new"}, headers=bearer(keys[name])), 403, "forbidden"
        )
        assert "needs 'admin'" in body["detail"]
        assert_problem(secured.get("/api/api-keys", headers=bearer(keys[name])), 403, "forbidden")
    assert secured.post("/api/api-keys", json={"name": "new"}, headers=bearer(keys["admin"])).status_code == 201


def test_an_unauthorized_request_is_refused_before_its_body_is_read(
    secured: httpx.Client, keys: dict[str, str]
) -> None:
    headers = {**bearer(keys["reader"]), "content-type": "application/json"}
    assert_problem(secured.post("/api/api-keys", content=b"{not json", headers=headers), 403, "forbidden")
    assert_problem(secured.delete("/api/api-keys/not-a-uuid", headers=headers), 403, "forbidden")


def test_using_a_key_records_when_it_was_last_used(secured: httpx.Client, keys: dict[str, str]) -> None:
    def last_used(name: str) -> str | None:
        listed = secured.get("/api/api-keys", headers=bearer(keys["admin"])).json()
        value: str | None = next(key["last_used"] for key in listed if key["name"] == name)
        return value

    assert last_used("reader") is None
    secured.get("/api/version", headers=bearer(keys["reader"]))
    assert last_used("reader") is not None


# ------------------------------------------------------------------------------- every route of the app


@dataclass(frozen=True)
class Endpoint:
    method: str
    template: str
    scopes: frozenset[Scope]
    websocket: bool

    def path(self) -> str:
        return re.sub(r"\{[^}]+\}", lambda _: str(uuid.uuid4()), self.template)

    @property
    def needed(self) -> Scope:
        return max(self.scopes, key=[Scope.READ, Scope.WRITE, Scope.ADMIN].index)


def _guards(dependant: Any) -> set[Scope]:
    """The scopes of the ScopeGuards in a dependency tree (walked here, not with the code under test)."""
    found = {dependant.call.scope} if isinstance(dependant.call, ScopeGuard) else set()
    for child in dependant.dependencies:
        found |= _guards(child)
    return found


def app_endpoints(settings: Settings) -> list[Endpoint]:
    """Every (method, path) the app serves, through included routers (``app.routes`` alone hides them)."""
    from fastapi.routing import APIWebSocketRoute, iter_route_contexts

    from headrace.server.app import create_app

    app = create_app(settings)
    endpoints = []
    for context in iter_route_contexts(app.routes):
        dependant = getattr(context, "dependant", None)
        scopes = frozenset(_guards(dependant)) if dependant is not None else frozenset()
        websocket = isinstance(context.original_route, APIWebSocketRoute)
        methods = {"WEBSOCKET"} if websocket else set(context.methods or ()) - {"HEAD"}
        endpoints.extend(Endpoint(method, context.path or "", scopes, websocket) for method in sorted(methods))
    return endpoints


def _is_write(endpoint: Endpoint) -> bool:
    """Routes that change something: every method but GET, except POSTs that only filter or count."""
    if endpoint.method in ("GET", "WEBSOCKET"):
        return False
    return not (endpoint.method == "POST" and endpoint.template.endswith(("/filter", "/count")))


def test_the_route_enumeration_sees_every_route_the_openapi_document_has(
    server_settings: Settings, secured: httpx.Client
) -> None:
    endpoints = {
        (endpoint.method, re.sub(r"\{(\w+):[^}]+\}", r"{\1}", endpoint.template))  # {name:path} -> {name}
        for endpoint in app_endpoints(server_settings)
    }
    documented = {
        (method.upper(), path)
        for path, operations in secured.get("/openapi.json").json()["paths"].items()
        for method in operations
    }
    assert documented, "the OpenAPI document lists no operation"
    assert documented <= endpoints
    assert {("GET", "/api/health"), ("GET", "/api/version"), ("POST", "/api/api-keys")} <= endpoints


def test_every_api_route_declares_a_scope_and_only_health_is_open(server_settings: Settings) -> None:
    api = [endpoint for endpoint in app_endpoints(server_settings) if endpoint.template.startswith("/api/")]
    assert len(api) >= 5
    open_routes = {endpoint.template for endpoint in api if not endpoint.scopes}
    assert open_routes == {"/api/health"} == set(dependencies.OPEN_PATHS)
    reads_that_write = [e for e in api if _is_write(e) and e.needed is Scope.READ]
    assert not reads_that_write, f"routes that change something must need 'write' or 'admin': {reads_that_write}"


def test_every_route_refuses_missing_wrong_and_insufficient_keys(
    server_settings: Settings, secured: httpx.Client, keys: dict[str, str]
) -> None:
    endpoints = [
        endpoint
        for endpoint in app_endpoints(server_settings)
        if endpoint.template.startswith("/api/") and endpoint.scopes and not endpoint.websocket
    ]
    assert endpoints
    checked_writes = 0
    for endpoint in endpoints:
        path = endpoint.path()
        body = {"json": {}} if endpoint.method in ("POST", "PUT", "PATCH") else {}

        def call(headers: dict[str, str], endpoint: Endpoint = endpoint, path: str = path, body: Any = body) -> Any:
            return secured.request(endpoint.method, path, headers=headers, **body)

        assert_problem(call({}), 401, "unauthenticated")
        assert_problem(call(bearer(WRONG_KEY)), 401, "unauthenticated")
        for name, scope in (("reader", Scope.READ), ("writer", Scope.WRITE)):
            if not scope.allows(endpoint.needed):
                assert_problem(call(bearer(keys[name])), 403, "forbidden")
        if _is_write(endpoint):
            checked_writes += 1
            assert_problem(call(bearer(keys["reader"])), 403, "forbidden")
        assert call(bearer(keys["admin"])).status_code not in (401, 403), (endpoint, "admin refused")
        if Scope.READ.allows(endpoint.needed):
            assert call(bearer(keys["reader"])).status_code not in (401, 403), (endpoint, "reader refused")
    assert checked_writes >= 2  # at least POST and DELETE /api/api-keys
