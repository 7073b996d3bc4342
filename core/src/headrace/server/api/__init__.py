"""The REST API: one router per resource, all mounted under ``/api``.

Each module defines ``router``; :data:`ROUTER_MODULES` lists them in the order the OpenAPI document
shows them.
"""

from __future__ import annotations

import importlib

from fastapi import APIRouter

ROUTER_MODULES = (
    "meta",
    "flows",
    "flow_runs",
    "task_runs",
    "logs",
    "artifacts",
    "variables",
    "blocks",
    "concurrency",
    "api_keys",
)


def api_router() -> APIRouter:
    root = APIRouter(prefix="/api")
    for name in ROUTER_MODULES:
        module = importlib.import_module(f"headrace.server.api.{name}")
        root.include_router(module.router)
    return root
