"""Artifacts (markdown, tables, links) and variables."""

from __future__ import annotations

import enum
import re
from typing import Any
from uuid import UUID

from pydantic import Field, field_validator

from headrace.schemas.base import ActionModel, PaginationFilter, UtcDatetime, WireModel

KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class ArtifactType(str, enum.Enum):
    MARKDOWN = "markdown"
    TABLE = "table"
    LINK = "link"


class ArtifactCreate(ActionModel):
    """A keyed artifact gets a new version each time it is created; the latest version is its current one."""

    key: str | None = Field(default=None, max_length=200, description="Lower-case letters, digits and dashes.")
    type: ArtifactType
    data: Any
    description: str | None = None
    flow_run_id: UUID | None = None
    task_run_id: UUID | None = None

    @field_validator("key")
    @classmethod
    def _check_key(cls, key: str | None) -> str | None:
        if key is not None and not KEY_PATTERN.match(key):
            raise ValueError("artifact keys use lower-case letters, digits and dashes, e.g. 'daily-report'")
        return key


class Artifact(WireModel):
    id: UUID
    key: str | None
    version: int
    type: ArtifactType
    data: Any
    description: str | None
    flow_run_id: UUID | None
    task_run_id: UUID | None
    created: UtcDatetime


class ArtifactFilter(PaginationFilter):
    key: str | None = None
    latest_only: bool = Field(default=False, description="Only the latest version of each key.")
    flow_run_ids: list[UUID] = Field(default_factory=list)
    types: list[ArtifactType] = Field(default_factory=list)


class VariableCreate(ActionModel):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[a-z0-9_-]+$")
    value: Any
    tags: list[str] = Field(default_factory=list)


class VariableUpdate(ActionModel):
    value: Any = None
    tags: list[str] | None = None


class Variable(WireModel):
    id: UUID
    name: str
    value: Any
    tags: list[str]
    created: UtcDatetime
    updated: UtcDatetime
