"""Routes for logs: bulk ingest and filtered reads."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request, Response

from headrace.schemas.base import Page
from headrace.schemas.fast_records import FastList
from headrace.schemas.logs import Log, LogCreate, LogFilter
from headrace.schemas.runs import IngestResult
from headrace.server.api.bodies import TOO_LARGE_RESPONSE, JsonBody, bounded_body_route, json_response
from headrace.server.api.dependencies import DatabaseDep, Read, Write
from headrace.server.operations import logs as operations
from headrace.server.problems import PROBLEM_RESPONSES

MAX_INGEST_BODY_BYTES = 32 * 1024 * 1024
"""The largest ingest request body (the SDK ships batches of at most 4 MB by default)."""

router = APIRouter(
    prefix="/logs",
    tags=["logs"],
    responses={**PROBLEM_RESPONSES, **TOO_LARGE_RESPONSE},
    route_class=bounded_body_route(MAX_INGEST_BODY_BYTES),
)

ingest_body = JsonBody[list[LogCreate]](
    Annotated[
        list[LogCreate],
        Body(
            max_length=operations.MAX_LOGS_PER_REQUEST,
            description=f"At most {operations.MAX_LOGS_PER_REQUEST:,} lines and "
            f"{MAX_INGEST_BODY_BYTES // (1024 * 1024)} MiB per request. Lines whose id is already stored "
            "are counted as duplicates and left as they are.",
        ),
    ],
    name="logs",
    one_step=False,
    fast=FastList("logs", max_length=operations.MAX_LOGS_PER_REQUEST),
)
"""Read by the route itself, parsed then validated as FastAPI would (see headrace.server.api.bodies)."""


@router.post(
    "",
    status_code=201,
    response_model=IngestResult,
    summary="Store a batch of log lines, idempotently; answered after the commit.",
)
@ingest_body
async def ingest_logs(database: DatabaseDep, _: Write, request: Request) -> Response:
    return json_response(await operations.ingest_logs(database, await ingest_body.read(request)), 201)


@router.post("/filter", summary="Log lines by run, level and time, in pages.")
async def filter_logs(
    database: DatabaseDep, _: Read, log_filter: Annotated[LogFilter, Body(default_factory=LogFilter)]
) -> Page[Log]:
    return await operations.read_logs(database, log_filter)
