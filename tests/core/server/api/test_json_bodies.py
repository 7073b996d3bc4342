"""The hot routes read their own bodies (headrace.server.api.bodies): same answers and document as FastAPI's.

Each bad request goes to the live server and to a FastAPI app whose route declares the same body as a
parameter (FastAPI reads it); the two problem documents (422, or 400 for undecodable text) must be
equal. The OpenAPI document must describe the bodies as FastAPI would, and every schema it refers to
must be in it.
"""

from __future__ import annotations

import inspect
import json
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from headrace.server.api import flow_runs, logs, task_runs
from headrace.server.api.bodies import JsonBody
from headrace.server.problems import install_problem_handlers
from headrace.testing.server import RunningServer

RUN_ID = uuid.uuid4()
ROUTES: dict[str, tuple[str, JsonBody[Any]]] = {
    "create": ("/flow-runs", flow_runs.create_body),
    "set-state": (f"/flow-runs/{RUN_ID}/set-state", flow_runs.set_state_body),
    "task-run ingest": ("/task-runs/ingest", task_runs.ingest_body),
    "log ingest": ("/logs", logs.ingest_body),
}
JSON = {"content-type": "application/json"}
BAD_REQUESTS: dict[str, tuple[bytes, dict[str, str]]] = {
    "empty": (b"", JSON),
    "malformed JSON": (b'{"flow_id": ', JSON),
    "wrong shape": (b'{"flow_id": "not-a-uuid", "state": 3}', JSON),
    "wrong top-level type": (b'"text"', JSON),
    "list of wrong items": (b'[{"id": "x"}, 5]', JSON),
    "no content type": (b"{}", {}),
    "plain text": (b"[]", {"content-type": "text/plain"}),
    "not UTF-8": (b"\x9d/\xff", JSON),  # a 400, not a 422
    "NUL in text": (b'{"flow_name": "a\\u0000b", "name": "a\\u0000"}', JSON),
    "NUL in nested text": (b'{"flow_name": "f", "state": {"type": "PENDING", "message": "\\u0000"}}', JSON),
    "lone surrogate": (b'{"flow_name": "a\\ud800b"}', JSON),
    "a record with NUL in text": (
        b'[{"task_run_id": "5b0b8f6e-4d43-4a52-9a0e-2f0d1c7e9a11", "task_key": "k", "name": "a\\u0000",'
        b' "state": {"id": "7c1f6a2e-0d7b-4e0e-8d7c-7a1c2b3d4e5f", "type": "COMPLETED"}}]',
        JSON,
    ),
    "records over the limit": (b"[" + b",".join([b"{}"] * 10_001) + b"]", JSON),
    # json.loads reads UTF-16 and UTF-32 too, and lets surrogates encoded in UTF-8 through as text:
    # neither holds a "\\u" escape for the raw search to find.
    "a record with NUL, in UTF-16": (
        '[{"task_run_id": "5b0b8f6e-4d43-4a52-9a0e-2f0d1c7e9a11", "task_key": "k", "name": "a\x00", '
        '"level": 20, "message": "a\x00", "state": {"id": "7c1f6a2e-0d7b-4e0e-8d7c-7a1c2b3d4e5f", '
        '"type": "COMPLETED"}}]'.encode("utf-16"),
        JSON,
    ),
    "a record with a lone surrogate encoded in UTF-8": (
        '[{"task_run_id": "5b0b8f6e-4d43-4a52-9a0e-2f0d1c7e9a11", "task_key": "k", "name": "a\ud800", '
        '"message": "a\ud800", "state": {"id": "7c1f6a2e-0d7b-4e0e-8d7c-7a1c2b3d4e5f", "type": "COMPLETED"}}]'.encode(
            "utf-8", "surrogatepass"
        ),
        JSON,
    ),
}


def _declaring_app(body: JsonBody[Any]) -> FastAPI:
    """An app whose ``POST /`` declares ``body`` as a parameter, so that FastAPI reads it."""
    app = FastAPI()
    install_problem_handlers(app)

    async def endpoint(**_: Any) -> None:
        return None

    parameter = inspect.Parameter(body.name, inspect.Parameter.KEYWORD_ONLY, annotation=body.annotation)
    endpoint.__signature__ = inspect.Signature([parameter], return_annotation=None)  # type: ignore[attr-defined]
    app.add_api_route("/", endpoint, methods=["POST"], status_code=201)
    return app


@pytest.mark.parametrize("route", ROUTES)
def test_a_bad_body_gets_the_problem_document_fastapi_gives(api: httpx.Client, route: str) -> None:
    path, body = ROUTES[route]
    with TestClient(_declaring_app(body)) as reference:
        for case, (content, headers) in BAD_REQUESTS.items():
            expected = reference.post("/", content=content, headers=headers)
            answer = api.post(path, content=content, headers=headers)
            assert answer.status_code == expected.status_code, (route, case, answer.text)
            assert answer.status_code in (400, 422), (route, case)
            assert answer.headers["content-type"] == expected.headers["content-type"] == "application/problem+json"
            assert answer.json() == expected.json(), (route, case)


def test_a_good_body_gets_the_model_as_json(api: httpx.Client) -> None:
    flow = api.post("/flows", json={"name": "json-bodies"}).json()
    created = api.post("/flow-runs", content=json.dumps({"flow_id": flow["id"]}), headers=JSON)
    assert created.status_code == 201
    assert created.headers["content-type"] == "application/json"
    again = api.post("/flow-runs", json={"id": created.json()["id"], "flow_id": flow["id"]})
    assert again.status_code == 200
    assert again.json() == created.json()
    # The media type with parameters, and a +json one, are JSON too (as FastAPI reads them).
    state = {"type": "PENDING", "name": "Pending"}
    for content_type in ("application/json; charset=utf-8", "application/vnd.headrace+json"):
        proposed = api.post(
            f"/flow-runs/{created.json()['id']}/set-state",
            content=json.dumps({"state": {**state, "id": str(uuid.uuid4())}}),
            headers={"content-type": content_type},
        )
        assert proposed.status_code in (200, 201), proposed.text
        assert proposed.json()["status"] in ("ACCEPT", "REJECT")


def test_openapi_describes_the_bodies_as_fastapi_would(live_server: RunningServer) -> None:
    document = httpx.get(f"{live_server.url}/openapi.json").json()
    for route, (path, body) in ROUTES.items():
        template = "/api" + path.replace(str(RUN_ID), "{flow_run_id}")
        with TestClient(_declaring_app(body)) as reference:
            expected = reference.get("/openapi.json").json()
        assert document["paths"][template]["post"]["requestBody"] == expected["paths"]["/"]["post"]["requestBody"]
        for name, schema in expected["components"]["schemas"].items():
            if name not in ("HTTPValidationError", "ValidationError"):  # the reference app's own 422 answer
                assert document["components"]["schemas"][name] == schema, (route, name)
    text = json.dumps(document)
    refs = {ref.split('"', 1)[0] for ref in text.split('"$ref": "#/components/schemas/')[1:]}
    assert refs <= set(document["components"]["schemas"]), refs - set(document["components"]["schemas"])
