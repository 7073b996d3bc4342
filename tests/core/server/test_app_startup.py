"""What ``create_app`` leaves for later, so that a server answers sooner: the OpenAPI document, and the
metrics module (with prometheus_client) when metrics are off. No timing here; see benchmarks/bench_server.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from headrace.server.app import create_app
from headrace.settings import Settings

MODULES_AFTER_CREATE_APP = """
import json, sys
from pathlib import Path
from headrace.server.app import create_app
from headrace.settings import Settings
create_app(Settings(home=Path(sys.argv[1]), server_metrics_enabled=sys.argv[2] == "on"))
print(json.dumps(sorted(sys.modules)))
"""


def _modules_after_create_app(home: Path, metrics: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", MODULES_AFTER_CREATE_APP, str(home), metrics],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_create_app_imports_prometheus_client_only_when_metrics_are_on(tmp_path: Path) -> None:
    assert "prometheus_client" not in _modules_after_create_app(tmp_path, "off")
    assert "prometheus_client" in _modules_after_create_app(tmp_path, "on")


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
