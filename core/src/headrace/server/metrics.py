"""Prometheus metrics at ``GET /metrics`` when ``HEADRACE_SERVER_METRICS_ENABLED`` is set (404 otherwise).

Each app has its own :class:`~prometheus_client.CollectorRegistry`, so several apps in one process
(tests, the embedded server) never share or clash over series. What is exported:

- ``headrace_http_requests_total{method,route,status}`` and ``headrace_http_request_duration_seconds``
  (a histogram with the same labels): every HTTP request, labelled by the route's path *template*
  (``/api/flow-runs/{id}``, never the raw path, so ids do not multiply series; ``<unmatched>`` for
  paths no route serves);
- ``headrace_flow_runs{state}``: flow runs by the type of their current state, counted in the
  database at scrape time (every state type is present, 0 when none);
- ``headrace_ingested_records_total{kind}``: records accepted by the ingest endpoints, counted by
  :func:`record_ingested`;
- ``headrace_database_pool_size{pool}``, ``headrace_database_pool_checked_out{pool}`` and
  ``headrace_database_pool_overflow{pool}``: connection pool use at scrape time (``main`` on
  PostgreSQL; ``write`` and ``read`` on SQLite);
- the ``process_*`` series of the server process (CPU, memory, open files).

The endpoint follows the API's auth rule: when auth is on it needs a key with the ``read`` scope
(Prometheus sends it with ``authorization: {credentials_file: ...}`` in the scrape config).

For the code that ingests records (logs, task runs, artifacts)::

    from headrace.server.metrics import record_ingested

    record_ingested("logs", len(accepted))

It counts into the metrics of the app serving the current request, and does nothing when metrics
are off or when it runs outside a request (the SDK's embedded mode, a CLI command).
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import TYPE_CHECKING

import sqlalchemy as sa
from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from sqlalchemy.pool import QueuePool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from headrace.schemas.states import StateType
from headrace.server.api.dependencies import Read
from headrace.server.db import Database, models
from headrace.server.security.middleware import RouteTable, route_path

if TYPE_CHECKING:
    from sqlalchemy.pool import Pool

__all__ = ["METRICS_PATH", "ServerMetrics", "install_metrics", "record_ingested"]

METRICS_PATH = "/metrics"
UNMATCHED_ROUTE = "<unmatched>"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

_current: ContextVar[ServerMetrics | None] = ContextVar("headrace_server_metrics", default=None)


class ServerMetrics:
    """The metrics of one app, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["method", "route", "status"]
        self.requests = Counter(
            "headrace_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            labels,
            registry=self.registry,
        )
        self.latency = Histogram(
            "headrace_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template, method and status code.",
            labels,
            registry=self.registry,
        )
        self.flow_runs = Gauge(
            "headrace_flow_runs",
            "Flow runs by the type of their current state (counted at scrape time).",
            ["state"],
            registry=self.registry,
        )
        self.ingested = Counter(
            "headrace_ingested_records",
            "Records accepted by the ingest endpoints, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.pool_size = Gauge(
            "headrace_database_pool_size", "Connections the pool keeps open.", ["pool"], registry=self.registry
        )
        self.pool_checked_out = Gauge(
            "headrace_database_pool_checked_out", "Connections in use right now.", ["pool"], registry=self.registry
        )
        self.pool_overflow = Gauge(
            "headrace_database_pool_overflow",
            "Connections open beyond the pool size (negative: pool slots not yet opened).",
            ["pool"],
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in KNOWN_METHODS else "OTHER"
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route, str(status)).observe(seconds)

    def record_ingested(self, kind: str, count: int) -> None:
        if count > 0:
            self.ingested.labels(kind).inc(count)

    async def refresh(self, database: Database) -> None:
        """Update the series that are read from the database and the pools (at scrape time)."""
        async with database.read() as session:
            rows = (
                await session.execute(
                    sa.select(models.FlowRun.state_type, sa.func.count()).group_by(models.FlowRun.state_type)
                )
            ).all()
        counts = {state: 0 for state in StateType}
        for state, count in rows:
            if state is not None:
                counts[StateType(state)] = int(count)
        for state, count in counts.items():
            self.flow_runs.labels(state.value).set(count)
        for name, pool in _pools(database):
            if isinstance(pool, QueuePool):
                self.pool_size.labels(name).set(pool.size())
                self.pool_checked_out.labels(name).set(pool.checkedout())
                self.pool_overflow.labels(name).set(pool.overflow())

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _pools(database: Database) -> list[tuple[str, Pool]]:
    write, read = database.engine.pool, database.read_engine.pool
    if read is write:
        return [("main", write)]
    return [("write", write), ("read", read)]


def record_ingested(kind: str, count: int) -> None:
    """Count ``count`` ingested records of ``kind`` (``logs``, ``task_runs``, ...) for the current request's app.

    A no-op when metrics are off or outside a request, so callers need not check.
    """
    metrics = _current.get()
    if metrics is not None:
        metrics.record_ingested(kind, count)


class MetricsMiddleware:
    """Times and counts every HTTP request; makes :func:`record_ingested` reach this app's metrics."""

    def __init__(self, app: ASGIApp, *, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets if the app raises before answering
        started = time.perf_counter()

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        token = _current.set(self.metrics)
        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            _current.reset(token)
            method: str = scope["method"]
            route, _ = RouteTable.of(scope["app"]).match(method, route_path(scope))
            template = route.template if route is not None else UNMATCHED_ROUTE
            self.metrics.observe_request(method, template, status, time.perf_counter() - started)


def install_metrics(app: FastAPI) -> None:
    """Add the metrics middleware (outermost, so refused requests count too) and ``GET /metrics``."""
    metrics = ServerMetrics()
    app.state.metrics = metrics
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    async def serve_metrics(_: Read, request: Request) -> Response:
        await metrics.refresh(request.app.state.database)
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route(
        METRICS_PATH,
        serve_metrics,
        methods=["GET"],
        include_in_schema=False,
        summary="Prometheus metrics (text exposition format).",
    )
