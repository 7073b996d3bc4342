"""The orchestration client over HTTP: httpx, with retries, auth, CSRF and custom headers from settings.

What every request gets:

- ``Authorization: Bearer <HEADRACE_API_KEY>`` when a key is set; ``User-Agent: headrace/<version>``;
  the headers of ``HEADRACE_CLIENT_CUSTOM_HEADERS``, except that those can never replace
  ``Authorization``, ``User-Agent`` or the CSRF headers (such entries are ignored, with one warning).
- HTTP/2 when ``HEADRACE_API_ENABLE_HTTP2``; TLS verified against ``HEADRACE_API_SSL_CERT_FILE`` (or the
  system's CAs), or not at all with ``HEADRACE_API_TLS_INSECURE_SKIP_VERIFY``; a timeout of
  ``HEADRACE_API_REQUEST_TIMEOUT`` seconds.
- CSRF (``HEADRACE_CLIENT_CSRF_SUPPORT_ENABLED``): before the first unsafe request the client asks
  ``GET /csrf-token?client=<its id>`` once. A server with CSRF protection off answers 422, and the client
  stops asking; otherwise it sends the token in ``Headrace-Csrf-Token`` / ``Headrace-Csrf-Client``, fetches
  a new one shortly before it expires, and when the server refuses a token (403) fetches a new one and
  sends the request again, once.

Retries (the delays come from :mod:`headrace.retries`, the one place retry math lives): a request is sent
again, up to ``HEADRACE_CLIENT_MAX_RETRIES`` times, when the answer is 408, 429, 502, 503 or one of
``HEADRACE_CLIENT_RETRY_EXTRA_CODES``, or when the transport failed in a way that can pass (timeouts,
connections dropped or reset, and a refused connection *after* this client has reached the server once:
a server restarting). Retry number ``n`` waits ``jittered(capped_exponential(n, base, cap), jitter)``, or
what the server's ``Retry-After`` asks (seconds or an HTTP date, at most :data:`RETRY_AFTER_LIMIT`), with
the same upward-only jitter. Every method of the API is safe to send twice: creations carry client ids,
ingestion is idempotent and state proposals carry a transition id.

A wrong URL fails at once, with a message that names ``HEADRACE_API_URL``: a host that does not
resolve, a refused first connection, a TLS failure, or a server that is not a headrace API (a 404 for
the route itself, or an answer that is not JSON) are never retried.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import socket
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

import httpx
from pydantic import BaseModel, TypeAdapter

from headrace import __version__
from headrace.client.base import ApiError, ApiUnreachable, ClientError
from headrace.retries import capped_exponential, jittered
from headrace.schemas.base import Page, RecordKind
from headrace.schemas.blocks import (
    BlockDocument,
    BlockDocumentCreate,
    BlockDocumentFilter,
    BlockDocumentUpdate,
    BlockTypeCreate,
    BlockTypeFilter,
    BlockTypeInfo,
)
from headrace.schemas.logs import Log, LogCreate, LogFilter
from headrace.schemas.runs import (
    Flow,
    FlowRun,
    FlowRunCreate,
    FlowRunFilter,
    IngestResult,
    OrchestrationResult,
    SetStateRequest,
    TaskRun,
    TaskRunFilter,
    TaskRunRecord,
)
from headrace.schemas.server import CsrfToken
from headrace.schemas.states import State

if TYPE_CHECKING:
    from headrace.settings import Settings

__all__ = [
    "ALWAYS_RETRIED",
    "CSRF_CLIENT_HEADER",
    "CSRF_TOKEN_HEADER",
    "PROTECTED_HEADERS",
    "RETRY_AFTER_LIMIT",
    "HttpClient",
]

logger = logging.getLogger("headrace.client")

ALWAYS_RETRIED = frozenset({408, 429, 502, 503})
"""Status codes always retried; ``HEADRACE_CLIENT_RETRY_EXTRA_CODES`` adds to them."""
RETRY_AFTER_LIMIT = 300.0
"""The longest ``Retry-After`` honoured, in seconds; longer requests are shortened to it."""
CSRF_TOKEN_HEADER = "Headrace-Csrf-Token"
CSRF_CLIENT_HEADER = "Headrace-Csrf-Client"
PROTECTED_HEADERS = frozenset({"authorization", "user-agent", CSRF_TOKEN_HEADER.lower(), CSRF_CLIENT_HEADER.lower()})
"""Headers that ``HEADRACE_CLIENT_CUSTOM_HEADERS`` cannot set (compared without case)."""
CSRF_REFRESH_MARGIN = 30.0
"""A CSRF token is replaced this many seconds before it expires."""
_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_URL_SETTING = "HEADRACE_API_URL"

M = TypeVar("M", bound=BaseModel)

_warned_about: set[frozenset[str]] = set()  # protected custom headers already warned about, once per process

_STATES = TypeAdapter(list[State])
_FLOW_RUN_PAGE = TypeAdapter(Page[FlowRun])
_TASK_RUN_PAGE = TypeAdapter(Page[TaskRun])
_LOG_PAGE = TypeAdapter(Page[Log])
_BLOCK_TYPE_PAGE = TypeAdapter(Page[BlockTypeInfo])
_BLOCK_DOCUMENT_PAGE = TypeAdapter(Page[BlockDocument])


class HttpClient:
    """:class:`~headrace.client.base.OrchestrationClient` over HTTP, for ``HEADRACE_API_URL``.

    Use it as an async context manager (``async with HttpClient(settings) as client``), on one event
    loop; the connection pool is opened on first use and closed when the outermost block ends.
    ``retry_backoff_base`` / ``retry_backoff_cap`` shape the retry delays (seconds), ``max_retries``
    overrides ``HEADRACE_CLIENT_MAX_RETRIES``, and ``sleep`` is how the client waits between attempts.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        api_url: str | None = None,
        max_retries: int | None = None,
        retry_backoff_base: float = 0.5,
        retry_backoff_cap: float = 10.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        url = api_url or settings.api_url
        if not url:
            raise ValueError(f"HttpClient needs an API URL: set {_URL_SETTING} (or use headrace.client.get_client)")
        self.api_url = url.rstrip("/")
        self.settings = settings
        self.max_retries = settings.client_max_retries if max_retries is None else max_retries
        self.retry_codes = ALWAYS_RETRIED | frozenset(settings.client_retry_extra_codes)
        self.jitter_factor = settings.client_retry_jitter_factor
        self.retry_backoff_base = retry_backoff_base
        self.retry_backoff_cap = retry_backoff_cap
        self._sleep = sleep
        self._http: httpx.AsyncClient | None = None
        self._depth = 0
        self._reached = False  # set once any answer came back: later refused connections are transient
        self._csrf_enabled = settings.client_csrf_support_enabled
        self._csrf_client = str(uuid.uuid4())
        self._csrf_token: str | None = None
        self._csrf_expires = 0.0
        self._csrf_lock: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"HttpClient({self.api_url!r})"

    # ------------------------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> HttpClient:
        self._depth += 1
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._depth = max(0, self._depth - 1)
        if self._depth == 0:
            await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (a later call opens a new one)."""
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self.api_url + "/",
                headers=self.base_headers(),
                timeout=httpx.Timeout(self.settings.api_request_timeout),
                http2=self.settings.api_enable_http2,
                verify=self._verify(),
                follow_redirects=False,
            )
        return self._http

    def _verify(self) -> ssl.SSLContext | bool:
        if self.settings.api_tls_insecure_skip_verify:
            return False
        if self.settings.api_ssl_cert_file is not None:
            try:
                return ssl.create_default_context(cafile=str(self.settings.api_ssl_cert_file))
            except (OSError, ssl.SSLError) as exc:
                raise ClientError(
                    f"HEADRACE_API_SSL_CERT_FILE={self.settings.api_ssl_cert_file} cannot be used as a CA bundle: {exc}"
                ) from exc
        return True

    def base_headers(self) -> dict[str, str]:
        """The headers every request carries: custom headers first, then the ones they cannot replace."""
        headers: dict[str, str] = {}
        ignored = []
        for name, value in self.settings.client_custom_headers.items():
            if name.strip().lower() in PROTECTED_HEADERS:
                ignored.append(name)
            else:
                headers[name] = value
        if ignored and frozenset(ignored) not in _warned_about:
            _warned_about.add(frozenset(ignored))
            logger.warning(
                "HEADRACE_CLIENT_CUSTOM_HEADERS cannot set %s; those entries are ignored", ", ".join(sorted(ignored))
            )
        headers["User-Agent"] = f"headrace/{__version__} (python-httpx/{httpx.__version__})"
        if self.settings.api_key is not None:
            headers["Authorization"] = f"Bearer {self.settings.api_key.get_secret_value()}"
        return headers

    # ------------------------------------------------------------------------------------- requests

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send one API request (``path`` relative to the API URL) with retries; raise on an error answer."""
        method = method.upper()
        if json is not None:
            content = _dumps(json)
        headers = {"Content-Type": "application/json"} if content is not None else {}
        attempt = 0
        csrf_retried = False
        while True:
            if method in _UNSAFE_METHODS and self._csrf_enabled:
                headers.update(await self._csrf_headers())
            try:
                response = await self._client().request(method, path, content=content, params=params, headers=headers)
            except httpx.TransportError as exc:
                if not self._transient(exc) or attempt >= self.max_retries:
                    raise ApiUnreachable(self._explain(exc, attempt)) from exc
                attempt += 1
                await self._sleep(self._delay(attempt, None))
                continue
            self._reached = True
            status = response.status_code
            if status in self.retry_codes and attempt < self.max_retries:
                attempt += 1
                await response.aread()
                await self._sleep(self._delay(attempt, _retry_after(response)))
                continue
            if (
                status == 403
                and method in _UNSAFE_METHODS
                and self.settings.client_csrf_support_enabled
                and not csrf_retried
                and _is_csrf_refusal(response)
            ):
                # The token expired or the server started requiring one: fetch a new one, send again once.
                csrf_retried = True
                self._csrf_enabled = True
                self._csrf_token = None
                continue
            if response.is_error:
                raise self._api_error(response)
            return response

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return jittered(min(retry_after, RETRY_AFTER_LIMIT), self.jitter_factor)
        return jittered(
            capped_exponential(attempt, self.retry_backoff_base, self.retry_backoff_cap), self.jitter_factor
        )

    def _transient(self, exc: httpx.TransportError) -> bool:
        if isinstance(exc, httpx.TimeoutException | httpx.ReadError | httpx.WriteError | httpx.RemoteProtocolError):
            return True
        if isinstance(exc, httpx.ConnectError):
            if _in_chain(exc, socket.gaierror) or _in_chain(exc, ssl.SSLError):
                return False
            if _in_chain(exc, ConnectionRefusedError):
                return self._reached
            return True
        return isinstance(exc, httpx.CloseError)

    def _explain(self, exc: httpx.TransportError, attempt: int) -> str:
        where = f"the headrace API at {self.api_url} ({_URL_SETTING})"
        if isinstance(exc, httpx.ConnectError) and _in_chain(exc, socket.gaierror):
            host = httpx.URL(self.api_url).host
            return f"cannot reach {where}: the host name {host!r} does not resolve; check {_URL_SETTING}"
        if isinstance(exc, httpx.ConnectError) and _in_chain(exc, ssl.SSLError):
            return (
                f"cannot reach {where}: TLS failed ({_first_line(exc)}); set HEADRACE_API_SSL_CERT_FILE to the "
                "server's CA bundle"
            )
        if isinstance(exc, httpx.ConnectError) and _in_chain(exc, ConnectionRefusedError):
            reason = "the connection was refused: nothing is listening there. Is the server running"
            reason += " (`headrace server start`) and is the port right?" if not self._reached else "?"
        elif isinstance(exc, httpx.TimeoutException):
            reason = f"no answer within {self.settings.api_request_timeout:g} s (HEADRACE_API_REQUEST_TIMEOUT)"
        else:
            reason = f"{type(exc).__name__}: {_first_line(exc)}"
        tries = f" (after {attempt + 1} attempts)" if attempt else ""
        return f"cannot reach {where}{tries}: {reason}"

    def _api_error(self, response: httpx.Response) -> ApiError:
        status = response.status_code
        problem: dict[str, Any] = {}
        kind = response.headers.get("content-type", "").split(";")[0].strip()
        if kind in ("application/problem+json", "application/json"):
            try:
                body = response.json()
            except ValueError:
                body = None
            if isinstance(body, dict):
                problem = body
        detail = problem.get("detail")
        if not isinstance(detail, str):
            detail = str(detail) if detail is not None else response.reason_phrase or f"HTTP {status}"
        url = response.request.url
        if status == 404 and (not problem or detail == "Not Found"):
            detail = (
                f"{url} is not a route of a headrace API; check {_URL_SETTING} ({self.api_url}): it should be "
                "the server's /api URL, such as http://127.0.0.1:4200/api"
            )
        elif not problem:
            detail = (
                f"the server at {self.api_url} ({_URL_SETTING}) answered {status} {response.reason_phrase} "
                f"with {kind or 'no content type'}, not as a headrace API would"
            )
        return ApiError(status, detail, problem)

    # ------------------------------------------------------------------------------------------ CSRF

    async def _csrf_headers(self) -> dict[str, str]:
        if not self._csrf_enabled:
            return {}
        if self._csrf_token is None or time.time() >= self._csrf_expires - CSRF_REFRESH_MARGIN:
            if self._csrf_lock is None:
                self._csrf_lock = asyncio.Lock()
            async with self._csrf_lock:
                if self._csrf_token is None or time.time() >= self._csrf_expires - CSRF_REFRESH_MARGIN:
                    await self._fetch_csrf_token()
        if not self._csrf_enabled or self._csrf_token is None:
            return {}
        return {CSRF_TOKEN_HEADER: self._csrf_token, CSRF_CLIENT_HEADER: self._csrf_client}

    async def _fetch_csrf_token(self) -> None:
        try:
            response = await self.request("GET", "csrf-token", params={"client": self._csrf_client})
        except ApiError as exc:
            if exc.status == 422:  # CSRF protection is off on this server: stop asking
                self._csrf_enabled = False
                self._csrf_token = None
                return
            raise
        token = CsrfToken.model_validate_json(response.content)
        self._csrf_token = token.token
        self._csrf_expires = token.expiration.timestamp()

    # ------------------------------------------------------------------------------- the protocol

    async def _model(self, model: type[M], method: str, path: str, body: Any = None) -> M:
        response = await self.request(method, path, json=body)
        return model.model_validate_json(response.content)

    async def create_flow_run(self, data: FlowRunCreate) -> FlowRun:
        return await self._model(FlowRun, "POST", "flow-runs", data)

    async def read_flow_run(self, flow_run_id: UUID) -> FlowRun:
        return await self._model(FlowRun, "GET", f"flow-runs/{flow_run_id}")

    async def read_flow_runs(self, flow_run_filter: FlowRunFilter) -> Page[FlowRun]:
        response = await self.request("POST", "flow-runs/filter", json=flow_run_filter)
        return _FLOW_RUN_PAGE.validate_json(response.content)

    async def read_flow(self, flow_id: UUID) -> Flow:
        return await self._model(Flow, "GET", f"flows/{flow_id}")

    async def set_flow_run_state(self, flow_run_id: UUID, state: State, *, force: bool = False) -> OrchestrationResult:
        body = SetStateRequest(state=state, force=force)
        return await self._model(OrchestrationResult, "POST", f"flow-runs/{flow_run_id}/set-state", body)

    async def read_flow_run_states(self, flow_run_id: UUID) -> list[State]:
        response = await self.request("GET", f"flow-runs/{flow_run_id}/states")
        return _STATES.validate_json(response.content)

    async def ingest_task_run_records(self, records: list[TaskRunRecord]) -> IngestResult:
        return await self.ingest_serialized("task_runs", [_dumps(record) for record in records])

    async def read_task_run(self, task_run_id: UUID) -> TaskRun:
        return await self._model(TaskRun, "GET", f"task-runs/{task_run_id}")

    async def read_task_runs(self, task_run_filter: TaskRunFilter) -> Page[TaskRun]:
        response = await self.request("POST", "task-runs/filter", json=task_run_filter)
        return _TASK_RUN_PAGE.validate_json(response.content)

    async def read_task_run_states(self, task_run_id: UUID) -> list[State]:
        response = await self.request("GET", f"task-runs/{task_run_id}/states")
        return _STATES.validate_json(response.content)

    async def ingest_logs(self, logs: list[LogCreate]) -> IngestResult:
        return await self.ingest_serialized("logs", [_dumps(log) for log in logs])

    async def read_logs(self, log_filter: LogFilter) -> Page[Log]:
        response = await self.request("POST", "logs/filter", json=log_filter)
        return _LOG_PAGE.validate_json(response.content)

    async def create_block_type(self, block_type: BlockTypeCreate) -> BlockTypeInfo:
        return await self._model(BlockTypeInfo, "POST", "block-types", block_type)

    async def read_block_types(self, type_filter: BlockTypeFilter | None = None) -> Page[BlockTypeInfo]:
        response = await self.request("POST", "block-types/filter", json=type_filter or BlockTypeFilter())
        return _BLOCK_TYPE_PAGE.validate_json(response.content)

    async def create_block_document(self, document: BlockDocumentCreate) -> BlockDocument:
        return await self._model(BlockDocument, "POST", "block-documents", document)

    async def read_block_document(self, document_id: UUID, *, include_secrets: bool = False) -> BlockDocument:
        response = await self.request("GET", f"block-documents/{document_id}", params=_secrets_param(include_secrets))
        return BlockDocument.model_validate_json(response.content)

    async def read_block_document_by_name(
        self, type_slug: str, name: str, *, include_secrets: bool = False
    ) -> BlockDocument:
        path = f"block-types/{_segment(type_slug)}/block-documents/{_segment(name)}"
        response = await self.request("GET", path, params=_secrets_param(include_secrets))
        return BlockDocument.model_validate_json(response.content)

    async def read_block_documents(self, document_filter: BlockDocumentFilter) -> Page[BlockDocument]:
        response = await self.request("POST", "block-documents/filter", json=document_filter)
        return _BLOCK_DOCUMENT_PAGE.validate_json(response.content)

    async def update_block_document(self, document_id: UUID, update: BlockDocumentUpdate) -> BlockDocument:
        return await self._model(BlockDocument, "PATCH", f"block-documents/{document_id}", update)

    async def delete_block_document(self, document_id: UUID) -> None:
        await self.request("DELETE", f"block-documents/{document_id}")

    async def ingest_serialized(self, kind: RecordKind, payloads: Sequence[bytes]) -> IngestResult:
        path = INGEST_PATHS[kind]
        response = await self.request("POST", path, content=b"[" + b",".join(payloads) + b"]")
        return IngestResult.model_validate_json(response.content)


INGEST_PATHS: dict[RecordKind, str] = {"task_runs": "task-runs/ingest", "logs": "logs"}
"""Where each kind of record is ingested in bulk: a JSON array of records in the body."""


# ------------------------------------------------------------------------------------------- helpers


def _dumps(value: Any) -> bytes:
    if isinstance(value, BaseModel):
        return value.__pydantic_serializer__.to_json(value)
    import json

    return json.dumps(value, separators=(",", ":")).encode()


def _secrets_param(include_secrets: bool) -> dict[str, str] | None:
    return {"include_secrets": "true"} if include_secrets else None


def _segment(text: str) -> str:
    """``text`` as one URL path segment (a name can never reach another route)."""
    from urllib.parse import quote

    return quote(text, safe="")


def _in_chain(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds: a number of seconds or an HTTP date; ``None`` if absent or unreadable."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def _is_csrf_refusal(response: httpx.Response) -> bool:
    """A 403 that says the CSRF token is missing, invalid or expired (not an auth scope refusal)."""
    try:
        body = response.json()
    except ValueError:
        return False
    if not isinstance(body, dict):
        return False
    text = f"{body.get('type', '')} {body.get('detail', '')}".lower()
    return "csrf" in text
