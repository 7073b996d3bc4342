"""Concurrency limits and leased slots, against live servers (one, and two sharing a database)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

import httpx

from headrace.testing.server import RunningServer


def _limit(api: httpx.Client, name: str, limit: int, **fields: Any) -> dict[str, Any]:
    response = api.post("/concurrency-limits", json={"name": name, "limit": limit, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _acquire(api: httpx.Client, *names: str, holder: str = "worker-1", **fields: Any) -> httpx.Response:
    return api.post("/concurrency-limits/leases", json={"names": list(names), "holder": holder, **fields})


def _in_use(api: httpx.Client, name: str) -> int:
    count: int = api.get(f"/concurrency-limits/name/{name}").json()["slots_in_use"]
    return count


def _wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll until ``condition()`` holds; fail if it never does (a functional wait, not a timing check)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never came true"
        time.sleep(0.05)


def _wait_past(moment: str) -> None:
    instant = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    _wait_until(lambda: datetime.now(timezone.utc) > instant)


# -------------------------------------------------------------------------------------------- limits


def test_create_read_update_delete_a_limit(api: httpx.Client) -> None:
    created = _limit(api, "db:writes", 3)
    assert created["name"] == "db:writes"
    assert created["limit"] == 3
    assert created["active"] is True
    assert created["slots_in_use"] == 0
    assert api.get("/concurrency-limits/name/db:writes").json() == created

    updated = api.patch("/concurrency-limits/name/db:writes", json={"limit": 5}).json()
    assert updated["limit"] == 5
    assert updated["active"] is True
    off = api.patch("/concurrency-limits/name/db:writes", json={"active": False}).json()
    assert off["limit"] == 5
    assert off["active"] is False

    assert api.delete("/concurrency-limits/name/db:writes").status_code == 204
    assert api.get("/concurrency-limits/name/db:writes").status_code == 404


def test_limit_problems(api: httpx.Client) -> None:
    _limit(api, "gpu", 1)
    taken = api.post("/concurrency-limits", json={"name": "gpu", "limit": 2})
    assert taken.status_code == 409
    assert taken.json()["type"].endswith("/concurrency-limit-exists")
    for response in (
        api.get("/concurrency-limits/name/nope"),
        api.patch("/concurrency-limits/name/nope", json={"limit": 1}),
        api.delete("/concurrency-limits/name/nope"),
    ):
        assert response.status_code == 404
        assert response.json()["type"].endswith("/concurrency-limit-not-found")
    assert api.post("/concurrency-limits", json={"name": "neg", "limit": -1}).status_code == 422
    assert api.post("/concurrency-limits", json={"name": "has space", "limit": 1}).status_code == 422
    assert api.patch("/concurrency-limits/name/gpu", json={"name": "x"}).status_code == 422


def test_filter_limits(api: httpx.Client) -> None:
    for name, limit, active in (("c", 1, True), ("a", 2, False), ("b", 3, True)):
        _limit(api, name, limit, active=active)
    assert _acquire(api, "b").status_code == 201

    def listed(**query: Any) -> list[tuple[str, int]]:
        response = api.post("/concurrency-limits/filter", json=query)
        assert response.status_code == 200, response.text
        return [(item["name"], item["slots_in_use"]) for item in response.json()["items"]]

    assert listed() == [("a", 0), ("b", 1), ("c", 0)]
    assert listed(active=True) == [("b", 1), ("c", 0)]
    assert listed(names=["c", "a", "z"]) == [("a", 0), ("c", 0)]
    page = api.post("/concurrency-limits/filter", json={"limit": 1, "offset": 1}).json()
    assert page["total"] == 3
    assert [item["name"] for item in page["items"]] == ["b"]


# -------------------------------------------------------------------------------------------- leases


def test_acquire_counts_and_release_frees(api: httpx.Client) -> None:
    _limit(api, "api", 2)
    first = _acquire(api, "api", holder="run-1")
    assert first.status_code == 201
    lease = first.json()
    assert lease["names"] == ["api"]
    assert lease["holder"] == "run-1"
    assert _in_use(api, "api") == 1
    assert api.get(f"/concurrency-limits/leases/{lease['id']}").json() == lease

    assert _acquire(api, "api", holder="run-2").status_code == 201
    assert _in_use(api, "api") == 2
    refused = _acquire(api, "api", holder="run-3")
    assert refused.status_code == 423
    assert _in_use(api, "api") == 2

    assert api.delete(f"/concurrency-limits/leases/{lease['id']}").status_code == 204
    assert _in_use(api, "api") == 1
    assert _acquire(api, "api", holder="run-3").status_code == 201
    assert api.delete(f"/concurrency-limits/leases/{lease['id']}").status_code == 404
    assert api.get(f"/concurrency-limits/leases/{lease['id']}").status_code == 404


def test_a_refusal_is_a_problem_naming_the_full_limit_with_retry_after(api: httpx.Client) -> None:
    _limit(api, "small", 2)
    held = [_acquire(api, "small", lease_seconds=10).json() for _ in range(2)]
    response = _acquire(api, "small")
    assert response.status_code == 423
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"].endswith("/no-free-slot")
    assert "'small' (2 of 2 in use)" in body["detail"]
    assert body["limits"] == [{"name": "small", "limit": 2, "slots_in_use": 2}]
    assert 0 < body["retry_after"] <= 10
    assert 1 <= int(response.headers["retry-after"]) <= 10
    assert len(held) == 2


def test_acquisition_is_all_or_none(api: httpx.Client) -> None:
    _limit(api, "free", 5)
    _limit(api, "busy", 1)
    assert _acquire(api, "busy", holder="other").status_code == 201
    refused = _acquire(api, "free", "busy")
    assert refused.status_code == 423
    assert [item["name"] for item in refused.json()["limits"]] == ["busy"]
    assert _in_use(api, "free") == 0  # nothing was taken in the limit that had room

    _limit(api, "also-free", 1)
    both = _acquire(api, "free", "also-free", "free")  # a name given twice takes one slot
    assert both.status_code == 201
    assert both.json()["names"] == ["also-free", "free"]
    assert (_in_use(api, "free"), _in_use(api, "also-free")) == (1, 1)
    assert api.delete(f"/concurrency-limits/leases/{both.json()['id']}").status_code == 204
    assert (_in_use(api, "free"), _in_use(api, "also-free")) == (0, 0)


def test_unknown_limits_are_a_404_problem_and_take_nothing(api: httpx.Client) -> None:
    _limit(api, "known", 1)
    response = _acquire(api, "known", "ghost", "phantom")
    assert response.status_code == 404
    assert "'ghost', 'phantom'" in response.json()["detail"]
    assert _in_use(api, "known") == 0


def test_an_expired_lease_frees_its_slot(api: httpx.Client) -> None:
    _limit(api, "short", 1)
    lease = _acquire(api, "short", lease_seconds=0.2).json()
    _wait_until(lambda: _acquire(api, "short", holder="next", lease_seconds=60).status_code == 201)
    assert datetime.now(timezone.utc) >= datetime.fromisoformat(lease["expires_at"].replace("Z", "+00:00"))
    assert _in_use(api, "short") == 1  # only the new lease counts
    assert api.get(f"/concurrency-limits/leases/{lease['id']}").status_code == 404
    renew = api.post(f"/concurrency-limits/leases/{lease['id']}/renew", json={"lease_seconds": 60})
    assert renew.status_code == 404
    assert renew.json()["type"].endswith("/lease-not-found")


def test_expired_slots_stop_counting_without_any_acquisition(api: httpx.Client) -> None:
    _limit(api, "ttl", 3)
    lease = _acquire(api, "ttl", lease_seconds=0.2).json()
    assert _in_use(api, "ttl") in (0, 1)
    _wait_past(lease["expires_at"])
    assert _in_use(api, "ttl") == 0
    assert api.post("/concurrency-limits/filter", json={}).json()["items"][0]["slots_in_use"] == 0


def test_renewing_keeps_the_slot_past_the_first_expiry(api: httpx.Client) -> None:
    _limit(api, "renewed", 1)
    lease = _acquire(api, "renewed", lease_seconds=1).json()
    renewed = api.post(f"/concurrency-limits/leases/{lease['id']}/renew", json={"lease_seconds": 3600})
    assert renewed.status_code == 200
    assert renewed.json()["id"] == lease["id"]
    assert renewed.json()["names"] == ["renewed"]
    assert renewed.json()["expires_at"] > lease["expires_at"]
    _wait_past(lease["expires_at"])
    assert _in_use(api, "renewed") == 1
    assert _acquire(api, "renewed", holder="other").status_code == 423
    default = api.post(f"/concurrency-limits/leases/{lease['id']}/renew")  # default lease_seconds
    assert default.status_code == 200
    assert api.post(f"/concurrency-limits/leases/{uuid.uuid4()}/renew", json={}).status_code == 404


def test_a_retried_acquisition_with_its_lease_id_takes_no_more_slots(api: httpx.Client) -> None:
    _limit(api, "retry", 2)
    lease_id = str(uuid.uuid4())
    first = _acquire(api, "retry", lease_id=lease_id)
    again = _acquire(api, "retry", lease_id=lease_id)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert first.json()["id"] == lease_id
    assert _in_use(api, "retry") == 1
    conflict = _acquire(api, "retry", holder="someone-else", lease_id=lease_id)
    assert conflict.status_code == 409
    assert conflict.json()["type"].endswith("/lease-conflict")


def test_an_inactive_limit_counts_but_never_refuses(api: httpx.Client) -> None:
    _limit(api, "off", 1, active=False)
    assert _acquire(api, "off").status_code == 201
    assert _acquire(api, "off").status_code == 201
    assert _in_use(api, "off") == 2
    api.patch("/concurrency-limits/name/off", json={"active": True})
    assert _acquire(api, "off").status_code == 423


def test_a_limit_of_zero_lets_nothing_through(api: httpx.Client) -> None:
    _limit(api, "closed", 0)
    response = _acquire(api, "closed")
    assert response.status_code == 423
    assert "(0 of 0 in use)" in response.json()["detail"]


def test_lowering_a_limit_keeps_held_slots_and_refuses_new_ones(api: httpx.Client) -> None:
    _limit(api, "shrink", 3)
    leases = [_acquire(api, "shrink").json() for _ in range(3)]
    assert api.patch("/concurrency-limits/name/shrink", json={"limit": 1}).json()["slots_in_use"] == 3
    assert _acquire(api, "shrink").status_code == 423
    for lease in leases[:2]:
        api.delete(f"/concurrency-limits/leases/{lease['id']}")
    assert _acquire(api, "shrink").status_code == 423  # one held, limit one
    api.delete(f"/concurrency-limits/leases/{leases[2]['id']}")
    assert _acquire(api, "shrink").status_code == 201


def test_deleting_a_limit_removes_its_slots(api: httpx.Client) -> None:
    _limit(api, "gone", 1)
    lease = _acquire(api, "gone").json()
    api.delete("/concurrency-limits/name/gone")
    assert api.get(f"/concurrency-limits/leases/{lease['id']}").status_code == 404
    _limit(api, "gone", 1)
    assert _in_use(api, "gone") == 0
    assert _acquire(api, "gone").status_code == 201


def test_lease_request_validation(api: httpx.Client) -> None:
    _limit(api, "v", 1)
    assert _acquire(api).status_code == 422  # no names
    assert _acquire(api, "v", lease_seconds=0).status_code == 422
    assert _acquire(api, "v", holder="").status_code == 422
    assert api.post("/concurrency-limits/leases", json={"names": ["v"]}).status_code == 422  # no holder


# ----------------------------------------------------------------------------------- under contention


def _contend(clients: list[httpx.Client], name: str, attempts: int) -> list[int]:
    def attempt(i: int) -> int:
        return _acquire(clients[i % len(clients)], name, holder=f"h{i}", lease_seconds=600).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(attempt, range(attempts)))


def test_concurrent_acquisitions_never_exceed_the_limit(api: httpx.Client) -> None:
    _limit(api, "contended", 3)
    statuses = _contend([api], "contended", 40)
    assert statuses.count(201) == 3
    assert statuses.count(423) == 37
    assert _in_use(api, "contended") == 3


def test_two_servers_on_one_database_never_over_grant(
    api: httpx.Client, start_server: Callable[..., RunningServer]
) -> None:
    other = start_server()
    _limit(api, "shared", 2)
    with httpx.Client(base_url=other.api_url, timeout=30) as second:
        statuses = _contend([api, second], "shared", 40)
        assert statuses.count(201) == 2
        assert statuses.count(423) == 38
        assert _in_use(second, "shared") == 2
