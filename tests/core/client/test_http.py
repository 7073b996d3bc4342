"""HttpClient: every protocol method against a live server; retries, Retry-After, CSRF, headers and
wrong URLs against a scripted HTTP server on loopback."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any, TypeVar

import pytest

from headrace.client import get_client
from headrace.client.base import ApiError, ApiUnreachable, OrchestrationClient
from headrace.client.http import CSRF_CLIENT_HEADER, CSRF_TOKEN_HEADER, HttpClient
from headrace.client.sync import SyncClient, run_sync
from headrace.schemas.logs import LogCreate, LogFilter
from headrace.schemas.runs import (
    FlowRunCreate,
    FlowRunFilter,
    OrchestrationStatus,
    TaskRunFilter,
    TaskRunRecord,
)
from headrace.schemas.states import State, StateType

T = TypeVar("T")

INGESTED = {"received": 1, "inserted": 1, "duplicates": 0}


def run(coro: Coroutine[Any, Any, T]) -> T:
    return run_sync(coro, timeout=120)


class SleepLog:
    """Stands in for asyncio.sleep: remembers each delay the client asked for, waits a token time."""

    def __init__(self, then: Callable[[float], None] | None = None) -> None:
        self.delays: list[float] = []
        self._then = then

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if self._then is not None:
            self._then(delay)
        await asyncio.sleep(0)


def http_client(settings: Any, **kwargs: Any) -> HttpClient:
    kwargs.setdefault("retry_backoff_base", 0.01)
    kwargs.setdefault("retry_backoff_cap", 0.05)
    return HttpClient(settings, **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------------------- a live server


def test_get_client_picks_http_when_an_api_url_is_set(make_settings: Any) -> None:
    client = get_client(make_settings(api_url="http://127.0.0.1:1/api"))
    assert isinstance(client, HttpClient)
    assert isinstance(client, OrchestrationClient)


def test_every_method_against_a_live_server(live_server: Any, make_settings: Any) -> None:
    settings = make_settings(api_url=live_server.api_url)
    with SyncClient(HttpClient(settings)) as client:
        created = client.create_flow_run(FlowRunCreate(flow_name="etl", parameters={"x": 1}, tags=["nightly"]))
        assert client.create_flow_run(FlowRunCreate(id=created.id, flow_name="etl")).id == created.id  # idempotent
        assert client.read_flow_run(created.id).parameters == {"x": 1}
        assert client.read_flow(created.flow_id).name == "etl"
        page = client.read_flow_runs(FlowRunFilter(flow_names=["etl"]))
        assert [run.id for run in page.items] == [created.id]

        for state_type in (StateType.PENDING, StateType.RUNNING):
            result = client.set_flow_run_state(created.id, State(type=state_type))
            assert result.status is OrchestrationStatus.ACCEPT, result.reason
        history = [s.type for s in client.read_flow_run_states(created.id)]
        assert history == [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING]

        task_run_id = uuid.uuid4()
        records = [
            TaskRunRecord(
                task_run_id=task_run_id, flow_run_id=created.id, task_key="t", name="t-0", state=State(type=t)
            )
            for t in (StateType.PENDING, StateType.RUNNING, StateType.COMPLETED)
        ]
        assert client.ingest_task_run_records(records).inserted == 3
        assert client.ingest_task_run_records(records).duplicates == 3  # a replay changes nothing
        assert client.read_task_run(task_run_id).state is not None
        assert client.read_task_run(task_run_id).state.type is StateType.COMPLETED  # type: ignore[union-attr]
        assert client.read_task_runs(TaskRunFilter(flow_run_ids=[created.id])).total == 1
        assert [s.id for s in client.read_task_run_states(task_run_id)] == [r.state.id for r in records]

        logs = [LogCreate(flow_run_id=created.id, level=20, message=f"line {i}") for i in range(3)]
        assert client.ingest_logs(logs).inserted == 3
        raw = [LogCreate(flow_run_id=created.id, level=30, message="raw").model_dump_json().encode()]
        assert client.ingest_serialized("logs", raw).inserted == 1
        found = client.read_logs(LogFilter(flow_run_ids=[created.id]))
        assert sorted(log.message for log in found.items) == ["line 0", "line 1", "line 2", "raw"]

        with pytest.raises(ApiError) as missing:
            client.read_flow_run(uuid.uuid4())
        assert missing.value.status == 404
        assert "not found" in missing.value.detail
        assert missing.value.problem["status"] == 404


def test_an_api_key_is_sent_as_a_bearer_token(make_settings: Any) -> None:
    from headrace.testing.server import running_server

    with running_server(make_settings(server_auth_required=True)) as server:
        anonymous = http_client(make_settings(api_url=server.api_url))
        with pytest.raises(ApiError) as refused:
            run(anonymous.read_flow_runs(FlowRunFilter()))
        assert refused.value.status == 401
        run(anonymous.aclose())


# ------------------------------------------------------------------------------------- retries


def test_retries_408_429_502_503_and_honours_retry_after(fake_api: Any, make_settings: Any) -> None:
    R = fake_api.Reply
    fake_api.script(
        "POST",
        "/api/logs",
        R(503),
        R(429, headers={"Retry-After": "7"}),
        R(408),
        R(502),
        R(201, INGESTED),
    )
    sleep = SleepLog()
    client = http_client(make_settings(api_url=fake_api.api_url, client_retry_jitter_factor=0), sleep=sleep)
    result = run(client.ingest_logs([LogCreate(level=20, message="x")]))
    run(client.aclose())
    assert result.inserted == 1
    assert len(fake_api.seen("POST", "/api/logs")) == 5
    # capped exponential from headrace.retries (base 0.01, cap 0.05), except where Retry-After spoke
    assert sleep.delays == [0.01, 7.0, 0.04, 0.05]


def test_jitter_only_adds_to_the_delay(fake_api: Any, make_settings: Any) -> None:
    R = fake_api.Reply
    fake_api.script("POST", "/api/logs", *[R(503)] * 3, R(201, INGESTED))
    fake_api.script("POST", "/api/task-runs/ingest", R(429, headers={"Retry-After": "2"}), R(201, INGESTED))
    sleep = SleepLog()
    client = http_client(make_settings(api_url=fake_api.api_url, client_retry_jitter_factor=0.5), sleep=sleep)
    run(client.ingest_logs([LogCreate(level=20, message="x")]))
    run(client.ingest_serialized("task_runs", [b"{}"]))
    run(client.aclose())
    for delay, base in zip(sleep.delays, [0.01, 0.02, 0.04, 2.0], strict=True):
        assert base <= delay <= base * 1.5


def test_retry_after_as_an_http_date(fake_api: Any, make_settings: Any) -> None:
    R = fake_api.Reply
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    fake_api.script("POST", "/api/logs", R(503, headers={"Retry-After": when}), R(201, INGESTED))
    sleep = SleepLog()
    client = http_client(make_settings(api_url=fake_api.api_url, client_retry_jitter_factor=0), sleep=sleep)
    run(client.ingest_logs([LogCreate(level=20, message="x")]))
    run(client.aclose())
    assert 25 <= sleep.delays[0] <= 30


def test_retry_after_is_really_waited_for(fake_api: Any, make_settings: Any) -> None:
    R = fake_api.Reply
    fake_api.script("POST", "/api/logs", R(429, headers={"Retry-After": "1"}), R(201, INGESTED))
    client = HttpClient(make_settings(api_url=fake_api.api_url))
    run(client.ingest_logs([LogCreate(level=20, message="x")]))
    run(client.aclose())
    first, second = fake_api.seen("POST", "/api/logs")
    assert second.at - first.at >= 1.0


def test_extra_codes_are_retried_and_others_are_not(fake_api: Any, make_settings: Any) -> None:
    R = fake_api.Reply
    problem = {"status": 500, "detail": "boom"}
    fake_api.script("POST", "/api/logs", R(500, problem), R(201, INGESTED))
    client = http_client(make_settings(api_url=fake_api.api_url, client_retry_extra_codes="500,504"), sleep=SleepLog())
    assert run(client.ingest_logs([LogCreate(level=20, message="x")])).inserted == 1

    fake_api.script("POST", "/api/task-runs/ingest", R(500, problem), R(201, INGESTED))
    plain = http_client(make_settings(api_url=fake_api.api_url), sleep=SleepLog())
    with pytest.raises(ApiError) as error:
        run(plain.ingest_serialized("task_runs", [b"{}"]))
    assert error.value.status == 500
    assert error.value.detail == "boom"
    assert len(fake_api.seen("POST", "/api/task-runs/ingest")) == 1
    run(client.aclose())
    run(plain.aclose())


def test_max_retries_bounds_the_attempts(fake_api: Any, make_settings: Any) -> None:
    R = fake_api.Reply
    fake_api.route("POST", "/api/logs", lambda _: R(503, {"status": 503, "detail": "busy"}))
    sleep = SleepLog()
    client = http_client(make_settings(api_url=fake_api.api_url, client_max_retries=3), sleep=sleep)
    with pytest.raises(ApiError) as error:
        run(client.ingest_logs([LogCreate(level=20, message="x")]))
    run(client.aclose())
    assert error.value.status == 503
    assert len(fake_api.seen("POST", "/api/logs")) == 4
    assert len(sleep.delays) == 3


def test_zero_retries_sends_once(fake_api: Any, make_settings: Any) -> None:
    R = fake_api.Reply
    fake_api.route("POST", "/api/logs", lambda _: R(503, {"status": 503, "detail": "busy"}))
    client = http_client(make_settings(api_url=fake_api.api_url, client_max_retries=0), sleep=SleepLog())
    with pytest.raises(ApiError):
        run(client.ingest_logs([LogCreate(level=20, message="x")]))
    run(client.aclose())
    assert len(fake_api.seen("POST", "/api/logs")) == 1


def test_a_dropped_connection_is_retried(fake_api: Any, make_settings: Any) -> None:
    R = fake_api.Reply
    fake_api.script("POST", "/api/logs", R(close=True), R(201, INGESTED))
    sleep = SleepLog()
    client = http_client(make_settings(api_url=fake_api.api_url), sleep=sleep)
    assert run(client.ingest_logs([LogCreate(level=20, message="x")])).inserted == 1
    run(client.aclose())
    assert len(sleep.delays) == 1


def test_a_server_restarting_is_waited_for(make_settings: Any) -> None:
    """Once the server was reached, a refused connection is a restart: retried until it is back."""
    from headrace.testing.server import running_server

    with running_server(make_settings()) as first:
        port = int(first.url.rsplit(":", 1)[1])
        settings = make_settings(api_url=first.api_url)
        flow_run = SyncClient(HttpClient(settings)).create_flow_run(FlowRunCreate(flow_name="restart"))
    restarted: list[Any] = []

    def restart_server(_: float) -> None:
        if not restarted:  # the first retry: bring the server back on the same port
            restarted.append(_serve_on(make_settings(), port))

    client = http_client(settings, sleep=SleepLog(then=restart_server))
    client._reached = True  # as if this client had talked to the server before it went down
    try:
        assert run(client.read_flow_run(flow_run.id)).id == flow_run.id
    finally:
        run(client.aclose())
        for stack in restarted:
            stack.close()
    assert restarted


def _serve_on(settings: Any, port: int) -> Any:
    import contextlib
    import threading

    import uvicorn

    from headrace.server.app import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    stack = contextlib.ExitStack()

    def stop() -> None:
        server.should_exit = True
        thread.join(30)

    stack.callback(stop)
    return stack


# ------------------------------------------------------------------------------------ wrong URLs


def test_an_unresolvable_host_fails_at_once(make_settings: Any) -> None:
    sleep = SleepLog()
    client = http_client(make_settings(api_url="http://no-such-host.invalid/api"), sleep=sleep)
    with pytest.raises(ApiUnreachable) as error:
        run(client.read_flow_runs(FlowRunFilter()))
    run(client.aclose())
    assert sleep.delays == []
    assert "no-such-host.invalid" in str(error.value)
    assert "does not resolve" in str(error.value)
    assert "HEADRACE_API_URL" in str(error.value)


def test_nothing_listening_fails_at_once(make_settings: Any) -> None:
    port = free_port()
    sleep = SleepLog()
    client = http_client(make_settings(api_url=f"http://127.0.0.1:{port}/api"), sleep=sleep)
    with pytest.raises(ApiUnreachable) as error:
        run(client.read_flow_runs(FlowRunFilter()))
    run(client.aclose())
    assert sleep.delays == []
    assert f"127.0.0.1:{port}" in str(error.value)
    assert "refused" in str(error.value)
    assert "headrace server start" in str(error.value)


def test_a_url_without_api_says_so(live_server: Any, make_settings: Any) -> None:
    client = http_client(make_settings(api_url=live_server.url), sleep=SleepLog())  # the root, not /api
    with pytest.raises(ApiError) as error:
        run(client.read_flow_runs(FlowRunFilter()))
    run(client.aclose())
    assert error.value.status in (404, 405)
    assert "HEADRACE_API_URL" in error.value.detail


def test_a_server_that_is_not_headrace_says_so(fake_api: Any, make_settings: Any) -> None:
    R = fake_api.Reply
    fake_api.route("POST", "/api/flow-runs/filter", lambda _: R(200, b"<html>hello</html>", content_type="text/html"))
    fake_api.route("GET", "/api/flows/x", lambda _: R(404, b"<html>no</html>", content_type="text/html"))
    client = http_client(make_settings(api_url=fake_api.api_url), sleep=SleepLog())
    with pytest.raises(ApiError) as error:
        run(client.request("GET", "flows/x"))
    assert "not a route of a headrace API" in error.value.detail
    fake_api.route("GET", "/api/flows/y", lambda _: R(400, b"<html>bad</html>", content_type="text/html"))
    with pytest.raises(ApiError) as error:
        run(client.request("GET", "flows/y"))
    assert "not as a headrace API would" in error.value.detail
    run(client.aclose())


# ------------------------------------------------------------------------------------- headers


def test_custom_headers_cannot_replace_auth_csrf_or_user_agent(fake_api: Any, make_settings: Any) -> None:
    R = fake_api.Reply
    expires = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    fake_api.script("GET", "/api/csrf-token", R(200, {"token": "real-token", "client": "c", "expiration": expires}))
    fake_api.route("POST", "/api/logs", lambda _: R(201, INGESTED))
    settings = make_settings(
        api_url=fake_api.api_url,
        api_key="secret-key",
        client_custom_headers={
            "X-Team": "data",
            "authorization": "Bearer stolen",
            "User-Agent": "evil/1.0",
            "Headrace-Csrf-Token": "forged",
            "HEADRACE-CSRF-CLIENT": "forged",
        },
    )
    client = http_client(settings)
    run(client.ingest_logs([LogCreate(level=20, message="x")]))
    run(client.aclose())
    (sent,) = fake_api.seen("POST", "/api/logs")
    assert sent.headers["x-team"] == "data"
    assert sent.headers["authorization"] == "Bearer secret-key"
    assert sent.headers["user-agent"].startswith("headrace/")
    assert sent.headers[CSRF_TOKEN_HEADER.lower()] == "real-token"
    assert sent.headers[CSRF_CLIENT_HEADER.lower()] != "forged"
    (token_request,) = fake_api.seen("GET", "/api/csrf-token")
    assert token_request.headers["authorization"] == "Bearer secret-key"


def test_no_authorization_without_a_key(fake_api: Any, make_settings: Any) -> None:
    R = fake_api.Reply
    fake_api.route("POST", "/api/logs", lambda _: R(201, INGESTED))
    client = http_client(make_settings(api_url=fake_api.api_url, client_custom_headers={"X-A": "1"}))
    run(client.ingest_logs([LogCreate(level=20, message="x")]))
    run(client.aclose())
    (sent,) = fake_api.seen("POST", "/api/logs")
    assert "authorization" not in sent.headers
    assert sent.headers["x-a"] == "1"


# ---------------------------------------------------------------------------------------- CSRF


def test_csrf_off_on_the_server_is_asked_once(fake_api: Any, make_settings: Any) -> None:
    R = fake_api.Reply
    fake_api.route("POST", "/api/logs", lambda _: R(201, INGESTED))
    client = http_client(make_settings(api_url=fake_api.api_url))
    for _ in range(3):
        run(client.ingest_logs([LogCreate(level=20, message="x")]))
    run(client.aclose())
    assert len(fake_api.seen("GET", "/api/csrf-token")) == 1
    assert all(CSRF_TOKEN_HEADER.lower() not in r.headers for r in fake_api.seen("POST", "/api/logs"))


def test_csrf_support_disabled_never_asks(fake_api: Any, make_settings: Any) -> None:
    R = fake_api.Reply
    fake_api.route("POST", "/api/logs", lambda _: R(201, INGESTED))
    client = http_client(make_settings(api_url=fake_api.api_url, client_csrf_support_enabled=False))
    run(client.ingest_logs([LogCreate(level=20, message="x")]))
    run(client.aclose())
    assert fake_api.seen("GET", "/api/csrf-token") == []


def test_an_expired_csrf_token_is_replaced(fake_api: Any, make_settings: Any) -> None:
    R = fake_api.Reply
    later = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    fake_api.script(
        "GET",
        "/api/csrf-token",
        R(200, {"token": "first", "client": "c", "expiration": later}),
        R(200, {"token": "second", "client": "c", "expiration": later}),
    )
    refusal = {"type": "https://headrace.dev/problems/csrf", "status": 403, "detail": "missing or invalid CSRF token"}

    def check(seen: Any) -> Any:
        if seen.headers.get(CSRF_TOKEN_HEADER.lower()) == "second":
            return R(201, INGESTED)
        return R(403, refusal, content_type="application/problem+json")

    fake_api.route("POST", "/api/logs", check)
    client = http_client(make_settings(api_url=fake_api.api_url))
    assert run(client.ingest_logs([LogCreate(level=20, message="x")])).inserted == 1
    assert [r.headers[CSRF_TOKEN_HEADER.lower()] for r in fake_api.seen("POST", "/api/logs")] == ["first", "second"]
    # a token about to expire is replaced before it is used
    fake_api.script("GET", "/api/csrf-token", R(200, {"token": "second", "client": "c", "expiration": later}))
    client._csrf_expires = time.time() + 5
    run(client.ingest_logs([LogCreate(level=20, message="y")]))
    assert len(fake_api.seen("GET", "/api/csrf-token")) == 3
    run(client.aclose())


def test_a_forbidden_answer_that_is_not_csrf_is_not_retried(fake_api: Any, make_settings: Any) -> None:
    R = fake_api.Reply
    fake_api.route("POST", "/api/logs", lambda _: R(403, {"status": 403, "detail": "this API key has scope 'read'"}))
    client = http_client(make_settings(api_url=fake_api.api_url))
    with pytest.raises(ApiError) as error:
        run(client.ingest_logs([LogCreate(level=20, message="x")]))
    run(client.aclose())
    assert error.value.status == 403
    assert len(fake_api.seen("POST", "/api/logs")) == 1


def test_csrf_against_a_live_server_with_protection_on(make_settings: Any) -> None:
    from headrace.testing.server import running_server

    with running_server(make_settings(server_csrf_protection_enabled=True, server_csrf_token_expiration=1)) as server:
        client = http_client(make_settings(api_url=server.api_url))
        created = run(client.create_flow_run(FlowRunCreate(flow_name="csrf")))
        first = client._csrf_token
        assert first is not None
        # Pretend the token is good for long, wait until the server no longer takes it, and write again:
        # the server refuses it, the client fetches another and the write goes through.
        client._csrf_expires = time.time() + 3600
        time.sleep(2.1)
        result = run(client.set_flow_run_state(created.id, State(type=StateType.PENDING)))
        assert result.status is OrchestrationStatus.ACCEPT
        assert client._csrf_token not in (None, first)
        run(client.aclose())

        without = http_client(make_settings(api_url=server.api_url, client_csrf_support_enabled=False))
        with pytest.raises(ApiError) as refused:
            run(without.create_flow_run(FlowRunCreate(flow_name="csrf")))
        assert refused.value.status == 403
        run(without.aclose())


# --------------------------------------------------------------------------------------- HTTP/2


def test_http2_setting_reaches_the_transport(live_server: Any, make_settings: Any) -> None:
    client = http_client(make_settings(api_url=live_server.api_url, api_enable_http2=True))
    run(client.read_flow_runs(FlowRunFilter()))  # an HTTP/1.1 server still answers (no h2 upgrade over http)
    pool = client._client()._transport._pool  # type: ignore[attr-defined]
    assert pool._http2 is True
    run(client.aclose())
    plain = http_client(make_settings(api_url=live_server.api_url))
    assert plain._client()._transport._pool._http2 is False  # type: ignore[attr-defined]
    run(plain.aclose())


# ------------------------------------------------------------------------------------------- TLS


@pytest.fixture
def certificates(tmp_path: Any) -> tuple[Any, Any, Any]:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it, made with the openssl CLI."""
    import shutil

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed")
    ca_key, ca, key, csr, cert = (tmp_path / name for name in ("ca.key", "ca.pem", "s.key", "s.csr", "s.pem"))
    extensions = tmp_path / "ext.cnf"
    extensions.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    commands = [
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2",
         "-subj", "/CN=headrace test CA"],
        [openssl, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        [openssl, "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert,
         "-days", "2", "-extfile", extensions],
    ]  # fmt: skip
    import subprocess

    for command in commands:
        subprocess.run([str(part) for part in command], check=True, capture_output=True, timeout=120)
    return ca, cert, key


