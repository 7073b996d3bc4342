"""Fixtures for the client's tests: clean settings, a live server, and a scripted HTTP server.

- ``make_settings(**overrides)``: :class:`~headrace.settings.Settings` from arguments alone (no
  ``HEADRACE_*`` variable of the outer environment), with a temporary ``HEADRACE_HOME``.
- ``live_server``: the real headrace server (uvicorn in a thread) on a free loopback port, on the
  SQLite database of that home.
- ``fake_api``: :class:`FakeApi`, a real HTTP server on loopback whose answers a test scripts (for
  retries, ``Retry-After``, CSRF and headers, where the real server cannot be made to misbehave).
"""

from __future__ import annotations

import collections
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from headrace.settings import Settings, get_settings
from headrace.testing.server import RunningServer, running_server

MakeSettings = Callable[..., Settings]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in list(os.environ):
        if name.upper().startswith("HEADRACE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HEADRACE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    yield
    from headrace import records
    from headrace.client.embedded import dispose_shared_databases

    records.shutdown(timeout=0)
    records._settings = None
    dispose_shared_databases()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def make_settings(home: Path) -> MakeSettings:
    def make(**overrides: Any) -> Settings:
        overrides.setdefault("home", home)
        overrides.setdefault("server_retention_enabled", False)
        return get_settings(**overrides)

    return make


@pytest.fixture
def live_server(make_settings: MakeSettings) -> Iterator[RunningServer]:
    with running_server(make_settings()) as server:
        yield server


# ------------------------------------------------------------------------------------- the fake API


@dataclass
class Seen:
    """One request as the fake server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    close: bool = False
    """Drop the connection without answering (the client sees a transport error)."""


Responder = Callable[[Seen], Reply]


class FakeApi:
    """A real HTTP server on 127.0.0.1 that answers from a script and records every request.

    ``fake.script("POST", "/api/logs", Reply(503), Reply(200, {...}))`` queues answers for a route;
    when a route's queue is empty its ``route`` responder (or a 404 problem) answers. Tests reach the
    reply type as ``fake_api.Reply``.
    """

    Reply = Reply

    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        self.requests: list[Seen] = []
        self._scripts: dict[tuple[str, str], collections.deque[Reply]] = collections.defaultdict(collections.deque)
        self._routes: dict[tuple[str, str], Responder] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                seen = Seen(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic()
                )
                fake.requests.append(seen)
                reply = fake._reply(self.command, path, seen)
                if reply.close:
                    self.close_connection = True
                    return
                payload = (
                    b""
                    if reply.body is None
                    else (reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode())
                )
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.scheme = "http"
        if tls is not None:  # (certificate chain, key): serve HTTPS
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def api_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/api"

    def script(self, method: str, path: str, *replies: Reply) -> None:
        self._scripts[(method, path)].extend(replies)

    def route(self, method: str, path: str, responder: Responder) -> None:
        self._routes[(method, path)] = responder

    def seen(self, method: str, path: str) -> list[Seen]:
        return [r for r in self.requests if r.method == method and r.path.split("?", 1)[0] == path]

    def _reply(self, method: str, path: str, seen: Seen) -> Reply:
        queue = self._scripts.get((method, path))
        if queue:
            return queue.popleft()
        responder = self._routes.get((method, path))
        if responder is not None:
            return responder(seen)
        return Reply(
            404,
            {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "Not Found"},
            content_type="application/problem+json",
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


INGESTED = {"received": 1, "inserted": 1, "duplicates": 0}


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    fake = FakeApi()
    # CSRF off, as on a default server: the client asks once and stops asking.
    fake.route(
        "GET",
        "/api/csrf-token",
        lambda _: Reply(
            422, {"status": 422, "detail": "CSRF protection is off"}, content_type="application/problem+json"
        ),
    )
    yield fake
    fake.close()
