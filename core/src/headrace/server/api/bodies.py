"""A bound on request bodies, per router, answered with a 413 problem document before the body is read.

``APIRouter(route_class=bounded_body_route(1024 * 1024))`` refuses larger bodies: at once when the
``Content-Length`` says so, otherwise (a chunked body) as soon as the bytes read pass the bound. The
body is never held in memory beyond the bound. (Starlette's own ``max_body_size`` answers in plain
text, not as a problem document, hence this.)
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.types import Message

from headrace.server.problems import PROBLEM_RESPONSES, problem_response

__all__ = ["TOO_LARGE_RESPONSE", "bounded_body_route"]

TOO_LARGE_RESPONSE: dict[int | str, dict[str, Any]] = {
    413: {**PROBLEM_RESPONSES[422], "description": "The request body is larger than this endpoint takes."}
}
"""Add to the ``responses`` of a router using :func:`bounded_body_route`, so its OpenAPI document says so."""


def _too_large(limit: int) -> str:
    return f"the request body is larger than this endpoint takes ({limit:,} bytes at most)"


def bounded_body_route(max_bytes: int) -> type[APIRoute]:
    """An :class:`APIRoute` class whose routes refuse request bodies over ``max_bytes``."""

    class BoundedBodyRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def bounded(request: Request) -> Response:
                declared = request.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    return problem_response(413, _too_large(max_bytes), kind="content-too-large")
                received = 0
                receive = request.receive

                async def counting() -> Message:
                    nonlocal received
                    message = await receive()
                    received += len(message.get("body", b""))
                    if received > max_bytes:
                        # An HTTPException passes through FastAPI's body reading to the problem handlers.
                        raise HTTPException(413, _too_large(max_bytes))
                    return message

                return await handler(Request(request.scope, counting))

            return bounded

    BoundedBodyRoute.__name__ = f"BoundedBodyRoute{max_bytes}"
    return BoundedBodyRoute