def test_tls_is_verified_against_the_configured_ca(certificates: Any, fake_api: Any, make_settings: Any) -> None:
    ca, cert, key = certificates
    secure = type(fake_api)(tls=(cert, key))  # the same scripted server, over HTTPS
    try:
        R = secure.Reply
        secure.route("GET", "/api/csrf-token", lambda _: R(422, {"status": 422, "detail": "CSRF protection is off"}))
        secure.route("POST", "/api/logs", lambda _: R(201, INGESTED))
        assert secure.api_url.startswith("https://")

        sleep = SleepLog()
        unknown_ca = http_client(make_settings(api_url=secure.api_url), sleep=sleep)
        with pytest.raises(ApiUnreachable) as error:
            run(unknown_ca.ingest_logs([LogCreate(level=20, message="x")]))
        assert "TLS failed" in str(error.value)
        assert "HEADRACE_API_SSL_CERT_FILE" in str(error.value)
        assert sleep.delays == []  # a certificate problem is not retried
        run(unknown_ca.aclose())

        trusted = http_client(make_settings(api_url=secure.api_url, api_ssl_cert_file=ca))
        assert run(trusted.ingest_logs([LogCreate(level=20, message="x")])).inserted == 1
        run(trusted.aclose())

        unverified = http_client(make_settings(api_url=secure.api_url, api_tls_insecure_skip_verify=True))
        assert run(unverified.ingest_logs([LogCreate(level=20, message="x")])).inserted == 1
        run(unverified.aclose())
    finally:
        secure.close()


def test_an_unreadable_ca_bundle_is_a_clear_error(make_settings: Any, tmp_path: Any) -> None:
    from headrace.client.base import ClientError

    bundle = tmp_path / "missing.pem"
    client = http_client(make_settings(api_url="https://127.0.0.1:1/api", api_ssl_cert_file=bundle))
    with pytest.raises(ClientError, match="HEADRACE_API_SSL_CERT_FILE"):
        run(client.read_flow_runs(FlowRunFilter()))


def test_ignored_custom_headers_are_warned_about_once(
    fake_api: Any, make_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from headrace.client import http

    http._warned_about.clear()
    settings = make_settings(api_url=fake_api.api_url, client_custom_headers={"User-Agent": "x", "X-Ok": "1"})
    for _ in range(3):
        client = http_client(settings)
        client._client()
        run(client.aclose())
    (warning,) = [r for r in caplog.records if "cannot set" in r.getMessage()]
    assert "User-Agent" in warning.getMessage()
    assert "X-Ok" not in warning.getMessage()
