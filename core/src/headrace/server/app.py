"""The FastAPI application factory.

``create_app(settings)`` builds an app whose lifespan opens the database, migrates it (unless
``HEADRACE_SERVER_MIGRATE_ON_START`` is off), starts the background services and, on shutdown, stops
them and closes the database. Nothing happens at import time.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from headrace import __version__
from headrace.server.api import include_api
from headrace.server.api.bodies import document_json_bodies
from headrace.server.api.dependencies import AuthState
from headrace.server.api.direct import install_direct_routes
from headrace.server.db import Database
from headrace.server.problems import install_problem_handlers
from headrace.server.security.csrf import load_or_create_secret
from headrace.server.security.middleware import SecurityMiddleware
from headrace.settings import Settings, get_settings


def create_app(
    settings: Settings | None = None, *, database: Database | None = None, run_services: bool = True
) -> FastAPI:
    """Build the server app. Pass ``database`` to share one (tests); it is then not disposed here."""
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from headrace.server.db.migrate import migrate_on_start
        from headrace.server.services import start_services, stop_services

        owned = database is None
        db = database or Database.from_settings(settings)
        app.state.database = db
        await migrate_on_start(db, settings)
        tasks = start_services(db, settings) if run_services else []
        try:
            yield
        finally:
            await stop_services(tasks)
            if owned:
                await db.dispose()

    app = FastAPI(
        title="headrace",
        version=__version__,
        description="The headrace server API: flows, runs, logs, artifacts, variables and concurrency limits.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.auth = AuthState(required_by_setting=settings.server_auth_required)
    # Read (or made) only when needed, so a server with a read-only HEADRACE_HOME starts without CSRF.
    app.state.csrf_secret = load_or_create_secret(settings.home) if settings.server_csrf_protection_enabled else None
    install_problem_handlers(app)
    include_api(app)
    install_direct_routes(app)  # the busiest routes skip FastAPI's router walk (see api.direct)
    _document_json_bodies_on_first_use(app)
    # Authentication and CSRF run before routing (see headrace.server.security.middleware).
    app.add_middleware(SecurityMiddleware, csrf_protection=settings.server_csrf_protection_enabled)
    if settings.server_metrics_enabled:
        from headrace.server.metrics import install_metrics  # prometheus_client only when metrics are on

        install_metrics(app)  # added last, so its middleware is outermost and counts refused requests too
    return app


def _document_json_bodies_on_first_use(app: FastAPI) -> None:
    """Arrange for :func:`document_json_bodies` to run when the OpenAPI document is first asked for.

    Why not at once: it walks every route, and FastAPI builds a route's dependencies and validation
    models the first time the route is walked (or matched). Done here, that is a third of ``create_app``
    spent before the server can answer, for a document most servers never serve. Later, each route is
    built when its first request arrives, and the document when it is first asked for.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        app.openapi = build  # type: ignore[method-assign]
        document_json_bodies(app)
        return app.openapi()

    app.openapi = openapi  # type: ignore[method-assign]
