"""Log ingest (idempotent, bounded, counted after commit) and log filters, against a live server."""

from __future__ import annotations

import socket
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import httpx

from headrace.server.api.logs import MAX_INGEST_BODY_BYTES
from headrace.server.operations.logs import MAX_LOGS_PER_REQUEST
from headrace.testing.server import RunningServer

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


def _log(**fields: Any) -> dict[str, Any]:
    fields.setdefault("id", str(uuid.uuid4()))
    fields.setdefault("level", 20)
    fields.setdefault("message", "hello")
    fields.setdefault("timestamp", T0.isoformat())
    return fields


def _all(api: httpx.Client, **query: Any) -> list[dict[str, Any]]:
    response = api.post("/logs/filter", json={"limit": 200, **query})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_ingest_stores_a_batch_and_answers_with_counts(api: httpx.Client) -> None:
    run = str(uuid.uuid4())
    batch = [
        _log(flow_run_id=run, message=f"line {i}", timestamp=(T0 + timedelta(seconds=i)).isoformat()) for i in range(5)
    ]
    response = api.post("/logs", json=batch)
    assert response.status_code == 201
    assert response.json() == {"received": 5, "inserted": 5, "duplicates": 0, "skipped": 0}
    stored = _all(api, flow_run_ids=[run])
    assert [log["message"] for log in stored] == [f"line {i}" for i in range(5)]
    assert {log["id"] for log in stored} == {log["id"] for log in batch}
    assert stored[0]["timestamp"] == "2030-01-01T00:00:00Z"


def test_ingesting_the_same_batch_twice_stores_each_line_once(api: httpx.Client) -> None:
    batch = [_log(message=f"line {i}") for i in range(20)]
    assert api.post("/logs", json=batch).json()["inserted"] == 20
    again = api.post("/logs", json=batch).json()
    assert again == {"received": 20, "inserted": 0, "duplicates": 20, "skipped": 0}
    partly_new = [*batch[:5], _log(message="new")]
    assert api.post("/logs", json=partly_new).json() == {"received": 6, "inserted": 1, "duplicates": 5, "skipped": 0}
    assert api.post("/logs/filter", json={}).json()["total"] == 21


def test_a_line_repeated_within_one_batch_is_a_duplicate(api: httpx.Client) -> None:
    line = _log(message="once")
    body = api.post("/logs", json=[line, line, _log(message="other")]).json()
    assert body == {"received": 3, "inserted": 2, "duplicates": 1, "skipped": 0}
    assert sorted(log["message"] for log in _all(api)) == ["once", "other"]


def test_a_replay_does_not_overwrite_the_stored_line(api: httpx.Client) -> None:
    line = _log(message="original")
    api.post("/logs", json=[line])
    api.post("/logs", json=[{**line, "message": "changed"}])
    assert [log["message"] for log in _all(api)] == ["original"]


def test_a_large_batch_is_stored_in_one_request(api: httpx.Client) -> None:
    batch = [
        _log(message=f"m{i}", timestamp=(T0 + timedelta(milliseconds=i)).isoformat())
        for i in range(MAX_LOGS_PER_REQUEST)
    ]
    assert api.post("/logs", json=batch).json()["inserted"] == MAX_LOGS_PER_REQUEST
    page = api.post("/logs/filter", json={"limit": 1, "sort": "TIMESTAMP_DESC"}).json()
    assert page["total"] == MAX_LOGS_PER_REQUEST
    assert page["items"][0]["message"] == f"m{MAX_LOGS_PER_REQUEST - 1}"


def test_an_empty_batch_is_fine(api: httpx.Client) -> None:
    assert api.post("/logs", json=[]).json() == {"received": 0, "inserted": 0, "duplicates": 0, "skipped": 0}


def test_logs_for_runs_the_server_does_not_know_are_stored(api: httpx.Client) -> None:
    run, task = str(uuid.uuid4()), str(uuid.uuid4())
    assert api.post("/logs", json=[_log(flow_run_id=run, task_run_id=task)]).json()["inserted"] == 1
    assert len(_all(api, task_run_ids=[task])) == 1


def test_too_many_lines_are_refused_as_a_problem_and_nothing_is_stored(api: httpx.Client) -> None:
    batch = [{"level": 10, "message": "x"}] * (MAX_LOGS_PER_REQUEST + 1)
    response = api.post("/logs", json=batch)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert f"at most {MAX_LOGS_PER_REQUEST}" in response.json()["detail"]
    assert api.post("/logs/filter", json={}).json()["total"] == 0


