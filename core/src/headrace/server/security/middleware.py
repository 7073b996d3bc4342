"""The ASGI middleware that applies authentication and CSRF protection to every ``/api`` request.

It runs before routing, so its answers do not depend on what the route would make of the request:

1. **Authentication and authorization.** Unless the path is open
   (:data:`~headrace.server.api.dependencies.OPEN_PATHS`), the bearer key is resolved to a
   :class:`~headrace.server.api.dependencies.Caller` (401 problem when auth is on and the key is
   missing, unknown or revoked); then the route the request will reach is looked up in a
   :class:`RouteTable` and the scope its guard declares is checked (403 problem). The routes' scope
   guards check again (they are the declaration; this is the early enforcement): FastAPI would
   otherwise answer a malformed JSON body with 422 before running any dependency.
   A URL with a NUL character in it (``%00``) is refused with 400 (no database can compare such text;
   request bodies get the same treatment from :class:`~headrace.schemas.base.ActionModel`).
2. **CSRF** (when ``HEADRACE_SERVER_CSRF_PROTECTION_ENABLED``). An unsafe request (``POST``, ``PUT``,
   ``PATCH``, ``DELETE``) must carry a valid token for its client id in the ``Headrace-Csrf-Token`` and
   ``Headrace-Csrf-Client`` headers, else 403. Requests authenticated with an API key are exempt: a
   bearer key is never attached by a browser on its own, which is what a cross-site request forgery
   needs; so in practice the check protects servers running without keys, where the browser's network
   position is the only credential. See ``docs/security.md``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from starlette.requests import HTTPConnection
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Send
from starlette.types import Scope as AsgiScope
from starlette.websockets import WebSocketClose

from headrace.schemas.auth import Scope
from headrace.server.api.dependencies import CALLER_SCOPE_KEY, OPEN_PATHS, authenticate, declared_scopes, forbidden
from headrace.server.problems import Problem, problem_response
from headrace.server.security.csrf import CLIENT_HEADER, SAFE_METHODS, TOKEN_HEADER, token_is_valid

logger = logging.getLogger("headrace.server.auth")

API_PREFIX = "/api"


def route_path(scope: AsgiScope) -> str:
    """The request path without the app's ``root_path`` (what the routes match)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


@dataclass(frozen=True)
class RouteInfo:
    template: str
    """The path template, such as ``/api/flow-runs/{id}``."""
    methods: frozenset[str]
    scope: Scope | None
    """The highest scope the route's guards declare; None for an open route."""


_SCOPE_ORDER = (Scope.READ, Scope.WRITE, Scope.ADMIN)
_CONVERTER = re.compile(r"\{(\w+):[^}]+\}")


class RouteTable:
    """Every route of an app with its path regex, methods and declared scope, matched as the router does.

    Built on first use (every route is registered by then) from ``fastapi.routing.iter_route_contexts``,
    which sees through included routers (``app.routes`` holds one opaque entry per included router).
    """

    def __init__(self, app: Any) -> None:
        self._app = app
        self._routes: list[tuple[re.Pattern[str], RouteInfo]] | None = None
        self._by_prefix: dict[str, list[tuple[re.Pattern[str], RouteInfo]]] | None = None
        self._anywhere: list[tuple[re.Pattern[str], RouteInfo]] = []

    @classmethod
    def of(cls, app: Any) -> RouteTable:
        """The table of ``app``, made once and kept on ``app.state``."""
        table: RouteTable | None = getattr(app.state, "route_table", None)
        if table is None:
            table = cls(app)
            app.state.route_table = table
        return table

    def routes(self) -> list[tuple[re.Pattern[str], RouteInfo]]:
        if self._routes is None:
            from fastapi.routing import iter_route_contexts

            routes = []
            for context in iter_route_contexts(self._app.routes):
                path = context.path
                if not path:
                    continue
                dependant = getattr(context, "dependant", None)
                scopes = declared_scopes(dependant) if dependant is not None else set()
                highest = max(scopes, key=_SCOPE_ORDER.index) if scopes else None
                regex, _, _ = compile_path(path)
                template = _CONVERTER.sub(r"{\1}", path)  # as the OpenAPI document writes it
                routes.append((regex, RouteInfo(template, frozenset(context.methods or ()), highest)))
            self._routes = routes
        return self._routes

    def candidates(self, path: str) -> list[tuple[re.Pattern[str], RouteInfo]]:
        """The routes that can match ``path``, in route order: those under its first two segments
        (``/api/flow-runs``), and those whose first two segments hold a parameter. Each request is
        matched here before routing, so this keeps it to a handful of regexes instead of all of them."""
        if self._by_prefix is None:
            index: dict[str, list[tuple[int, re.Pattern[str], RouteInfo]]] = {}
            anywhere: list[tuple[int, re.Pattern[str], RouteInfo]] = []
            for order, (regex, info) in enumerate(self.routes()):
                prefix = _prefix(info.template)
                (anywhere if "{" in prefix else index.setdefault(prefix, [])).append((order, regex, info))
            self._by_prefix = {
                prefix: [(regex, info) for _, regex, info in sorted([*entries, *anywhere], key=lambda e: e[0])]
                for prefix, entries in index.items()
            }
            self._anywhere = [(regex, info) for _, regex, info in anywhere]
        return self._by_prefix.get(_prefix(path), self._anywhere)

    def match(self, method: str, path: str) -> tuple[RouteInfo | None, bool]:
        """The route serving ``method path`` and whether the method matched too (False: a 405)."""
        by_path = None
        for regex, info in self.candidates(path):
            if regex.match(path):
                if not info.methods or method in info.methods:
                    return info, True
                by_path = by_path or info
        return by_path, False


