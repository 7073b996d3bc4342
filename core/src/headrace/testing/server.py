"""Run a real headrace server on a free loopback port, in a background thread, for tests and benchmarks.

::

    from headrace.testing.server import running_server

    with running_server(settings) as server:
        httpx.get(f"{server.api_url}/health")

The server is uvicorn serving :func:`headrace.server.app.create_app` exactly as ``headrace server
start`` does, so tests exercise the real HTTP stack, lifespan, migrations and services.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from headrace.settings import Settings


@dataclass(frozen=True)
class RunningServer:
    url: str
    """``http://127.0.0.1:PORT``: the server root (``/docs``, ``/openapi.json``)."""

    @property
    def api_url(self) -> str:
        """What ``HEADRACE_API_URL`` should be to talk to this server."""
        return f"{self.url}/api"


@contextlib.contextmanager
def running_server(
    settings: Settings, *, run_services: bool = True, startup_timeout: float = 30.0
) -> Iterator[RunningServer]:
    """Serve the app for ``settings`` on ``127.0.0.1`` at a free port until the block ends."""
    import uvicorn

    from headrace.server.app import create_app

    app = create_app(settings, run_services=run_services)
    from headrace.server.http_protocol import CoalescingHttpToolsProtocol

    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        access_log=False,
        http=CoalescingHttpToolsProtocol,  # as headrace.server.serve serves it
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="headrace-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the headrace server stopped during start-up; its log above says why")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError(f"the headrace server did not start within {startup_timeout} s")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield RunningServer(url=f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=30)
