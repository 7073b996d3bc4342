"""Direct dispatch for the busiest routes: found with one lookup and called without FastAPI's routing layers.

Why: for a request to ``POST /api/flow-runs/{id}/set-state``, FastAPI walked every included router
(twice: once to pick the router, once inside it) and solved the route's dependencies with its general
machinery; together that cost more server CPU than the transition's own database work. A route marked
with :func:`direct` is instead matched by :class:`DirectRoutes`, which sits where the router sits (inside
the exception handlers and every middleware, so authentication, CSRF, metrics and the problem documents
are unchanged), and called with its arguments built the cheap way:

- ``Request`` parameters get the request;
- path parameters are converted from the path (``UUID`` or ``str``);
- dependencies must be callables of the request alone (``get_database``, the scope guards ``Read``,
  ``Write``, ``Admin``), and are awaited with it: the same code FastAPI would have run.

The route stays an ordinary FastAPI route: the OpenAPI document, the route table the security
middleware reads, and the enumeration in the auth tests see it as before. When a request is not one the
direct path can take exactly as FastAPI would (a path parameter that does not parse, dependency
overrides in place), it goes to FastAPI's router, which answers it (with its 422, for instance).
Marking a route whose parameters the direct path cannot build is an error at the first request.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import TypeAdapter
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from headrace.server.api.dependencies import OPEN_PATHS

__all__ = ["DirectRoutes", "direct", "install_direct_routes"]

_MARK = "headrace_direct_route"
# pydantic's UUID rules, as FastAPI applies them to path parameters (the stdlib's UUID() takes more
# spellings, such as "{...}" and "urn:uuid:...", that FastAPI answers with 422).
_CONVERTERS: dict[Any, Callable[[str], Any]] = {UUID: TypeAdapter(UUID).validate_python, str: str}

Endpoint = Callable[..., Awaitable[Response]]
Argument = Callable[[Request], Awaitable[Any] | Any]


def direct(endpoint: Endpoint) -> Endpoint:
    """Mark a route's endpoint for direct dispatch (it must return a :class:`Response`)."""
    setattr(endpoint, _MARK, True)
    return endpoint


class _NotDirect(Exception):
    """This request must take FastAPI's own path (a path parameter that does not parse, for instance)."""


@dataclass(frozen=True)
class _Route:
    path: str
    regex: re.Pattern[str]
    methods: frozenset[str]
    route: APIRoute
    endpoint: Endpoint
    arguments: tuple[tuple[str, str, Any], ...]  # (parameter, kind, detail)

    async def call(self, request: Request) -> Response:
        kwargs: dict[str, Any] = {}
        for name, kind, detail in self.arguments:
            if kind == "request":
                kwargs[name] = request
            elif kind == "path":
                try:
                    kwargs[name] = detail(request.path_params[name])
                except (ValueError, KeyError):  # pydantic's ValidationError is a ValueError
                    raise _NotDirect from None
            else:
                kwargs[name] = await detail(request)
        return await self.endpoint(**kwargs)


