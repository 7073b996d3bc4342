"""CSRF protection (HEADRACE_SERVER_CSRF_PROTECTION_ENABLED) against a live server, and its secret file."""

from __future__ import annotations

import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from headrace.server.security.csrf import (
    CLIENT_HEADER,
    TOKEN_HEADER,
    CsrfSecretError,
    issue_token,
    load_or_create_secret,
    token_is_valid,
)
from headrace.settings import Settings
from headrace.testing.server import RunningServer

StartServer = Callable[..., RunningServer]


@pytest.fixture
def server(start_server: StartServer) -> RunningServer:
    return start_server(server_csrf_protection_enabled=True)


@pytest.fixture
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.api_url, timeout=30) as client:
        yield client


def token_headers(client: httpx.Client, client_id: str = "browser-1") -> dict[str, str]:
    response = client.get("/csrf-token", params={"client": client_id})
    assert response.status_code == 200
    body = response.json()
    assert body["client"] == client_id
    return {TOKEN_HEADER: body["token"], CLIENT_HEADER: client_id}


def assert_csrf_refusal(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"].endswith("/csrf")
    assert body["detail"].startswith("missing or invalid CSRF token")


def test_unsafe_requests_without_a_token_are_refused(client: httpx.Client) -> None:
    assert_csrf_refusal(client.post("/api-keys", json={"name": "ci"}))
    assert_csrf_refusal(client.delete("/api-keys/00000000-0000-4000-8000-000000000000"))
    assert client.get("/api-keys").json() == []  # nothing was created


def test_safe_requests_need_no_token(client: httpx.Client) -> None:
    assert client.get("/version").status_code == 200
    assert client.get("/health").status_code == 200


def test_a_valid_token_lets_unsafe_requests_through(client: httpx.Client) -> None:
    headers = token_headers(client)
    assert client.post("/api-keys", json={"name": "ci"}, headers=headers).status_code == 201


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h: {TOKEN_HEADER: h[TOKEN_HEADER]},  # no client id
        lambda h: {CLIENT_HEADER: h[CLIENT_HEADER]},  # no token
        lambda h: {**h, CLIENT_HEADER: "browser-2"},  # another client's token
        lambda h: {**h, TOKEN_HEADER: h[TOKEN_HEADER][:-2] + "AA"},  # forged signature
        lambda h: {**h, TOKEN_HEADER: "9999999999." + h[TOKEN_HEADER].partition(".")[2]},  # extended expiry
        lambda h: {**h, TOKEN_HEADER: "garbage"},
        lambda h: {**h, TOKEN_HEADER: "\u00b2.abc".encode("latin-1")},  # a digit int() refuses
        lambda h: {**h, TOKEN_HEADER: "1.\u00e9".encode("latin-1")},  # non-ASCII signature
    ],
    ids=["no-client", "no-token", "other-client", "forged", "extended", "garbage", "superscript", "latin1"],
)
def test_invalid_tokens_are_refused(client: httpx.Client, tamper: Callable[[dict[str, str]], Any]) -> None:
    assert_csrf_refusal(client.post("/api-keys", json={"name": "ci"}, headers=tamper(token_headers(client))))


def test_an_expired_token_is_refused(client: httpx.Client, server_settings: Settings) -> None:
    secret = load_or_create_secret(server_settings.home)  # the server's own secret file
    token, _ = issue_token(secret, "browser-1", 60, now=time.time() - 3600)
    headers = {TOKEN_HEADER: token, CLIENT_HEADER: "browser-1"}
    assert_csrf_refusal(client.post("/api-keys", json={"name": "ci"}, headers=headers))
    fresh, _ = issue_token(secret, "browser-1", 60)
    fresh_headers = {TOKEN_HEADER: fresh, CLIENT_HEADER: "browser-1"}
    assert client.post("/api-keys", json={"name": "ci"}, headers=fresh_headers).status_code == 201


def test_requests_authenticated_with_a_key_are_exempt(client: httpx.Client) -> None:
    csrf = token_headers(client)
    key = client.post("/api-keys", json={"name": "admin", "scope": "admin"}, headers=csrf).json()
    with_key = {"Authorization": f"Bearer {key['key']}"}
    assert client.post("/api-keys", json={"name": "ci"}, headers=with_key).status_code == 201
    # Now that auth is on, a request without a key is refused for that (401), CSRF token or not.
    assert client.post("/api-keys", json={"name": "ci2"}, headers=csrf).status_code == 401


def test_the_token_endpoint_names_its_expiry(client: httpx.Client, server: RunningServer) -> None:
    body = client.get("/csrf-token", params={"client": "browser-1"}).json()
    assert body["expiration"].endswith("Z")


# ---------------------------------------------------------------------------------------- the secret


def test_the_secret_is_made_once_private_and_shared(tmp_path: Path) -> None:
    first = load_or_create_secret(tmp_path / "home")
    path = tmp_path / "home" / "csrf.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(tmp_path / "home") == first
    assert len(first) == 32
    assert [p.name for p in path.parent.iterdir()] == ["csrf.key"]  # no temporary file left behind


def test_processes_starting_together_agree_on_one_secret(tmp_path: Path) -> None:
    results: list[bytes] = []
    barrier = threading.Barrier(8)

    def load() -> None:
        barrier.wait()
        results.append(load_or_create_secret(tmp_path))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    assert len(set(results)) == 1


def test_a_damaged_secret_file_is_an_error_not_an_empty_key(tmp_path: Path) -> None:
    (tmp_path / "csrf.key").write_text("")
    with pytest.raises(CsrfSecretError, match="delete it"):
        load_or_create_secret(tmp_path)


def test_tokens_are_bound_to_client_and_secret() -> None:
    token, _ = issue_token(b"k" * 32, "a", 60)
    assert token_is_valid(b"k" * 32, "a", token)
    assert not token_is_valid(b"k" * 32, "b", token)
    assert not token_is_valid(b"j" * 32, "a", token)


def test_no_secret_file_is_made_when_protection_is_off(live_server: RunningServer, server_settings: Settings) -> None:
    assert httpx.get(f"{live_server.api_url}/health").status_code == 200
    assert not (server_settings.home / "csrf.key").exists()
