"""Named concurrency limits and the leased slots taken against them."""

from __future__ import annotations

from uuid import UUID

from pydantic import Field

from headrace.schemas.base import MAX_INTEGER, ActionModel, PaginationFilter, UtcDatetime, WireModel

LIMIT_NAME_PATTERN = r"^[A-Za-z0-9_.:-]+$"


class ConcurrencyLimitCreate(ActionModel):
    name: str = Field(min_length=1, max_length=200, pattern=LIMIT_NAME_PATTERN)
    limit: int = Field(ge=0, le=MAX_INTEGER, description="Slots that may be held at once; 0 lets nothing through.")
    active: bool = Field(default=True, description="An inactive limit records slots but never refuses one.")


class ConcurrencyLimitUpdate(ActionModel):
    limit: int | None = Field(default=None, ge=0, le=MAX_INTEGER)
    active: bool | None = None


class ConcurrencyLimit(WireModel):
    id: UUID
    name: str
    limit: int
    active: bool
    slots_in_use: int = Field(description="Slots held now (unexpired leases).")
    created: UtcDatetime
    updated: UtcDatetime


class ConcurrencyLimitFilter(PaginationFilter):
    names: list[str] = Field(default_factory=list, description="Exactly these names.")
    active: bool | None = None


class SlotAcquire(ActionModel):
    """Take one slot of each named limit, all or none, for ``lease_seconds`` unless renewed or released."""

    names: list[str] = Field(min_length=1, max_length=100)
    holder: str = Field(min_length=1, max_length=200, description="Who holds the slots (a run id, a worker).")
    lease_seconds: float = Field(default=300.0, gt=0, le=86_400)
    lease_id: UUID | None = Field(
        default=None,
        description="A client-generated lease id: sending the same acquisition again returns the lease it "
        "already got instead of taking more slots (safe retries).",
    )


class SlotLease(WireModel):
    id: UUID
    names: list[str]
    holder: str
    expires_at: UtcDatetime


class SlotRenew(ActionModel):
    lease_seconds: float = Field(default=300.0, gt=0, le=86_400)
