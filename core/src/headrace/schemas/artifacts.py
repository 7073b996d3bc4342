"""Artifacts (markdown, tables, links) and variables."""

from __future__ import annotations

import enum
import re
from typing import Any
from uuid import UUID

from pydantic import Field, field_validator, model_validator

from headrace.schemas.base import ActionModel, PaginationFilter, UtcDatetime, WireModel

KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")
URL_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")

MAX_VARIABLE_VALUE_BYTES = 10_240
"""The largest variable value, measured as compact JSON. Larger data belongs in an artifact or a block."""


class ArtifactType(str, enum.Enum):
    MARKDOWN = "markdown"
    TABLE = "table"
    LINK = "link"


def _check_artifact_data(type_: ArtifactType, data: Any) -> None:
    """``markdown``: a string; ``table``: a list of rows, all objects or all lists; ``link``: a URL string."""
    if type_ is ArtifactType.MARKDOWN:
        if not isinstance(data, str):
            raise ValueError("a markdown artifact's data is a string of Markdown")
    elif type_ is ArtifactType.TABLE:
        if not isinstance(data, list):
            raise ValueError("a table artifact's data is a list of rows (objects or lists)")
        if not (all(isinstance(row, dict) for row in data) or all(isinstance(row, list) for row in data)):
            raise ValueError("a table artifact's rows are all objects ({column: value}) or all lists")
    elif not isinstance(data, str) or not URL_PATTERN.match(data):
        raise ValueError("a link artifact's data is a URL string, e.g. 'https://example.com/report'")


class ArtifactCreate(ActionModel):
    """A keyed artifact gets a new version each time it is created; the latest version is its current one."""

    key: str | None = Field(default=None, max_length=200, description="Lower-case letters, digits and dashes.")
    type: ArtifactType
    data: Any = Field(description="markdown: a string; table: a list of rows (objects or lists); link: a URL.")
    description: str | None = None
    flow_run_id: UUID | None = None
    task_run_id: UUID | None = None

    @field_validator("key")
    @classmethod
    def _check_key(cls, key: str | None) -> str | None:
        if key is not None and not KEY_PATTERN.match(key):
            raise ValueError("artifact keys use lower-case letters, digits and dashes, e.g. 'daily-report'")
        return key

    @model_validator(mode="after")
    def _check_data(self) -> ArtifactCreate:
        _check_artifact_data(self.type, self.data)
        return self


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


class ArtifactSort(str, enum.Enum):
    CREATED_DESC = "CREATED_DESC"
    CREATED_ASC = "CREATED_ASC"
    KEY_ASC = "KEY_ASC"


class ArtifactFilter(PaginationFilter):
    key: str | None = None
    latest_only: bool = Field(
        default=False, description="Only keyed artifacts, each at its latest version (unkeyed ones are left out)."
    )
    flow_run_ids: list[UUID] = Field(default_factory=list)
    task_run_ids: list[UUID] = Field(default_factory=list)
    types: list[ArtifactType] = Field(default_factory=list)
    sort: ArtifactSort = ArtifactSort.CREATED_DESC


def _check_variable_value(value: Any) -> Any:
    from pydantic_core import to_json

    size = len(to_json(value))
    if size > MAX_VARIABLE_VALUE_BYTES:
        raise ValueError(
            f"the value is {size:,} bytes as JSON; a variable holds at most {MAX_VARIABLE_VALUE_BYTES:,}: "
            "keep larger data in an artifact or a block"
        )
    return value


class VariableCreate(ActionModel):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[a-z0-9_-]+$")
    value: Any = Field(description=f"Any JSON value up to {MAX_VARIABLE_VALUE_BYTES:,} bytes.")
    tags: list[str] = Field(default_factory=list)

    _value_size = field_validator("value")(_check_variable_value)


class VariableUpdate(ActionModel):
    """Fields left out are unchanged; ``"value": null`` sets the value to null."""

    value: Any = None
    tags: list[str] | None = None

    _value_size = field_validator("value")(_check_variable_value)


class Variable(WireModel):
    id: UUID
    name: str
    value: Any
    tags: list[str]
    created: UtcDatetime
    updated: UtcDatetime


class VariableSort(str, enum.Enum):
    NAME_ASC = "NAME_ASC"
    UPDATED_DESC = "UPDATED_DESC"


class VariableFilter(PaginationFilter):
    name_like: str | None = Field(default=None, description="Names containing this text.")
    names: list[str] = Field(default_factory=list, description="Exactly these names.")
    tags: list[str] = Field(default_factory=list, description="Variables carrying every one of these tags.")
    sort: VariableSort = VariableSort.NAME_ASC
