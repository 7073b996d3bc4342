"""Routes for variables: create, read, update and delete by name, and filter."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Response

from headrace.schemas.artifacts import Variable, VariableCreate, VariableFilter, VariableUpdate
from headrace.schemas.base import Page
from headrace.server.api.bodies import TOO_LARGE_RESPONSE, bounded_body_route
from headrace.server.api.dependencies import DatabaseDep, Read, Write
from headrace.server.operations import variables as operations
from headrace.server.problems import PROBLEM_RESPONSES

MAX_VARIABLE_BODY_BYTES = 256 * 1024
"""Room for a value at its largest, its tags and JSON escaping; anything beyond is refused unread."""

router = APIRouter(
    prefix="/variables",
    tags=["variables"],
    responses={**PROBLEM_RESPONSES, **TOO_LARGE_RESPONSE},
    route_class=bounded_body_route(MAX_VARIABLE_BODY_BYTES),
)

Name = Annotated[str, Path(max_length=200, description="The variable's name.")]


@router.post("", status_code=201, summary="Create a variable; 409 if the name is taken.")
async def create_variable(database: DatabaseDep, _: Write, variable: VariableCreate) -> Variable:
    return await operations.create_variable(database, variable)


@router.post("/filter", summary="Variables by name and tags, in pages.")
async def filter_variables(
    database: DatabaseDep, _: Read, variable_filter: Annotated[VariableFilter, Body(default_factory=VariableFilter)]
) -> Page[Variable]:
    return await operations.read_variables(database, variable_filter)


@router.get("/name/{name}", summary="One variable by name.")
async def read_variable(database: DatabaseDep, _: Read, name: Name) -> Variable:
    return await operations.read_variable(database, name)


@router.patch("/name/{name}", summary="Change a variable's value or tags; fields left out stay as they are.")
async def update_variable(database: DatabaseDep, _: Write, name: Name, update: VariableUpdate) -> Variable:
    return await operations.update_variable(database, name, update)


@router.delete("/name/{name}", status_code=204, summary="Delete a variable.")
async def delete_variable(database: DatabaseDep, _: Write, name: Name) -> Response:
    await operations.delete_variable(database, name)
    return Response(status_code=204)
