"""Direct dispatch of the busiest routes: the same answers as FastAPI's own routing, for every request."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI, Request, Response

from headrace.server.api.dependencies import get_database
from headrace.server.api.direct import DirectRoutes, direct, install_direct_routes
from headrace.server.app import create_app
from headrace.settings import Settings


def test_a_path_parameter_that_does_not_parse_gets_fastapis_own_422(api: httpx.Client) -> None:
    flow = api.post("/flows", json={"name": "direct"}).json()
    run = api.post("/flow-runs", json={"flow_id": flow["id"]}).json()
    good = api.post(f"/flow-runs/{run['id']}/set-state", json={"state": {"type": "PENDING"}})
    assert good.status_code == 201, good.text
    bad = api.post("/flow-runs/not-a-uuid/set-state", json={"state": {"type": "PENDING"}})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["loc"] == ["path", "flow_run_id"]


def test_every_spelling_of_a_run_id_is_read_as_fastapi_reads_it(tmp_path: Path) -> None:
    """The direct path against FastAPI's own (forced by a dependency override that changes nothing)."""
    spellings = ["{id}", "{upper}", "{{{id}}}", "urn:uuid:{id}", "{hex}", "{id}x", "1-2345678123456781234567812345678"]

    async def answers(force_fastapi: bool) -> list[tuple[int, str]]:
        app = create_app(Settings(home=tmp_path / str(force_fastapi), server_retention_enabled=False))
        if force_fastapi:
            app.dependency_overrides[get_database] = get_database
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test/api") as client:
                flow = (await client.post("/flows", json={"name": "spellings"})).json()
                run_id = uuid.UUID("7f3c1b2a-0d4e-4f5a-8b6c-9d0e1f2a3b4c")
                await client.post("/flow-runs", json={"id": str(run_id), "flow_id": flow["id"]})
                seen = []
                for spelling in spellings:
                    path_id = spelling.format(id=run_id, upper=str(run_id).upper(), hex=run_id.hex)
                    answer = await client.post(f"/flow-runs/{path_id}/set-state", json={"state": {"type": "PENDING"}})
                    seen.append((answer.status_code, answer.json().get("kind", "")))
                return seen

    direct_answers = asyncio.run(answers(force_fastapi=False))
    assert direct_answers == asyncio.run(answers(force_fastapi=True))
    assert {status for status, _ in direct_answers} >= {201, 422}


def test_an_unknown_run_is_the_operations_404(api: httpx.Client) -> None:
    missing = uuid.uuid4()
    answer = api.post(f"/flow-runs/{missing}/set-state", json={"state": {"type": "PENDING"}})
    assert answer.status_code == 404
    assert str(missing) in answer.json()["detail"]


async def _answer(request: Request) -> str:
    return f"dependency saw {request.url.path}"


def _served(app: FastAPI) -> str:
    install_direct_routes(app)

    async def call() -> str:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return (await client.post("/things/abc")).text

    return asyncio.run(call())


def test_a_direct_route_gets_its_request_path_parameters_and_request_only_dependencies() -> None:
    app = FastAPI()

    @app.post("/things/{thing_id}")
    @direct
    async def endpoint(thing_id: str, request: Request, answer: Annotated[str, Depends(_answer)]) -> Response:
        return Response(f"{thing_id} / {request.method} / {answer}")

    assert _served(app) == "abc / POST / dependency saw /things/abc"


def test_dependency_overrides_are_honoured() -> None:
    app = FastAPI()

    @app.post("/things/{thing_id}")
    @direct
    async def endpoint(thing_id: str, answer: Annotated[str, Depends(_answer)]) -> Response:
        return Response(answer)

    async def overridden() -> str:
        return "overridden"

    app.dependency_overrides[_answer] = overridden
    assert _served(app) == "overridden"


def test_a_direct_route_with_parameters_it_cannot_build_fails_at_the_first_request() -> None:
    app = FastAPI()

    @app.post("/things/{thing_id}")
    @direct
    async def endpoint(thing_id: str, limit: int = 10) -> Response:  # a query parameter
        return Response(str(limit))

    with pytest.raises(TypeError, match="only Request, path parameters"):
        _served(app)


def test_a_direct_route_with_a_dependency_that_has_no_parameter_is_refused() -> None:
    """A guard in ``dependencies=[...]`` would be skipped by the direct path: such a route is an error."""
    app = FastAPI()

    @app.post("/things/{thing_id}", dependencies=[Depends(_answer)])
    @direct
    async def endpoint(thing_id: str) -> Response:
        return Response(thing_id)

    with pytest.raises(TypeError, match="dependencies without a parameter"):
        _served(app)


def test_the_servers_direct_routes_are_the_flow_run_hot_paths(tmp_path: Path) -> None:
    app = create_app(Settings(home=tmp_path), run_services=False)
    node: object = app.build_middleware_stack()
    while not isinstance(node, DirectRoutes):
        node = getattr(node, "app")  # noqa: B009 - each middleware holds the next as .app
    assert node.routes() == [("POST", "/api/flow-runs"), ("POST", "/api/flow-runs/{flow_run_id}/set-state")]
