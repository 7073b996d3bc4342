"""Routes for flows: create (or find) by name, read by id or name, filter, delete."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Response, status

from headrace.schemas.base import Page
from headrace.schemas.runs import Flow, FlowCreate, FlowFilter
from headrace.server.api.dependencies import DatabaseDep, Read, Write
from headrace.server.operations import flows as operations
from headrace.server.problems import PROBLEM_RESPONSES

router = APIRouter(prefix="/flows", tags=["flows"], responses=PROBLEM_RESPONSES)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a flow, or find the one with this name (200, unchanged).",
    responses={200: {"model": Flow, "description": "A flow with this name existed; it is returned unchanged."}},
)
async def create_flow(database: DatabaseDep, _: Write, body: FlowCreate, response: Response) -> Flow:
    flow, created = await operations.create_flow(database, body)
    if not created:
        response.status_code = status.HTTP_200_OK
    return flow


@router.post("/filter", summary="Flows by name and tags, in pages (sorted by name).")
async def filter_flows(
    database: DatabaseDep, _: Read, query: Annotated[FlowFilter, Body(default_factory=FlowFilter)]
) -> Page[Flow]:
    return await operations.filter_flows(database, query)


@router.get("/name/{name:path}", summary="The flow with this name (which may contain slashes).")
async def read_flow_by_name(database: DatabaseDep, _: Read, name: str) -> Flow:
    return await operations.read_flow_by_name(database, name)


@router.get("/{flow_id}", summary="A flow by id.")
async def read_flow(database: DatabaseDep, _: Read, flow_id: UUID) -> Flow:
    return await operations.read_flow(database, flow_id)


@router.delete(
    "/{flow_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a flow with its runs, their task runs and state histories.",
)
async def delete_flow(database: DatabaseDep, _: Write, flow_id: UUID) -> Response:
    await operations.delete_flow(database, flow_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
