"""What ``create_app`` leaves for later, so that a server answers sooner: the OpenAPI document (the modules
it leaves out are in test_start_up_imports.py). No timing here; see benchmarks/bench_server.py."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from headrace.server.app import create_app
from headrace.settings import Settings


def test_the_openapi_document_is_built_on_first_use_and_kept(tmp_path: Path) -> None:
    app = create_app(Settings(home=tmp_path))
    assert app.openapi_schema is None
    document = app.openapi()
    assert app.openapi() is document
    assert app.openapi_schema is document


def test_the_openapi_document_describes_the_json_bodies_whatever_was_served_first(tmp_path: Path) -> None:
    """Routes are built when first walked; the document must not depend on which request came first."""
    untouched = create_app(Settings(home=tmp_path / "untouched")).openapi()
    served = create_app(Settings(home=tmp_path / "served"))
    with TestClient(served) as client:
        assert client.post("/api/flows", json={"name": "etl"}).status_code == 201
        text = client.get("/openapi.json").text
    assert json.loads(text) == untouched
    assert "requestBody" in untouched["paths"]["/api/flow-runs"]["post"]
