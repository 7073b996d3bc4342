"""Local receivers for testing things that send: an HTTP endpoint and an SMTP server on loopback.

Notifiers, webhooks and automations talk to the outside world; their tests should watch real traffic
arrive without leaving the machine. Both receivers listen on ``127.0.0.1`` at a free port, run in a
background thread, record everything they get, and stop when their ``with`` block ends::

    from headrace.testing.receivers import http_receiver, smtp_receiver

    with http_receiver() as receiver:
        httpx.post(receiver.url("/hook"), json={"a": 1})
        (request,) = receiver.requests
        assert request.json() == {"a": 1}

    with smtp_receiver() as mailbox:
        ...  # send mail to 127.0.0.1:mailbox.port
        assert mailbox.messages[0].subject == "hello"

The HTTP receiver answers ``200`` with an empty JSON object unless told otherwise
(:meth:`HttpReceiver.respond_with`), so a test can check how a sender handles ``500``; the SMTP receiver
likewise accepts every message unless told to refuse (:meth:`SmtpReceiver.respond_with`). Request bodies
must come with a ``Content-Length`` (chunked uploads are not read). For a receiver that
is *down*, use :func:`closed_port`. The SMTP receiver needs ``aiosmtpd`` (a test dependency, not one of
headrace's).
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

__all__ = [
    "HttpReceiver",
    "ReceivedMail",
    "ReceivedRequest",
    "SmtpReceiver",
    "closed_port",
    "http_receiver",
    "smtp_receiver",
]


def closed_port() -> int:
    """A loopback port nothing listens on (just released by this process): a receiver that is down."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(count: int, current: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while len(current()) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"expected {count} {what} within {timeout} s, got {len(current())}")
        time.sleep(0.01)


# -- HTTP ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedRequest:
    """One request the HTTP receiver got. Header names are lower-case."""

    method: str
    path: str
    """The path with its query string, as sent (``/hook?x=1``)."""
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON (:class:`ValueError` when it is not JSON)."""
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """A threaded HTTP server on loopback that records requests and answers with a set status."""

    host: str
    port: int
    requests: list[ReceivedRequest] = field(default_factory=list)
    status: int = 200
    response_body: bytes = b"{}"
    response_content_type: str = "application/json"
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    def url(self, path: str = "/") -> str:
        """The receiver's URL for ``path``."""
        return f"{self.base_url}/{path.lstrip('/')}"

    def respond_with(self, status: int, body: bytes | str = b"{}", content_type: str = "application/json") -> None:
        """Answer every following request with ``status`` and ``body``."""
        with self._lock:
            self.status = status
            self.response_body = body.encode() if isinstance(body, str) else body
            self.response_content_type = content_type

    def wait_for(self, count: int = 1, timeout: float = 10.0) -> list[ReceivedRequest]:
        """The requests once at least ``count`` have arrived (:class:`TimeoutError` after ``timeout`` s)."""
        _wait_for(count, lambda: self.requests, timeout, "HTTP requests")
        return list(self.requests)

    def clear(self) -> None:
        """Forget the requests received so far."""
        with self._lock:
            self.requests.clear()

    def _record(self, request: ReceivedRequest) -> tuple[int, bytes, str]:
        with self._lock:
            self.requests.append(request)
            return self.status, self.response_body, self.response_content_type


def _handler_for(receiver: HttpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            request = ReceivedRequest(method=self.command, path=self.path, headers=headers, body=body)
            status, answer, content_type = receiver._record(request)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

        def log_message(self, format: str, *args: Any) -> None:
            """Stay quiet: tests read ``receiver.requests`` instead."""

    return Handler


@contextlib.contextmanager
def http_receiver(status: int = 200) -> Iterator[HttpReceiver]:
    """Serve an :class:`HttpReceiver` on ``127.0.0.1`` at a free port for the ``with`` block."""
    receiver = HttpReceiver(host="127.0.0.1", port=0, status=status)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(receiver))
    server.daemon_threads = True
    receiver.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, name="headrace-http-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# -- SMTP ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedMail:
    """One message the SMTP receiver accepted."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    """The message as sent over SMTP (headers and body)."""

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    @property
    def text(self) -> str:
        """The plain-text body (the ``text/plain`` part of a multipart message), or the HTML one if none."""
        part = self.message.get_body(preferencelist=("plain", "html"))
        return "" if part is None else str(part.get_content()).replace("\r\n", "\n")


@dataclass
class SmtpReceiver:
    """An SMTP server on loopback (no TLS, no auth) that accepts and records every message."""

    host: str
    port: int
    messages: list[ReceivedMail] = field(default_factory=list)
    reply: str = "250 Message accepted for delivery"
    """What the server answers to each message's DATA; set it with :meth:`respond_with`."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def wait_for(self, count: int = 1, timeout: float = 10.0) -> list[ReceivedMail]:
        """The messages once at least ``count`` have arrived (:class:`TimeoutError` after ``timeout`` s)."""
        _wait_for(count, lambda: self.messages, timeout, "mail messages")
        return list(self.messages)

    def clear(self) -> None:
        """Forget the messages received so far."""
        with self._lock:
            self.messages.clear()

    def respond_with(self, reply: str) -> None:
        """Answer every following message with ``reply``, an SMTP status line such as ``"554 Rejected"``.

        A message answered with a 4xx or 5xx status is refused: it is not recorded.
        """
        if not (len(reply) >= 3 and reply[:3].isdigit()):
            raise ValueError(f"an SMTP reply starts with a three-digit status, e.g. '554 Rejected'; got {reply!r}")
        with self._lock:
            self.reply = reply

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """aiosmtpd's handler hook: record the message and accept it."""
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode()
        mail = ReceivedMail(mail_from=str(envelope.mail_from), rcpt_tos=list(envelope.rcpt_tos), content=content)
        with self._lock:
            if self.reply.startswith("2"):
                self.messages.append(mail)
            return self.reply


@contextlib.contextmanager
def smtp_receiver() -> Iterator[SmtpReceiver]:
    """Serve an :class:`SmtpReceiver` on ``127.0.0.1`` at a free port for the ``with`` block."""
    import asyncio

    try:
        from aiosmtpd.controller import Controller
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("smtp_receiver needs aiosmtpd: pip install aiosmtpd") from None

    class _FreePortController(Controller):
        # aiosmtpd connects to `port` to check the server is up; with port 0 it must learn the real one first.
        def _trigger_server(self) -> None:
            if self.port == 0 and self.server is not None:
                server = cast("asyncio.Server", self.server)
                self.port = int(server.sockets[0].getsockname()[1])
            super()._trigger_server()  # type: ignore[no-untyped-call]

    receiver = SmtpReceiver(host="127.0.0.1", port=0)
    controller = _FreePortController(receiver, hostname="127.0.0.1", port=0)
    controller.start()
    receiver.port = int(controller.port)
    try:
        yield receiver
    finally:
        controller.stop()
