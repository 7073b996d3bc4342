"""API keys: scopes, and what the server returns about a key (the secret only once, at creation)."""

from __future__ import annotations

import enum
from uuid import UUID

from pydantic import Field

from headrace.schemas.base import ActionModel, UtcDatetime, WireModel


class Scope(str, enum.Enum):
    """Each scope includes the ones before it: admin can write, write can read."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    def allows(self, needed: Scope) -> bool:
        order = [Scope.READ, Scope.WRITE, Scope.ADMIN]
        return order.index(self) >= order.index(needed)


class ApiKeyCreate(ActionModel):
    name: str = Field(min_length=1, max_length=200)
    scope: Scope = Scope.READ


class ApiKey(WireModel):
    id: UUID
    name: str
    scope: Scope
    created: UtcDatetime
    last_used: UtcDatetime | None
    revoked: bool


class ApiKeyCreated(ApiKey):
    key: str = Field(description="The key itself. Shown once; the server keeps only its hash.")
