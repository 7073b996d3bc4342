"""The security middleware's route table: matching through its prefix index finds what a scan of every route finds."""

from __future__ import annotations

import re
from pathlib import Path

from headrace.server.app import create_app
from headrace.server.security.middleware import RouteInfo, RouteTable
from headrace.settings import Settings

METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE")


def _scan(table: RouteTable, method: str, path: str) -> tuple[RouteInfo | None, bool]:
    """What matching every route in order gives (the router's own rule: the first full match wins)."""
    by_path = None
    for regex, info in table.routes():
        if regex.match(path):
            if not info.methods or method in info.methods:
                return info, True
            by_path = by_path or info
    return by_path, False


def test_every_route_matches_as_a_full_scan_would(tmp_path: Path) -> None:
    table = RouteTable.of(create_app(Settings(home=tmp_path), run_services=False))
    paths = {"/api", "/api/", "/api/nothing-here", "/docs", "/openapi.json", "/metrics", "/api/flow-runs/filter"}
    for _, info in table.routes():
        paths.add(re.sub(r"\{[^}]+\}", "6f1c3b1e-1c2d-4e5f-8a9b-0c1d2e3f4a5b", info.template))
        paths.add(re.sub(r"\{[^}]+\}", "x", info.template) + "/more")
    assert len(paths) > 60
    for path in sorted(paths):
        for method in METHODS:
            assert table.match(method, path) == _scan(table, method, path), (method, path)
