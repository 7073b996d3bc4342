"""Prometheus metrics (HEADRACE_SERVER_METRICS_ENABLED) against a live server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from headrace.schemas.auth import Scope
from headrace.schemas.states import StateType
from headrace.server.api.dependencies import Write
from headrace.server.app import create_app
from headrace.server.db import Database, models
from headrace.server.metrics import record_ingested
from headrace.server.operations.api_keys import create_api_key
from headrace.settings import Settings
from headrace.testing.server import RunningServer

StartServer = Callable[..., RunningServer]


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition: (name, labels) -> value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


@pytest.fixture
def server(start_server: StartServer) -> RunningServer:
    return start_server(server_metrics_enabled=True)


def scrape(server: RunningServer, **kwargs: Any) -> str:
    response = httpx.get(f"{server.url}/metrics", **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def test_metrics_are_not_served_when_disabled(live_server: RunningServer) -> None:
    response = httpx.get(f"{live_server.url}/metrics")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_requests_are_counted_by_route_template_method_and_status(server: RunningServer) -> None:
    key_id = uuid.uuid4()
    assert httpx.get(f"{server.api_url}/version").status_code == 200
    assert httpx.get(f"{server.api_url}/version").status_code == 200
    assert httpx.delete(f"{server.api_url}/api-keys/{key_id}").status_code == 404
    assert httpx.get(f"{server.api_url}/no/such/{key_id}").status_code == 404
    text = scrape(server)
    assert value(text, "headrace_http_requests_total", method="GET", route="/api/version", status="200") == 2
    assert (
        value(text, "headrace_http_requests_total", method="DELETE", route="/api/api-keys/{key_id}", status="404") == 1
    )
    assert value(text, "headrace_http_requests_total", method="GET", route="<unmatched>", status="404") == 1
    assert str(key_id) not in text  # raw paths never become labels
    count = value(
        text, "headrace_http_request_duration_seconds_count", method="GET", route="/api/version", status="200"
    )
    assert count == 2
    total = value(text, "headrace_http_request_duration_seconds_sum", method="GET", route="/api/version", status="200")
    assert total is not None
    assert total > 0


def test_flow_runs_are_counted_by_state_at_scrape_time(server: RunningServer, server_settings: Settings) -> None:
    before = scrape(server)
    assert all(value(before, "headrace_flow_runs", state=state.value) == 0 for state in StateType)

    async def insert_runs() -> None:
        async with Database.from_settings(server_settings) as database, database.write() as session:
            flow = models.Flow(name="etl")
            session.add(flow)
            await session.flush()
            for index, state in enumerate([StateType.RUNNING, StateType.RUNNING, StateType.FAILED, None]):
                session.add(models.FlowRun(flow_id=flow.id, name=f"run-{index}", state_type=state))

    asyncio.run(insert_runs())
    after = scrape(server)
    assert value(after, "headrace_flow_runs", state="RUNNING") == 2
    assert value(after, "headrace_flow_runs", state="FAILED") == 1
    assert value(after, "headrace_flow_runs", state="COMPLETED") == 0


def test_database_pool_use_is_reported(server: RunningServer, dialect: str) -> None:
    text = scrape(server)
    if dialect == "sqlite":
        assert value(text, "headrace_database_pool_size", pool="write") == 1
        assert value(text, "headrace_database_pool_size", pool="read") == 5
        pools = ["write", "read"]
    else:
        assert value(text, "headrace_database_pool_size", pool="main") == 20
        pools = ["main"]
    for pool in pools:
        checked_out = value(text, "headrace_database_pool_checked_out", pool=pool)
        assert checked_out is not None
        assert checked_out >= 0
        assert value(text, "headrace_database_pool_overflow", pool=pool) is not None


def test_metrics_need_a_read_key_when_auth_is_on(start_server: StartServer, server_settings: Settings) -> None:
    async def make_key() -> str:
        async with Database.from_settings(server_settings) as database:
            return (await create_api_key(database, "prometheus", Scope.READ)).key

    key = asyncio.run(make_key())
    server = start_server(server_metrics_enabled=True)
    refused = httpx.get(f"{server.url}/metrics")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{server.url}/metrics", headers={"Authorization": "Bearer hr_wrong"}).status_code == 401
    text = scrape(server, headers={"Authorization": f"Bearer {key}"})
    # Refused requests are counted too.
    assert value(text, "headrace_http_requests_total", method="GET", route="/metrics", status="401") == 2


def test_each_app_has_its_own_registry(start_server: StartServer) -> None:
    first = start_server(server_metrics_enabled=True)
    second = start_server(server_metrics_enabled=True)
    for _ in range(3):
        httpx.get(f"{first.api_url}/version")
    httpx.get(f"{second.api_url}/version")
    assert value(scrape(first), "headrace_http_requests_total", method="GET", route="/api/version", status="200") == 3
    assert value(scrape(second), "headrace_http_requests_total", method="GET", route="/api/version", status="200") == 1


def test_ingested_records_are_counted_for_the_app_serving_the_request(server_settings: Settings) -> None:
    """``record_ingested`` inside a request counts into that app's metrics; outside one it does nothing."""
    settings = server_settings.model_copy(update={"server_metrics_enabled": True, "server_retention_enabled": False})
    app = create_app(settings, run_services=False)

    @app.post("/api/ingest-probe")
    async def ingest_probe(_: Write, count: int) -> dict[str, int]:
        record_ingested("logs", count)
        return {"count": count}

    record_ingested("logs", 1000)  # outside any request: ignored

    async def scenario() -> str:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://headrace") as client:
                for count in (3, 4, 0):
                    assert (await client.post("/api/ingest-probe", params={"count": count})).status_code == 200
                return (await client.get("/metrics")).text

    text = asyncio.run(scenario())
    assert value(text, "headrace_ingested_records_total", kind="logs") == 7
