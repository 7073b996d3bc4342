"""The REST API: one router per resource, all mounted under ``/api``.

Each module defines ``router`` (``blocks`` defines three, see :data:`ROUTERS`); :data:`ROUTER_MODULES`
lists them in the order the OpenAPI document shows them.

:func:`include_api` includes every resource router into the app itself, with the ``/api`` prefix,
rather than through one ``/api`` router: FastAPI matches a request by walking the included routers,
and every level of nesting adds that walk (and its bookkeeping) to each request's CPU.
"""

from __future__ import annotations

import importlib

from fastapi import APIRouter, FastAPI

API_PREFIX = "/api"

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

ROUTERS: dict[str, tuple[str, ...]] = {"blocks": ("types_router", "schemas_router", "documents_router")}
"""Modules whose routes live in several routers, included one by one (default: the module's ``router``)."""


def resource_routers() -> list[APIRouter]:
    """Every resource router, in :data:`ROUTER_MODULES` order."""
    routers: list[APIRouter] = []
    for name in ROUTER_MODULES:
        module = importlib.import_module(f"headrace.server.api.{name}")
        routers.extend(getattr(module, attribute) for attribute in ROUTERS.get(name, ("router",)))
    return routers


def include_api(app: FastAPI) -> None:
    """Include every resource router directly into ``app`` under ``/api``."""
    for router in resource_routers():
        app.include_router(router, prefix=API_PREFIX)


def api_router() -> APIRouter:
    """All resource routers in one ``/api`` router (for embedding the API in another app)."""
    root = APIRouter(prefix=API_PREFIX)
    for router in resource_routers():
        root.include_router(router)
    return root