def _prefix(path: str) -> str:
    """The first two segments of a path or template: ``/api/flow-runs`` of ``/api/flow-runs/{id}/set-state``."""
    return "/".join(path.split("/", 3)[:3])


class SecurityMiddleware:
    """Refuses ``/api`` requests that fail authentication, authorization or CSRF, before routing."""

    def __init__(self, app: ASGIApp, *, csrf_protection: bool) -> None:
        self.app = app
        self.csrf_protection = csrf_protection

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        refusal = await self._refusal(scope) if _guarded(scope) else None
        if refusal is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            code = 1011 if refusal.status >= 500 else 1008  # internal error / policy violation
            await WebSocketClose(code=code, reason=refusal.detail[:120])(scope, receive, send)
        else:
            response = problem_response(refusal.status, refusal.detail, kind=refusal.kind, headers=refusal.headers)
            await response(scope, receive, send)

    async def _refusal(self, scope: AsgiScope) -> Problem | None:
        """Why the request is refused, or None; leaves the caller in the scope for the routes."""
        connection = HTTPConnection(scope)
        try:
            caller = await authenticate(connection)
        except Problem as problem:
            return problem
        except Exception:
            logger.exception("could not authenticate %s %s", scope.get("method", "WEBSOCKET"), scope["path"])
            return Problem(500, "the server hit an unexpected error; its log has the details")
        scope[CALLER_SCOPE_KEY] = caller
        if caller.scope is not Scope.ADMIN:  # an admin (everyone, with auth off) may call every route
            route, method_matches = RouteTable.of(scope["app"]).match(scope.get("method", "GET"), route_path(scope))
            needed = route.scope if route is not None and method_matches else None
            if needed is not None and not caller.scope.allows(needed):
                return forbidden(caller, needed)
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            # PostgreSQL cannot store or compare text with NUL in it: refuse it here rather than fail with 500.
            return Problem(400, "the URL must not contain the NUL character (%00)", kind="bad-request")
        unsafe = scope["type"] == "http" and scope["method"] not in SAFE_METHODS
        if self.csrf_protection and unsafe and not caller.authenticated and not _csrf_token_is_valid(connection):
            return Problem(
                403,
                f"missing or invalid CSRF token: get one from GET /api/csrf-token?client=<id> and send it in "
                f"the {TOKEN_HEADER} header with the same id in {CLIENT_HEADER}",
                kind="csrf",
            )
        return None


def _guarded(scope: AsgiScope) -> bool:
    if scope["type"] not in ("http", "websocket"):
        return False
    path = route_path(scope)
    return (path == API_PREFIX or path.startswith(API_PREFIX + "/")) and path not in OPEN_PATHS


def _csrf_token_is_valid(connection: HTTPConnection) -> bool:
    token = connection.headers.get(TOKEN_HEADER, "")
    client = connection.headers.get(CLIENT_HEADER, "")
    if not token or not client:
        return False
    secret: bytes = connection.app.state.csrf_secret
    return token_is_valid(secret, client, token)