def test_an_invalid_line_refuses_the_whole_batch(api: httpx.Client) -> None:
    response = api.post("/logs", json=[_log(), _log(level=500)])
    assert response.status_code == 422
    assert "body.1.level" in response.json()["detail"]
    assert api.post("/logs/filter", json={}).json()["total"] == 0


def test_a_body_over_the_bound_is_refused_before_it_is_read(live_server: RunningServer) -> None:
    url = urlsplit(live_server.api_url)
    request = (
        f"POST {url.path}/logs HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {MAX_INGEST_BODY_BYTES + 1}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((url.hostname, url.port), timeout=30) as connection:
        connection.sendall(request.encode())  # the body is never sent: the answer must not wait for it
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert b"application/problem+json" in head
    assert b"content-too-large" in body


def test_a_chunked_body_over_the_bound_is_refused(api: httpx.Client) -> None:
    def chunks() -> Any:
        yield b"["
        for _ in range(MAX_INGEST_BODY_BYTES // (1024 * 1024) + 1):
            yield b" " * (1024 * 1024)
        yield b"]"

    response = api.post("/logs", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert "bytes at most" in response.json()["detail"]


def test_filter_by_run_task_level_and_time(api: httpx.Client) -> None:
    run_a, run_b, task = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    batch = [
        _log(flow_run_id=run_a, level=10, message="a-debug", timestamp=T0.isoformat()),
        _log(flow_run_id=run_a, level=40, message="a-error", timestamp=(T0 + timedelta(minutes=1)).isoformat()),
        _log(
            flow_run_id=run_a,
            task_run_id=task,
            level=20,
            message="a-task",
            timestamp=(T0 + timedelta(minutes=2)).isoformat(),
        ),
        _log(flow_run_id=run_b, level=30, message="b-warning", timestamp=(T0 + timedelta(minutes=3)).isoformat()),
    ]
    api.post("/logs", json=batch)

    def messages(**query: Any) -> list[str]:
        return [log["message"] for log in _all(api, **query)]

    assert messages(flow_run_ids=[run_a]) == ["a-debug", "a-error", "a-task"]
    assert messages(flow_run_ids=[run_a, run_b]) == ["a-debug", "a-error", "a-task", "b-warning"]
    assert messages(task_run_ids=[task]) == ["a-task"]
    assert messages(level_ge=30) == ["a-error", "b-warning"]
    assert messages(flow_run_ids=[run_a], level_ge=20) == ["a-error", "a-task"]
    after, before = (T0 + timedelta(minutes=1)).isoformat(), (T0 + timedelta(minutes=2)).isoformat()
    assert messages(timestamp_after=after) == ["a-error", "a-task", "b-warning"]
    assert messages(timestamp_before=before) == ["a-debug", "a-error", "a-task"]
    assert messages(timestamp_after=after, timestamp_before=before) == ["a-error", "a-task"]
    assert messages(sort="TIMESTAMP_DESC") == ["b-warning", "a-task", "a-error", "a-debug"]
    assert messages(flow_run_ids=[str(uuid.uuid4())]) == []


def test_time_filters_compare_instants_across_time_zones(api: httpx.Client) -> None:
    api.post("/logs", json=[_log(message="noon-utc", timestamp="2030-01-01T12:00:00+00:00")])
    assert len(_all(api, timestamp_after="2030-01-01T13:30:00+02:00")) == 1  # 11:30 UTC
    assert _all(api, timestamp_after="2030-01-01T14:30:00+02:00") == []  # 12:30 UTC


def test_pages_cover_every_line_once_in_order(api: httpx.Client) -> None:
    same_time = T0.isoformat()  # equal timestamps: the order must still be stable across pages
    api.post("/logs", json=[_log(message=f"m{i}", timestamp=same_time) for i in range(25)])
    seen: list[str] = []
    for offset in range(0, 30, 10):
        page = api.post("/logs/filter", json={"limit": 10, "offset": offset}).json()
        assert page["total"] == 25
        assert page["limit"] == 10
        assert page["offset"] == offset
        seen += [log["id"] for log in page["items"]]
    assert len(seen) == 25
    assert len(set(seen)) == 25


def test_filter_rejects_unknown_fields_and_bad_pages(api: httpx.Client) -> None:
    response = api.post("/logs/filter", json={"flow_run_id": str(uuid.uuid4())})
    assert response.status_code == 422
    assert "flow_run_id" in response.json()["detail"]
    assert api.post("/logs/filter", json={"limit": 0}).status_code == 422
    assert api.post("/logs/filter", json={"limit": 201}).status_code == 422
