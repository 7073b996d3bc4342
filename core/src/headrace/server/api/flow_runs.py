"""Routes for flow runs: create, read, filter, delete, propose a state (``set-state``), state history."""

from __future__ import annotations

import math
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Request, Response, status

from headrace.schemas.auth import Scope
from headrace.schemas.base import Page
from headrace.schemas.runs import FlowRun, FlowRunCreate, FlowRunFilter, OrchestrationResult, SetStateRequest
from headrace.schemas.states import State
from headrace.server.api.bodies import JsonBody, json_response
from headrace.server.api.dependencies import DatabaseDep, Read, Write
from headrace.server.api.direct import direct
from headrace.server.operations import flow_runs as operations
from headrace.server.problems import PROBLEM_RESPONSES, Problem

router = APIRouter(prefix="/flow-runs", tags=["flow-runs"], responses=PROBLEM_RESPONSES)

# The two busiest routes read their bodies and write their answers themselves (see api.bodies), and are
# dispatched directly (see api.direct).
create_body = JsonBody[FlowRunCreate](FlowRunCreate)
set_state_body = JsonBody[SetStateRequest](SetStateRequest)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=FlowRun,
    summary="Create a flow run; its initial state (Scheduled now by default) goes through the rules.",
    responses={
        200: {
            "model": FlowRun,
            "description": "A run with this id, or with this idempotency key for the flow, existed: "
            "it is returned unchanged.",
        }
    },
)
@direct
@create_body
async def create_flow_run(database: DatabaseDep, _: Write, request: Request) -> Response:
    flow_run, created = await operations.create_flow_run(database, await create_body.read(request))
    return json_response(flow_run, status.HTTP_201_CREATED if created else status.HTTP_200_OK)


@router.post("/filter", summary="Flow runs by flow, state, tags, name and time, sorted, in pages.")
async def filter_flow_runs(
    database: DatabaseDep, _: Read, query: Annotated[FlowRunFilter, Body(default_factory=FlowRunFilter)]
) -> Page[FlowRun]:
    return await operations.filter_flow_runs(database, query)


@router.get("/{flow_run_id}", summary="A flow run by id, with its current state.")
async def read_flow_run(database: DatabaseDep, _: Read, flow_run_id: UUID) -> FlowRun:
    return await operations.read_flow_run(database, flow_run_id)


@router.get("/{flow_run_id}/states", summary="The run's state history, oldest first.")
async def read_flow_run_states(database: DatabaseDep, _: Read, flow_run_id: UUID) -> list[State]:
    return await operations.read_flow_run_states(database, flow_run_id)


@router.post(
    "/{flow_run_id}/set-state",
    status_code=status.HTTP_201_CREATED,
    response_model=OrchestrationResult,
    summary="Propose a state; the orchestration rules accept, reject, delay or abort it, and say why.",
    description="201 when a state was written (the proposal, possibly modified by the rules, or a state a "
    "rule chose instead), 200 when nothing changed (rejected, wait, abort, or an already applied "
    "proposal). A WAIT, and a claim that must wait for a concurrency slot, carry `retry_after` and a "
    "`Retry-After` header. `force` (an admin key) writes the state without consulting the rules.",
    responses={200: {"model": OrchestrationResult, "description": "Nothing was written; `reason` says why."}},
)
@direct
@set_state_body
async def set_flow_run_state(database: DatabaseDep, caller: Write, flow_run_id: UUID, request: Request) -> Response:
    body = await set_state_body.read(request)
    if body.force and not caller.scope.allows(Scope.ADMIN):
        raise Problem(
            403, "force skips the orchestration rules, so it needs an API key with scope 'admin'", kind="forbidden"
        )
    result, written = await operations.set_flow_run_state(database, flow_run_id, body)
    headers = None if result.retry_after is None else {"Retry-After": str(max(0, math.ceil(result.retry_after)))}
    return json_response(result, status.HTTP_201_CREATED if written else status.HTTP_200_OK, headers)


@router.delete(
    "/{flow_run_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a flow run with its task runs and state histories; its concurrency slots are freed.",
)
async def delete_flow_run(database: DatabaseDep, _: Write, flow_run_id: UUID) -> Response:
    await operations.delete_flow_run(database, flow_run_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
