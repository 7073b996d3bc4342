"""Routes for API keys: create (the key is in the answer, once), list and revoke. Admin scope only.

``headrace server api-key create`` does the same on the database directly: that is how the first
admin key is made on a server that already requires one.
"""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response, status

from headrace.schemas.auth import ApiKey, ApiKeyCreate, ApiKeyCreated
from headrace.server.api.dependencies import Admin, AuthStateDep, DatabaseDep
from headrace.server.operations import api_keys as operations
from headrace.server.problems import PROBLEM_RESPONSES

router = APIRouter(prefix="/api-keys", tags=["api-keys"], responses=PROBLEM_RESPONSES)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key. The answer holds the key itself, shown this once: store it.",
)
async def create_api_key(_: Admin, body: ApiKeyCreate, database: DatabaseDep, auth: AuthStateDep) -> ApiKeyCreated:
    created = await operations.create_api_key(database, body.name, body.scope)
    auth.forget()  # the first key switches auth on: at once on this replica
    return created


@router.get("", summary="Every API key, revoked ones included (never the keys nor their hashes).")
async def list_api_keys(_: Admin, database: DatabaseDep) -> list[ApiKey]:
    return await operations.list_api_keys(database)


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an API key. Revoking a revoked key is not an error.",
)
async def revoke_api_key(_: Admin, key_id: UUID, database: DatabaseDep, auth: AuthStateDep) -> Response:
    await operations.revoke_api_key(database, key_id)
    auth.forget()  # this replica refuses the key at once; others within KEY_CACHE_SECONDS
    return Response(status_code=status.HTTP_204_NO_CONTENT)
