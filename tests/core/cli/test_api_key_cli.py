"""``headrace server api-key create|ls|revoke`` on the database of HEADRACE_HOME (SQLite, migrated on first use)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from headrace.testing.server import running_server

Run = Callable[..., Any]


def create(invoke: Run, name: str, scope: str = "read") -> str:
    ran = invoke("server", "api-key", "create", "--name", name, "--scope", scope)
    assert ran.code == 0, ran.stderr
    return str(ran.stdout.strip())


def test_create_prints_the_key_alone_on_stdout_and_warns_on_stderr(invoke: Run) -> None:
    ran = invoke("server", "api-key", "create", "--name", "admin", "--scope", "admin")
    assert ran.code == 0, ran.stderr
    assert re.fullmatch(r"hr_[A-Za-z0-9_-]{40,}\n", ran.stdout)
    assert "created API key 'admin' (scope admin" in ran.stderr
    assert "cannot be shown again" in ran.stderr


def test_create_as_json(invoke: Run) -> None:
    ran = invoke("server", "api-key", "create", "--name", "ci", "--scope", "write", "--json")
    body = json.loads(ran.stdout)
    assert body["name"] == "ci"
    assert body["scope"] == "write"
    assert body["key"].startswith("hr_")


def test_ls_shows_keys_but_never_the_keys_themselves(invoke: Run) -> None:
    key = create(invoke, "ci", "write")
    listed = invoke("server", "api-key", "ls")
    assert listed.code == 0
    assert "ci" in listed.stdout
    assert "write" in listed.stdout
    assert "active" in listed.stdout
    assert key not in listed.stdout
    assert key[3:12] not in listed.stdout
    as_json = invoke("server", "api-key", "ls", "--json")
    (item,) = json.loads(as_json.stdout)
    assert set(item) == {"id", "name", "scope", "created", "last_used", "revoked"}
    assert key not in as_json.stdout


def test_ls_with_no_keys_says_that_auth_is_off(invoke: Run) -> None:
    ran = invoke("server", "api-key", "ls")
    assert ran.code == 0
    assert "no API keys" in ran.stdout
    assert json.loads(invoke("server", "api-key", "ls", "--json").stdout) == []


def test_a_duplicate_name_is_a_one_line_error(invoke: Run) -> None:
    create(invoke, "ci")
    ran = invoke("server", "api-key", "create", "--name", "ci")
    assert ran.code == 1
    assert ran.stderr.strip() == "error: an API key named 'ci' already exists"
    assert ran.stdout == ""


def test_an_unknown_scope_is_a_usage_error(invoke: Run) -> None:
    ran = invoke("server", "api-key", "create", "--name", "ci", "--scope", "root")
    assert ran.code == 2
    assert "'root' is not one of: read, write, admin" in ran.stderr


def test_revoke_by_name_and_by_id(invoke: Run) -> None:
    create(invoke, "by-name")
    create(invoke, "by-id")
    key_id = next(
        k["id"] for k in json.loads(invoke("server", "api-key", "ls", "--json").stdout) if k["name"] == "by-id"
    )
    assert invoke("server", "api-key", "revoke", "by-name").stdout.startswith("revoked API key 'by-name'")
    assert invoke("server", "api-key", "revoke", key_id).stdout.startswith("revoked API key 'by-id'")
    again = invoke("server", "api-key", "revoke", "by-name")
    assert again.code == 0
    assert "was already revoked" in again.stdout
    listed = json.loads(invoke("server", "api-key", "ls", "--json").stdout)
    assert all(item["revoked"] for item in listed)


def test_revoking_an_unknown_key_is_a_one_line_error(invoke: Run) -> None:
    ran = invoke("server", "api-key", "revoke", "nope")
    assert ran.code == 1
    assert ran.stderr.strip() == "error: no API key has the name or id 'nope'"


def test_a_key_made_by_the_cli_opens_a_server_and_a_revoked_one_no_longer_does(
    invoke: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from headrace.server.api import dependencies
    from headrace.settings import get_settings

    monkeypatch.setattr(dependencies, "KEY_CACHE_SECONDS", 0.2)
    key = create(invoke, "admin", "admin")  # bootstraps the database too: the server was never started
    with running_server(get_settings(server_retention_enabled=False)) as server:
        headers = {"Authorization": f"Bearer {key}"}
        assert httpx.get(f"{server.api_url}/version").status_code == 401
        assert httpx.get(f"{server.api_url}/api-keys", headers=headers).status_code == 200
        assert invoke("server", "api-key", "revoke", "admin").code == 0
        deadline = time.monotonic() + 30
        while (status := httpx.get(f"{server.api_url}/version", headers=headers).status_code) == 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert status == 401


def test_the_installed_command(headrace: Run) -> None:
    ran = headrace("server", "api-key", "create", "--name", "ops", "--scope", "admin")
    assert ran.code == 0, ran.stderr
    assert ran.stdout.startswith("hr_")
    listed = headrace("server", "api-key", "ls", "--json")
    assert [item["name"] for item in json.loads(listed.stdout)] == ["ops"]
