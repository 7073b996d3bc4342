"""Flow-run transitions through the orchestration rules, over the API, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from headrace.schemas.auth import Scope
from headrace.server.db import Database
from headrace.settings import Settings
from headrace.testing.server import RunningServer


def _propose(api: httpx.Client, run_id: str, state_type: str, **fields: Any) -> httpx.Response:
    return api.post(f"/flow-runs/{run_id}/set-state", json={"state": {"type": state_type, **fields}})


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _new_run(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = api.post("/flow-runs", json={"flow_name": "etl", **fields})
    assert response.status_code == 201, response.text
    run: dict[str, Any] = response.json()
    return run


def test_happy_path_with_history_and_run_facts(api: httpx.Client) -> None:
    run = _new_run(api)
    for state_type in ("PENDING", "RUNNING"):
        response = _propose(api, run["id"], state_type)
        assert response.status_code == 201
        result = response.json()
        assert result["status"] == "ACCEPT"
        assert result["state"]["type"] == state_type
        assert result["reason"] is None
        assert result["rule"] is None

    running = api.get(f"/flow-runs/{run['id']}").json()
    assert running["state"]["type"] == "RUNNING"
    assert running["run_count"] == 1
    assert running["start_time"] == running["state"]["timestamp"]
    assert running["end_time"] is None

    done = _propose(api, run["id"], "COMPLETED", message="all good", data={"ref": "s3://bucket/result"}).json()
    assert done["state"]["message"] == "all good"
    assert done["state"]["data"] == {"ref": "s3://bucket/result"}

    final = api.get(f"/flow-runs/{run['id']}").json()
    assert final["state"] == done["state"]
    assert final["end_time"] == done["state"]["timestamp"]
    spent = (_time(final["end_time"]) - _time(running["start_time"])).total_seconds()
    assert final["total_run_time"] == pytest.approx(spent, abs=1e-6)

    history = api.get(f"/flow-runs/{run['id']}/states").json()
    assert [s["type"] for s in history] == ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED"]
    assert history[-1] == done["state"]
    assert [s["timestamp"] for s in history] == sorted(s["timestamp"] for s in history)


def test_state_timestamps_come_from_the_server_clock(api: httpx.Client) -> None:
    run = _new_run(api)
    stale = "2001-01-01T00:00:00+00:00"
    result = _propose(api, run["id"], "PENDING", timestamp=stale).json()
    assert not result["state"]["timestamp"].startswith("2001")


def test_a_rejected_proposal_answers_with_its_reason_and_changes_nothing(api: httpx.Client) -> None:
    run = _new_run(api)
    response = _propose(api, run["id"], "RUNNING")
    assert response.status_code == 200
    result = response.json()
    assert result["status"] == "REJECT"
    assert result["rule"] == "PreventIllegalTransitions"
    assert "Illegal transition Scheduled → Running: claim it first by proposing Pending" in result["reason"]
    assert result["state"] == run["state"]  # the state in force
    assert len(api.get(f"/flow-runs/{run['id']}/states").json()) == 1

    _propose(api, run["id"], "PENDING")
    _propose(api, run["id"], "RUNNING")
    _propose(api, run["id"], "COMPLETED")
    terminal = _propose(api, run["id"], "RUNNING").json()
    assert terminal["status"] == "REJECT"
    assert terminal["rule"] == "KeepTerminalStatesTerminal"
    assert "terminal state" in terminal["reason"]


def test_claiming_before_the_scheduled_time_waits_with_retry_after(api: httpx.Client) -> None:
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    run = _new_run(api, state={"type": "SCHEDULED", "state_details": {"scheduled_time": later.isoformat()}})
    response = _propose(api, run["id"], "PENDING")
    assert response.status_code == 200
    result = response.json()
    assert result["status"] == "WAIT"
    assert result["rule"] == "RespectScheduledTime"
    assert 3500 < result["retry_after"] <= 3600
    assert int(response.headers["Retry-After"]) == pytest.approx(result["retry_after"], abs=1)
    assert api.get(f"/flow-runs/{run['id']}").json()["state"]["type"] == "SCHEDULED"


def test_rescheduling_and_cancelling_a_scheduled_run(api: httpx.Client) -> None:
    run = _new_run(api)
    soon = (datetime.now(timezone.utc) + timedelta(minutes=5)).isoformat()
    moved = _propose(api, run["id"], "SCHEDULED", state_details={"scheduled_time": soon}).json()
    assert moved["status"] == "ACCEPT"
    after = api.get(f"/flow-runs/{run['id']}").json()
    assert _time(after["next_scheduled_start_time"]) == _time(soon) == _time(after["expected_start_time"])

    cancelled = _propose(api, run["id"], "CANCELLING").json()
    assert cancelled["status"] == "ACCEPT"
    assert cancelled["state"]["type"] == "CANCELLED"
    final = api.get(f"/flow-runs/{run['id']}").json()
    assert final["state"]["type"] == "CANCELLED"
    assert final["end_time"] is not None


def test_failed_with_retries_left_becomes_awaiting_retry_after_the_delay(api: httpx.Client) -> None:
    run = _new_run(api, max_retries=1, retry_delay_seconds=60)
    _propose(api, run["id"], "PENDING")
    _propose(api, run["id"], "RUNNING")
    response = _propose(api, run["id"], "FAILED", message="boom")
    assert response.status_code == 201
    result = response.json()
    assert result["status"] == "ACCEPT"
    retry = result["state"]
    assert (retry["type"], retry["name"]) == ("SCHEDULED", "AwaitingRetry")
    assert retry["message"] == "Attempt 1 of 2 failed; retry 1 of 1 in 60s: boom"
    delay = _time(retry["state_details"]["scheduled_time"]) - _time(retry["timestamp"])
    assert delay == timedelta(seconds=60)

    # Not before the delay: a claim now waits, and says for how long.
    waiting = _propose(api, run["id"], "PENDING").json()
    assert waiting["status"] == "WAIT"
    assert 55 < waiting["retry_after"] <= 60

    # After it (a reschedule to now stands in for the minute passing), the retry runs and the second failure is final.
    now = datetime.now(timezone.utc).isoformat()
    assert _propose(api, run["id"], "SCHEDULED", state_details={"scheduled_time": now}).json()["status"] == "ACCEPT"
    assert _propose(api, run["id"], "PENDING").json()["status"] == "ACCEPT"
    assert _propose(api, run["id"], "RUNNING").json()["status"] == "ACCEPT"
    final = _propose(api, run["id"], "FAILED", message="boom again").json()
    assert final["state"]["type"] == "FAILED"
    after = api.get(f"/flow-runs/{run['id']}").json()
    assert after["run_count"] == 2
    assert after["state"]["type"] == "FAILED"
    names = [s["name"] for s in api.get(f"/flow-runs/{run['id']}/states").json()]
    assert names.count("AwaitingRetry") == 1
    assert names[-1] == "Failed"


def test_a_failure_the_retry_condition_vetoes_is_final(api: httpx.Client) -> None:
    run = _new_run(api, max_retries=3)
    _propose(api, run["id"], "PENDING")
    _propose(api, run["id"], "RUNNING")
    result = _propose(api, run["id"], "FAILED", state_details={"retriable": False}).json()
    assert result["state"]["type"] == "FAILED"


def _claim_concurrently(server: RunningServer, run_id: str, claimers: int) -> list[dict[str, Any]]:
    """``claimers`` threads, each with its own connection, propose Pending at the same moment."""
    barrier = threading.Barrier(claimers)
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def claim() -> None:
        try:
            with httpx.Client(base_url=server.api_url, timeout=60) as client:
                barrier.wait()
                response = _propose(client, run_id, "PENDING")
                assert response.status_code in (200, 201), response.text
                results.append(response.json())
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=claim) for _ in range(claimers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    return results


def test_exactly_one_of_many_concurrent_claimers_wins_pending(live_server: RunningServer) -> None:
    claimers = 12
    with httpx.Client(base_url=live_server.api_url, timeout=60) as client:
        for _ in range(4):
            run = _new_run(client)
            results = _claim_concurrently(live_server, run["id"], claimers)
            winners = [r for r in results if r["status"] == "ACCEPT"]
            losers = [r for r in results if r["status"] == "REJECT"]
            assert len(winners) == 1
            assert len(losers) == claimers - 1
            assert all("another claimer won it" in r["reason"] for r in losers)
            history = client.get(f"/flow-runs/{run['id']}/states").json()
            assert [s["type"] for s in history] == ["SCHEDULED", "PENDING"]
            assert history[-1]["id"] == winners[0]["state"]["id"]


def test_a_replayed_proposal_is_answered_with_what_it_did(api: httpx.Client) -> None:
    run = _new_run(api, max_retries=1)
    _propose(api, run["id"], "PENDING")
    _propose(api, run["id"], "RUNNING")
    failed = {"state": {"id": str(uuid.uuid4()), "type": "FAILED", "message": "boom"}}
    first = api.post(f"/flow-runs/{run['id']}/set-state", json=failed)
    again = api.post(f"/flow-runs/{run['id']}/set-state", json=failed)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["status"] == "ACCEPT"
    assert again.json()["state"] == first.json()["state"]
    assert "already applied" in again.json()["reason"]
    assert len(api.get(f"/flow-runs/{run['id']}/states").json()) == 4

    other = _new_run(api)
    stolen = api.post(f"/flow-runs/{other['id']}/set-state", json=failed)
    assert stolen.status_code == 409


def _create_limit(api: httpx.Client, name: str, limit: int) -> None:
    response = api.post("/concurrency-limits", json={"name": name, "limit": limit})
    assert response.status_code == 201, response.text


def _slots_in_use(api: httpx.Client, name: str) -> int:
    count: int = api.get(f"/concurrency-limits/name/{name}").json()["slots_in_use"]
    return count


def test_concurrency_limit_is_honoured(api: httpx.Client) -> None:
    _create_limit(api, "etl-db", 1)
    first = _new_run(api, concurrency_limits=["etl-db"])
    second = _new_run(api, concurrency_limits=["etl-db"])
    free = _new_run(api)

    assert _propose(api, first["id"], "PENDING").json()["status"] == "ACCEPT"
    assert _slots_in_use(api, "etl-db") == 1

    blocked = _propose(api, second["id"], "PENDING")
    assert blocked.status_code == 201  # the waiting state is written
    result = blocked.json()
    assert result["status"] == "REJECT"
    assert result["rule"] == "HonourConcurrencyLimits"
    assert result["state"]["name"] == "AwaitingConcurrencySlot"
    assert result["retry_after"] == 30
    assert blocked.headers["Retry-After"] == "30"
    assert _propose(api, free["id"], "PENDING").json()["status"] == "ACCEPT"  # no limit, no wait

    assert _propose(api, first["id"], "RUNNING").json()["status"] == "ACCEPT"
    assert _slots_in_use(api, "etl-db") == 1
    # Still full: the second run cannot be claimed, let alone run.
    now = datetime.now(timezone.utc).isoformat()
    _propose(api, second["id"], "SCHEDULED", state_details={"scheduled_time": now})
    assert _propose(api, second["id"], "PENDING").json()["status"] == "REJECT"
    assert api.get(f"/flow-runs/{second['id']}").json()["state"]["type"] == "SCHEDULED"

    assert _propose(api, first["id"], "COMPLETED").json()["status"] == "ACCEPT"
    assert _slots_in_use(api, "etl-db") == 0
    now = datetime.now(timezone.utc).isoformat()
    _propose(api, second["id"], "SCHEDULED", state_details={"scheduled_time": now})
    assert _propose(api, second["id"], "PENDING").json()["status"] == "ACCEPT"
    assert _propose(api, second["id"], "RUNNING").json()["status"] == "ACCEPT"
    assert _slots_in_use(api, "etl-db") == 1


def test_a_run_created_running_takes_its_slot_and_deleting_it_gives_it_back(api: httpx.Client) -> None:
    _create_limit(api, "gpu", 1)
    running = _new_run(api, concurrency_limits=["gpu"], state={"type": "RUNNING"})
    assert running["state"]["type"] == "RUNNING"
    assert _slots_in_use(api, "gpu") == 1
    waiting = _new_run(api, concurrency_limits=["gpu"], state={"type": "RUNNING"})
    assert waiting["state"]["name"] == "AwaitingConcurrencySlot"

    assert api.delete(f"/flow-runs/{running['id']}").status_code == 204
    assert _slots_in_use(api, "gpu") == 0


def test_force_writes_a_state_the_rules_would_refuse(api: httpx.Client) -> None:
    run = _new_run(api)
    refused = _propose(api, run["id"], "RUNNING").json()
    assert refused["status"] == "REJECT"
    forced = api.post(f"/flow-runs/{run['id']}/set-state", json={"state": {"type": "RUNNING"}, "force": True})
    assert forced.status_code == 201
    assert forced.json()["status"] == "ACCEPT"
    assert "Forced" in forced.json()["reason"]
    after = api.get(f"/flow-runs/{run['id']}").json()
    assert after["state"]["type"] == "RUNNING"
    assert after["run_count"] == 1


def test_force_needs_an_admin_key(start_server: Any, server_settings: Settings) -> None:
    from headrace.server.operations.api_keys import create_api_key

    async def keys() -> tuple[str, str]:
        async with Database.from_settings(server_settings) as database:
            writer = await create_api_key(database, "writer", Scope.WRITE)
            admin = await create_api_key(database, "admin", Scope.ADMIN)
            return writer.key, admin.key

    writer, admin = asyncio.run(keys())
    server: RunningServer = start_server()
    body = {"state": {"type": "RUNNING"}, "force": True}
    with httpx.Client(base_url=server.api_url, headers={"Authorization": f"Bearer {writer}"}) as client:
        run = _new_run(client)
        refused = client.post(f"/flow-runs/{run['id']}/set-state", json=body)
        assert refused.status_code == 403
        assert "admin" in refused.json()["detail"]
        assert _propose(client, run["id"], "PENDING").json()["status"] == "ACCEPT"  # a write key may propose
    with httpx.Client(base_url=server.api_url, headers={"Authorization": f"Bearer {admin}"}) as client:
        assert client.post(f"/flow-runs/{run['id']}/set-state", json=body).status_code == 201
