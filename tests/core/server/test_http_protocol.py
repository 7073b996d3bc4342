"""The server's HTTP protocol: each answer leaves in one socket write, and nothing written is lost."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx

from headrace.server.http_protocol import CoalescingTransport
from headrace.settings import Settings
from headrace.testing.server import running_server


async def _pair() -> tuple[asyncio.Transport, socket.socket]:
    """A real TCP transport on the loop, and the raw socket at its other end."""
    listener = socket.create_server(("127.0.0.1", 0))
    loop = asyncio.get_running_loop()
    connecting = loop.create_connection(asyncio.Protocol, *listener.getsockname()[:2])
    (transport, _), (peer, _) = await asyncio.gather(connecting, loop.sock_accept(listener))
    listener.close()
    peer.setblocking(True)
    peer.settimeout(5)
    return transport, peer


class _CountingTransport(CoalescingTransport):
    """Counts the writes that reach the real transport underneath."""

    writes = 0

    def flush(self) -> None:
        if self._pending:
            type(self).writes += 1
        super().flush()


def test_writes_of_one_loop_turn_reach_the_socket_as_one_write_in_order() -> None:
    async def scenario() -> bytes:
        transport, peer = await _pair()
        coalescing = _CountingTransport(transport, asyncio.get_running_loop())
        coalescing.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        coalescing.write(b"ok")
        assert coalescing.get_write_buffer_size() == 40  # held until the end of this turn
        await asyncio.sleep(0)
        coalescing.write(b"after")
        coalescing.close()  # writes what is held, then closes
        received = b""
        while chunk := await asyncio.to_thread(peer.recv, 4096):
            received += chunk
        peer.close()
        return received

    assert asyncio.run(scenario()) == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokafter"
    assert _CountingTransport.writes == 2  # the head and body together, then "after" on close


def test_abort_drops_what_is_held() -> None:
    async def scenario() -> bytes:
        transport, peer = await _pair()
        coalescing = CoalescingTransport(transport, asyncio.get_running_loop())
        coalescing.write(b"never sent")
        coalescing.abort()
        await asyncio.sleep(0.05)
        try:
            return await asyncio.to_thread(peer.recv, 4096)
        except ConnectionResetError:
            return b""
        finally:
            peer.close()

    assert asyncio.run(scenario()) == b""


def test_a_live_server_answers_keep_alive_and_closing_requests_whole(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, server_retention_enabled=False)
    with running_server(settings) as server, httpx.Client(base_url=server.api_url) as client:
        for _ in range(20):  # one keep-alive connection: each answer must end where the next begins
            assert client.get("/version").json()["api_version"] == "1"
        closing = httpx.get(f"{server.api_url}/health", headers={"connection": "close"})
        assert closing.status_code == 200
        assert closing.json()["status"] == "ok"
