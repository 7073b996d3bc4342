"""Fifty concurrent writers against one live server: no error, no 503, and every write is there afterwards.

Each writer is a thread with its own HTTP connection that, round after round, creates a flow run, claims
and starts it, ships its task-run records in two ingest batches (one of them sent twice, as a client
whose answer was lost would), and completes it. On SQLite this is the single write path under load:
"database is locked" must never reach a client. The test runs on PostgreSQL too.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

from headrace.testing.server import RunningServer

WRITERS = 50
ROUNDS = 3
TASK_RUNS_PER_RUN = 8


def _records(flow_run_id: str, task_run_ids: list[str]) -> list[dict[str, Any]]:
    start = datetime.now(timezone.utc)
    return [
        {
            "task_run_id": task_run_id,
            "flow_run_id": flow_run_id,
            "task_key": "etl.step",
            "name": f"step-{index}",
            "state": {
                "id": str(uuid.uuid4()),
                "type": state_type,
                "timestamp": (start + timedelta(milliseconds=offset)).isoformat(),
            },
        }
        for index, task_run_id in enumerate(task_run_ids)
        for offset, state_type in enumerate(("PENDING", "RUNNING", "COMPLETED"))
    ]


def test_fifty_concurrent_writers(live_server: RunningServer) -> None:
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    written: dict[str, list[str]] = {}  # flow run id -> its task run ids
    lock = threading.Lock()
    barrier = threading.Barrier(WRITERS)

    def expect(response: httpx.Response, *allowed: int) -> dict[str, Any]:
        with lock:
            statuses[response.status_code] += 1
        if response.status_code not in allowed:
            raise AssertionError(
                f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text}"
            )
        body: dict[str, Any] = response.json()
        return body

    def writer(index: int) -> None:
        try:
            with httpx.Client(base_url=live_server.api_url, timeout=120) as client:
                barrier.wait()
                for _ in range(ROUNDS):
                    run_id = str(uuid.uuid4())
                    created = expect(
                        client.post("/flow-runs", json={"id": run_id, "flow_name": f"flow-{index % 5}"}), 201
                    )
                    assert created["state"]["type"] == "SCHEDULED"
                    for state_type in ("PENDING", "RUNNING"):
                        result = expect(
                            client.post(f"/flow-runs/{run_id}/set-state", json={"state": {"type": state_type}}), 201
                        )
                        assert result["status"] == "ACCEPT", result
                    task_run_ids = [str(uuid.uuid4()) for _ in range(TASK_RUNS_PER_RUN)]
                    records = _records(run_id, task_run_ids)
                    half = len(records) // 2
                    first = expect(client.post("/task-runs/ingest", json=records[:half]), 201)
                    assert first["inserted"] == half
                    replay = expect(client.post("/task-runs/ingest", json=records[:half]), 201)
                    assert replay["duplicates"] == half
                    rest = expect(client.post("/task-runs/ingest", json=records[half:]), 201)
                    assert rest["inserted"] == len(records) - half
                    done = expect(
                        client.post(f"/flow-runs/{run_id}/set-state", json={"state": {"type": "COMPLETED"}}), 201
                    )
                    assert done["status"] == "ACCEPT", done
                    with lock:
                        written[run_id] = task_run_ids
        except BaseException as exc:  # reported by the assertions below
            with lock:
                failures.append(f"writer {index}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=writer, args=(index,), name=f"writer-{index}") for index in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert set(statuses) <= {200, 201}, statuses
    assert statuses[503] == 0
    assert len(written) == WRITERS * ROUNDS

    with httpx.Client(base_url=live_server.api_url, timeout=120) as client:
        flow_run_ids = list(written)
        seen: dict[str, dict[str, Any]] = {}
        for offset in range(0, len(flow_run_ids), 200):
            page = client.post("/flow-runs/filter", json={"ids": flow_run_ids, "limit": 200, "offset": offset}).json()
            seen.update((run["id"], run) for run in page["items"])
        assert set(seen) == set(written)
        assert all(run["state"]["type"] == "COMPLETED" and run["run_count"] == 1 for run in seen.values())
        assert client.post("/flow-runs/filter", json={}).json()["total"] == WRITERS * ROUNDS

        task_run_ids = {t for ids in written.values() for t in ids}
        found: dict[str, dict[str, Any]] = {}
        for offset in range(0, len(task_run_ids), 200):
            page = client.post("/task-runs/filter", json={"limit": 200, "offset": offset}).json()
            found.update((run["id"], run) for run in page["items"])
        assert set(found) == task_run_ids
        assert all(run["state"]["type"] == "COMPLETED" and run["run_count"] == 1 for run in found.values())
        for flow_run_id, ids in list(written.items())[:: WRITERS // 5]:
            page = client.post("/task-runs/filter", json={"flow_run_ids": [flow_run_id]}).json()
            assert {run["id"] for run in page["items"]} == set(ids)
            history = client.get(f"/flow-runs/{flow_run_id}/states").json()
            assert [state["type"] for state in history] == ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED"]
