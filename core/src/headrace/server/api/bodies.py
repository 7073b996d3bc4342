"""Request bodies: a bound per router (413 before reading), and a cheaper way to read hot routes' bodies.

``APIRouter(route_class=bounded_body_route(1024 * 1024))`` refuses larger bodies: at once when the
``Content-Length`` says so, otherwise (a chunked body) as soon as the bytes read pass the bound. The
body is never held in memory beyond the bound. (Starlette's own ``max_body_size`` answers in plain
text, not as a problem document, hence this.)

:class:`JsonBody` reads the hot routes' bodies (create a flow run, propose a state, ingest task-run
records and logs) without FastAPI's body machinery (the small models in one step, ``validate_json`` on
the raw bytes); with :func:`json_response` for the answer (no validation of the route's own result
before serializing it), it trims the per-request CPU these routes spend outside the database. A body
that fails is read again the way FastAPI reads it, so the 422 problem document is the same. Such a
route declares no body parameter, so :func:`document_json_bodies` writes the request body into the
OpenAPI document, exactly as FastAPI would have for the parameter.
"""

from __future__ import annotations

import email.message
import inspect
import json
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Generic, TypeVar, cast

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.exceptions import HTTPException
from starlette.types import Message

from headrace.schemas.base import TEXT_CHECKED, plain_text
from headrace.schemas.fast_records import FastList
from headrace.server.problems import PROBLEM_RESPONSES, problem_response

__all__ = ["TOO_LARGE_RESPONSE", "JsonBody", "bounded_body_route", "document_json_bodies", "json_response"]

T = TypeVar("T")
JSON_MEDIA_TYPE = "application/json"
_TEXT_CHECKED = {TEXT_CHECKED: True}  # the raw body was searched for unstorable text (schemas.base.plain_text)

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


def _is_json(content_type: str | None) -> bool:
    """Whether FastAPI would read a body of this content type as JSON (no content type: it would not)."""
    if not content_type:
        return False
    if content_type.startswith(JSON_MEDIA_TYPE):
        return True
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


class JsonBody(Generic[T]):
    """A route's JSON request body of type ``annotation``, read with :meth:`read` (see the module docs).

    ``annotation`` is what the body parameter would be annotated with, ``Body(...)`` metadata included
    (its constraints are checked, its description documented); ``name`` is that parameter's name.
    ``one_step=False`` parses the JSON first and validates the Python objects, as FastAPI does: for
    lists of records that is faster than pydantic's ``validate_json`` (measured: ~12% for 500 task-run
    records), while for one small model ``validate_json`` is the faster.
    ``fast`` (record lists): a reader that takes a plain payload with validator-free copies of the wire
    models (:mod:`headrace.schemas.fast_records`), a further ~20% per record; it gives way to the
    ordinary reading for anything else, so answers and errors stay the same.
    """

    def __init__(
        self, annotation: Any, *, name: str = "body", one_step: bool = True, fast: FastList | None = None
    ) -> None:
        self.annotation = annotation
        self.name = name
        self.one_step = one_step
        self.fast = fast
        self._adapter: TypeAdapter[T] = TypeAdapter(annotation)

    def __call__(self, endpoint: Callable[..., Any]) -> Callable[..., Any]:
        """Mark ``endpoint`` as reading this body, for :func:`document_json_bodies`."""
        endpoint.__dict__["json_body"] = self
        return endpoint

    async def read(self, request: Request) -> T:
        raw = await request.body()
        content_type = request.headers.get("content-type")
        if self.fast is not None and raw and _is_json(content_type):
            records = self.fast.read(raw)
            if records is not None:
                return cast(T, records)  # the fast models have the wire models' fields
        if self.one_step and raw and _is_json(content_type):
            try:
                return self._adapter.validate_json(raw, context=_TEXT_CHECKED if plain_text(raw) else None)
            except ValidationError:
                pass  # read again as FastAPI does, for the same answer (and the same lax rules)
        return self._read_as_fastapi_does(raw, content_type, checked=not self.one_step and plain_text(raw))

    def _read_as_fastapi_does(self, raw: bytes, content_type: str | None, *, checked: bool = False) -> T:
        if not raw:
            raise RequestValidationError(
                [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
            )
        value: Any = raw
        if _is_json(content_type):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                error = {"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error", "input": {}}
                raise RequestValidationError([error | {"ctx": {"error": exc.msg}}], body=exc.doc) from None
            except ValueError:  # not UTF-8 (or UTF-16/32) text
                raise HTTPException(400, "There was an error parsing the body") from None
        try:
            # As FastAPI validates; ``checked``: the raw JSON holds no unstorable text (see read).
            return self._adapter.validate_python(
                value, from_attributes=True, context=_TEXT_CHECKED if checked else None
            )
        except ValidationError as exc:
            errors = [error | {"loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
            raise RequestValidationError(errors, body=value) from None


def json_response(model: BaseModel, status_code: int, headers: dict[str, str] | None = None) -> Response:
    """``model`` as the JSON answer, serialized as FastAPI serializes a ``response_model``."""
    return Response(model.model_dump_json(by_alias=True), status_code, headers, media_type=JSON_MEDIA_TYPE)


def document_json_bodies(app: FastAPI) -> None:
    """Make ``app.openapi()`` describe the request body of every route marked with a :class:`JsonBody`.

    The descriptions come from a FastAPI app that is never served, whose routes declare these bodies as
    parameters: so the document (operation and component schemas) is what FastAPI itself writes.
    """
    routes = [
        (context.path or "", sorted(context.methods or ()), body)
        for context in iter_route_contexts(app.routes)
        if isinstance(body := getattr(context.endpoint, "json_body", None), JsonBody)
    ]
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            _add_bodies(document, routes)
        return app.openapi_schema or build()

    app.openapi = openapi  # type: ignore[method-assign]


def _add_bodies(document: dict[str, Any], routes: Iterable[tuple[str, list[str], JsonBody[Any]]]) -> None:
    shadow = FastAPI()
    for path, methods, body in routes:

        async def declares(**_: Any) -> None:
            """Never called: only its signature, the body parameter as it would be declared, matters."""

        parameter = inspect.Parameter(body.name, inspect.Parameter.KEYWORD_ONLY, annotation=body.annotation)
        declares.__signature__ = inspect.Signature([parameter], return_annotation=None)  # type: ignore[attr-defined]
        shadow.add_api_route(path, declares, methods=methods)
    described = shadow.openapi()
    for path, methods, _ in routes:
        for method in methods:
            operation = document["paths"][path][method.lower()]
            request_body = described["paths"][path][method.lower()]["requestBody"]
            responses = operation.pop("responses")
            operation.update({"requestBody": request_body, "responses": responses})  # FastAPI's order
    # Only the schemas the bodies refer to (the unserved app also documents its default 422 answers).
    available = described.get("components", {}).get("schemas", {})
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    pending = [
        name
        for path, methods, _ in routes
        for method in methods
        for name in _refs(described["paths"][path][method.lower()]["requestBody"])
    ]
    while pending:
        name = pending.pop()
        if name not in schemas and name in available:
            schemas[name] = available[name]
            pending.extend(_refs(available[name]))


def _refs(node: Any) -> Iterable[str]:
    """The names of the component schemas ``node`` refers to."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value.rsplit("/", 1)[-1]
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)
