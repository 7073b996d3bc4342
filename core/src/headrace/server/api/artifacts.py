"""Routes for artifacts: create (keyed ones are versioned), read by id or key, list versions, filter, delete."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Path, Query, Response

from headrace.schemas.artifacts import Artifact, ArtifactCreate, ArtifactFilter
from headrace.schemas.base import MAX_INTEGER, MAX_PAGE_SIZE, Page
from headrace.server.api.bodies import TOO_LARGE_RESPONSE, bounded_body_route
from headrace.server.api.dependencies import DatabaseDep, Read, Write
from headrace.server.operations import artifacts as operations
from headrace.server.problems import PROBLEM_RESPONSES

MAX_ARTIFACT_BODY_BYTES = 8 * 1024 * 1024
"""The largest artifact request: artifacts are for people to read, not a data store."""

router = APIRouter(
    prefix="/artifacts",
    tags=["artifacts"],
    responses={**PROBLEM_RESPONSES, **TOO_LARGE_RESPONSE},
    route_class=bounded_body_route(MAX_ARTIFACT_BODY_BYTES),
)

Key = Annotated[str, Path(max_length=200, description="The artifact key.")]


@router.post("", status_code=201, summary="Create an artifact; a keyed one becomes the key's latest version.")
async def create_artifact(database: DatabaseDep, _: Write, artifact: ArtifactCreate) -> Artifact:
    return await operations.create_artifact(database, artifact)


@router.post("/filter", summary="Artifacts by key, run and type, in pages.")
async def filter_artifacts(
    database: DatabaseDep, _: Read, artifact_filter: Annotated[ArtifactFilter, Body(default_factory=ArtifactFilter)]
) -> Page[Artifact]:
    return await operations.read_artifacts(database, artifact_filter)


@router.get("/key/{key}", summary="The latest version of a keyed artifact.")
async def read_latest_artifact(database: DatabaseDep, _: Read, key: Key) -> Artifact:
    return await operations.read_latest_artifact(database, key)


@router.get("/key/{key}/versions", summary="Every version of a keyed artifact, newest first.")
async def read_artifact_versions(
    database: DatabaseDep,
    _: Read,
    key: Key,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_INTEGER)] = 0,
) -> Page[Artifact]:
    return await operations.read_artifact_versions(database, key, limit=limit, offset=offset)


@router.get("/{artifact_id}", summary="One artifact version by id.")
async def read_artifact(database: DatabaseDep, _: Read, artifact_id: UUID) -> Artifact:
    return await operations.read_artifact(database, artifact_id)


@router.delete("/{artifact_id}", status_code=204, summary="Delete one artifact version.")
async def delete_artifact(database: DatabaseDep, _: Write, artifact_id: UUID) -> Response:
    await operations.delete_artifact(database, artifact_id)
    return Response(status_code=204)
