"""Named concurrency limits and the leased slots taken against them."""

from __future__ import annotations

from uuid import UUID

from pydantic import Field

from headrace.schemas.base import ActionModel, UtcDatetime, WireModel


class ConcurrencyLimitCreate(ActionModel):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")
    limit: int = Field(ge=0)
    active: bool = True


class ConcurrencyLimitUpdate(ActionModel):
    limit: int | None = Field(default=None, ge=0)
    active: bool | None = None


class ConcurrencyLimit(WireModel):
    id: UUID
    name: str
    limit: int
    active: bool
    slots_in_use: int
    created: UtcDatetime
    updated: UtcDatetime


class SlotAcquire(ActionModel):
    """Take one slot of each named limit, all or none, for ``lease_seconds`` unless renewed or released."""

    names: list[str] = Field(min_length=1)
    holder: str = Field(min_length=1, max_length=200)
    lease_seconds: float = Field(default=300.0, gt=0, le=86_400)


class SlotLease(WireModel):
    id: UUID
    names: list[str]
    holder: str
    expires_at: UtcDatetime


class SlotRenew(ActionModel):
    lease_seconds: float = Field(default=300.0, gt=0, le=86_400)
