"""Conventions shared by every wire model: strict field names, UTC timestamps, pagination."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from headrace.schemas.states import utcnow

__all__ = ["MAX_PAGE_SIZE", "ActionModel", "Page", "PaginationFilter", "UtcDatetime", "WireModel", "utcnow"]

MAX_PAGE_SIZE = 200


def _as_utc(value: datetime) -> datetime:
    """Naive timestamps are taken as UTC; aware ones are converted, so comparisons never mix zones."""
    from datetime import timezone

    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]


class WireModel(BaseModel):
    """A response model: what the server says about a resource."""

    model_config = ConfigDict(from_attributes=True)


class ActionModel(BaseModel):
    """A request body: unknown fields are an error, so that a typo is never silently ignored."""

    model_config = ConfigDict(extra="forbid")


class PaginationFilter(ActionModel):
    limit: int = Field(default=50, ge=1, le=MAX_PAGE_SIZE, description="Items per page.")
    offset: int = Field(default=0, ge=0, description="Items to skip.")


T = TypeVar("T")


class Page(WireModel, Generic[T]):
    """One page of results; ``total`` counts every match, so clients know how many pages there are."""

    items: list[T]
    total: int
    limit: int
    offset: int
