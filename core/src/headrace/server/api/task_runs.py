"""Routes for task runs: bulk ingest of state records, read, filter, state history."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Request, Response, status

from headrace.schemas.base import Page
from headrace.schemas.fast_records import FastList
from headrace.schemas.runs import MAX_INGEST_RECORDS, IngestResult, TaskRun, TaskRunFilter, TaskRunRecord
from headrace.schemas.states import State
from headrace.server.api.bodies import JsonBody, bounded_body_route, json_response
from headrace.server.api.dependencies import DatabaseDep, Read, Write
from headrace.server.operations import task_runs as operations
from headrace.server.problems import PROBLEM_RESPONSES

MAX_INGEST_BODY_BYTES = 64 * 1024 * 1024
"""The largest request body this router takes (an ingest batch of MAX_INGEST_RECORDS records fits)."""

router = APIRouter(
    prefix="/task-runs",
    tags=["task-runs"],
    responses=PROBLEM_RESPONSES,
    route_class=bounded_body_route(MAX_INGEST_BODY_BYTES),
)

ingest_body = JsonBody[list[TaskRunRecord]](
    Annotated[
        list[TaskRunRecord],
        Body(
            max_length=MAX_INGEST_RECORDS,
            description=f"At most {MAX_INGEST_RECORDS:,} records and "
            f"{MAX_INGEST_BODY_BYTES // (1024 * 1024)} MiB per request.",
        ),
    ],
    name="records",
    one_step=False,
    fast=FastList("task_runs", max_length=MAX_INGEST_RECORDS),
)
"""Read by the route itself, parsed then validated as FastAPI would (see headrace.server.api.bodies)."""


@router.post(
    "/ingest",
    status_code=status.HTTP_201_CREATED,
    response_model=IngestResult,
    summary="Store a batch of task-run state records, idempotently, in one transaction; answered after commit.",
    description="Each record is one state change of one task run, identified by `state.id`. Task runs are "
    "created on their first record; a run's current state only ever moves forward (by state timestamp), "
    "so records may arrive out of order, and any number of times. Records already stored count as "
    "`duplicates`; records about a flow run that no longer exists are `skipped`. Both are acknowledged.",
    responses={413: PROBLEM_RESPONSES[422] | {"description": "Content Too Large"}},
)
@ingest_body
async def ingest_task_run_records(database: DatabaseDep, _: Write, request: Request) -> Response:
    result = await operations.ingest_task_run_records(database, await ingest_body.read(request))
    return json_response(result, status.HTTP_201_CREATED)


@router.post("/filter", summary="Task runs by flow run, state, task key, tags and name, sorted, in pages.")
async def filter_task_runs(
    database: DatabaseDep, _: Read, query: Annotated[TaskRunFilter, Body(default_factory=TaskRunFilter)]
) -> Page[TaskRun]:
    return await operations.filter_task_runs(database, query)


@router.get("/{task_run_id}", summary="A task run by id, with its current state.")
async def read_task_run(database: DatabaseDep, _: Read, task_run_id: UUID) -> TaskRun:
    return await operations.read_task_run(database, task_run_id)


@router.get("/{task_run_id}/states", summary="The task run's state history, oldest first.")
async def read_task_run_states(database: DatabaseDep, _: Read, task_run_id: UUID) -> list[State]:
    return await operations.read_task_run_states(database, task_run_id)
