"""Routes for concurrency limits and the leases that hold their slots."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Path, Response

from headrace.schemas.base import Page
from headrace.schemas.concurrency import (
    ConcurrencyLimit,
    ConcurrencyLimitCreate,
    ConcurrencyLimitFilter,
    ConcurrencyLimitUpdate,
    SlotAcquire,
    SlotLease,
    SlotRenew,
)
from headrace.server.api.bodies import TOO_LARGE_RESPONSE, bounded_body_route
from headrace.server.api.dependencies import DatabaseDep, Read, Write
from headrace.server.operations import concurrency as operations
from headrace.server.problems import PROBLEM_RESPONSES

MAX_CONCURRENCY_BODY_BYTES = 64 * 1024

router = APIRouter(
    prefix="/concurrency-limits",
    tags=["concurrency limits"],
    responses={**PROBLEM_RESPONSES, **TOO_LARGE_RESPONSE},
    route_class=bounded_body_route(MAX_CONCURRENCY_BODY_BYTES),
)

Name = Annotated[str, Path(max_length=200, description="The limit's name.")]

_LOCKED: dict[int | str, dict[str, Any]] = {
    423: {
        **PROBLEM_RESPONSES[409],
        "description": "No free slot in at least one limit; nothing was taken. The problem document's "
        "`limits` lists the full ones and `retry_after` (also the `Retry-After` header) says when to try again.",
    }
}


@router.post("", status_code=201, summary="Create a named concurrency limit; 409 if the name is taken.")
async def create_limit(database: DatabaseDep, _: Write, limit: ConcurrencyLimitCreate) -> ConcurrencyLimit:
    return await operations.create_limit(database, limit)


@router.post("/filter", summary="Concurrency limits by name and activity, in pages, with their slots in use.")
async def filter_limits(
    database: DatabaseDep,
    _: Read,
    limit_filter: Annotated[ConcurrencyLimitFilter, Body(default_factory=ConcurrencyLimitFilter)],
) -> Page[ConcurrencyLimit]:
    return await operations.read_limits(database, limit_filter)


@router.get("/name/{name}", summary="One concurrency limit by name, with its slots in use.")
async def read_limit(database: DatabaseDep, _: Read, name: Name) -> ConcurrencyLimit:
    return await operations.read_limit(database, name)


@router.patch("/name/{name}", summary="Change a limit's size or switch it on or off.")
async def update_limit(database: DatabaseDep, _: Write, name: Name, update: ConcurrencyLimitUpdate) -> ConcurrencyLimit:
    return await operations.update_limit(database, name, update)


@router.delete("/name/{name}", status_code=204, summary="Delete a limit and the slots held in it.")
async def delete_limit(database: DatabaseDep, _: Write, name: Name) -> Response:
    await operations.delete_limit(database, name)
    return Response(status_code=204)


@router.post(
    "/leases",
    status_code=201,
    summary="Take one slot in each named limit, all or none, for a lease that expires unless renewed.",
    responses=_LOCKED,
)
async def acquire_slots(database: DatabaseDep, _: Write, request: SlotAcquire) -> SlotLease:
    return await operations.acquire_slots(database, request)


@router.get("/leases/{lease_id}", summary="A live lease: its limits, holder and expiry.")
async def read_lease(database: DatabaseDep, _: Read, lease_id: UUID) -> SlotLease:
    return await operations.read_lease(database, lease_id)


@router.post("/leases/{lease_id}/renew", summary="Extend a live lease; an expired one cannot be renewed.")
async def renew_lease(
    database: DatabaseDep, _: Write, lease_id: UUID, renew: Annotated[SlotRenew, Body(default_factory=SlotRenew)]
) -> SlotLease:
    return await operations.renew_lease(database, lease_id, renew)


@router.delete("/leases/{lease_id}", status_code=204, summary="Release a lease: its slots are free at once.")
async def release_lease(database: DatabaseDep, _: Write, lease_id: UUID) -> Response:
    await operations.release_lease(database, lease_id)
    return Response(status_code=204)
