"""Health, version, problem details and the OpenAPI document, against a live server."""

from __future__ import annotations

import httpx

from headrace import __version__
from headrace.testing.server import RunningServer


def test_health_reports_the_database(api: httpx.Client, dialect: str) -> None:
    response = api.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": dialect}


def test_version(api: httpx.Client) -> None:
    assert api.get("/version").json() == {"version": __version__, "api_version": "1"}


def test_unknown_route_is_a_problem_document(api: httpx.Client) -> None:
    response = api.get("/no-such-thing")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 404
    assert body["title"] == "Not Found"
    assert body["type"].endswith("/not-found")


def test_invalid_request_is_a_problem_document_naming_the_field(api: httpx.Client) -> None:
    response = api.get("/csrf-token")
    assert response.status_code == 422
    body = response.json()
    assert body["type"].endswith("/validation-error")
    assert "query.client" in body["detail"]
    assert body["errors"][0]["loc"] == ["query", "client"]


def test_openapi_and_docs_are_served(live_server: RunningServer) -> None:
    document = httpx.get(f"{live_server.url}/openapi.json").json()
    assert "/api/health" in document["paths"]
    assert httpx.get(f"{live_server.url}/docs").status_code == 200


def test_admin_settings_masks_secrets(start_server: object) -> None:
    server = start_server(api_key="hr_very_secret_value")  # type: ignore[operator]
    body = httpx.get(f"{server.api_url}/admin/settings").json()
    assert body["settings"]["HEADRACE_API_KEY"] == "********"
    assert "hr_very_secret_value" not in str(body)


def test_csrf_token_is_refused_when_protection_is_off(api: httpx.Client) -> None:
    response = api.get("/csrf-token", params={"client": "browser-1"})
    assert response.status_code == 422
    assert "CSRF protection is off" in response.json()["detail"]