def _arguments(route: APIRoute, path: str) -> tuple[tuple[str, str, Any], ...]:
    """How to build each parameter of ``route``'s endpoint; ``TypeError`` if the direct path cannot."""
    dependant = route.dependant
    where = f"direct route {path}"
    if dependant.query_params or dependant.header_params or dependant.cookie_params or dependant.body_params:
        raise TypeError(f"{where}: only Request, path parameters and request-only dependencies are supported")
    path_types = {field.name: field.field_info.annotation for field in dependant.path_params}
    dependencies = {sub.name: sub for sub in dependant.dependencies}
    parameters = inspect.signature(route.endpoint).parameters
    unnamed = [sub.call for sub in dependant.dependencies if sub.name not in parameters]
    if unnamed:
        # Router- or decorator-level dependencies (a scope guard in ``dependencies=[...]``, say) have no
        # parameter: the direct path would skip them, so it refuses the route instead.
        raise TypeError(f"{where}: dependencies without a parameter ({unnamed!r}) are not supported")
    arguments: list[tuple[str, str, Any]] = []
    for name in parameters:
        if name == dependant.request_param_name:
            arguments.append((name, "request", None))
        elif name in path_types:
            converter = _CONVERTERS.get(path_types[name])
            if converter is None:
                raise TypeError(f"{where}: path parameter {name!r} must be a UUID or a str")
            arguments.append((name, "path", converter))
        elif name in dependencies:
            sub = dependencies[name]
            takes_request_only = (
                _is_async(sub.call)
                and not (sub.dependencies or sub.path_params or sub.query_params or sub.header_params)
                and not (sub.cookie_params or sub.body_params)
                and (sub.request_param_name or sub.http_connection_param_name)
            )
            if not takes_request_only:
                raise TypeError(f"{where}: dependency {name!r} must be an async callable of the request alone")
            arguments.append((name, "dependency", sub.call))
        else:
            raise TypeError(f"{where}: cannot build parameter {name!r}")
    return tuple(arguments)


def _is_async(call: Callable[..., Any] | None) -> bool:
    """Whether ``call`` (a function, or an object with an async ``__call__``) returns an awaitable."""
    if call is None:
        return False
    dunder_call = type(call).__dict__.get("__call__")  # an instance with an async __call__ (a ScopeGuard)
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(dunder_call)


class DirectRoutes:
    """The ASGI app in the router's place: marked routes directly, everything else through ``router``."""

    def __init__(self, app: FastAPI, router: ASGIApp) -> None:
        self._app = app
        self._router = router
        self._table: list[_Route] | None = None  # built on first use, see _routes

    def _routes(self) -> list[_Route]:
        """The direct routes, found on first use: walking the routes makes FastAPI build every one of them,
        which start-up should not wait for (the first health check arrives before any other request)."""
        if self._table is None:
            table = []
            for context in iter_route_contexts(self._app.routes):
                route = context.original_route
                if not (isinstance(route, APIRoute) and getattr(route.endpoint, _MARK, False)):
                    continue
                path = context.path or ""
                if type(route) is not APIRoute:
                    raise TypeError(f"direct route {path}: its route class {type(route).__name__} would be bypassed")
                regex, _, _ = compile_path(path)
                methods = frozenset(context.methods or ())
                table.append(_Route(path, regex, methods, route, route.endpoint, _arguments(route, path)))
            self._table = table
        return self._table

    def routes(self) -> list[tuple[str, str]]:
        """``(method, path template)`` of every route dispatched directly."""
        return sorted((method, route.path) for route in self._routes() for method in route.methods)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._app.dependency_overrides and scope["path"] not in OPEN_PATHS:
            found = self._match(scope)
            if found is not None:
                route, path_params = found
                scope["path_params"] = path_params
                scope["route"] = route.route
                scope["endpoint"] = route.endpoint
                try:
                    response = await route.call(Request(scope, receive, send))
                except _NotDirect:
                    pass
                else:
                    await response(scope, receive, send)
                    return
        await self._router(scope, receive, send)

    def _match(self, scope: Scope) -> tuple[_Route, dict[str, str]] | None:
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        method = scope["method"]
        for route in self._routes():
            if method in route.methods:
                match = route.regex.match(path)
                if match is not None:
                    return route, match.groupdict()
        return None


def install_direct_routes(app: FastAPI) -> None:
    """Put a :class:`DirectRoutes` in the router's place in ``app``'s middleware stack, when it is built."""
    build = app.build_middleware_stack

    def build_with_direct_routes() -> ASGIApp:
        stack = build()
        node: Any = stack
        while getattr(node, "app", None) is not app.router:
            node = getattr(node, "app", None)
            if node is None:
                raise RuntimeError("the router is not in the app's middleware stack")
        node.app = DirectRoutes(app, app.router)
        return stack

    app.build_middleware_stack = build_with_direct_routes  # type: ignore[method-assign]
