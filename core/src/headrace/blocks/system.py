"""The built-in general-purpose blocks: a secret, a JSON value, a string and a date-time.

They hold one ``value`` each and are what a flow loads for a single setting that should live outside
its code: ``Secret.load("db-password").get()``, ``JSON.load("thresholds").value``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import JsonValue, SecretStr, field_validator
from pydantic import Secret as SecretValue

from headrace.blocks.core import Block

__all__ = ["JSON", "DateTime", "Secret", "String"]

_DOCS = "https://headrace.dev/docs/blocks#built-in-blocks"


class Secret(Block):
    """A secret value: a string such as a password or token, or any JSON value, masked everywhere.

    Encrypted at rest on the server, shown as '********' in listings, logs and reprs; ``get()`` returns it.
    """

    block_documentation_url: ClassVar[str | None] = _DOCS
    block_code_example: ClassVar[str | None] = (
        'from headrace.blocks import Secret\n\npassword = Secret.load("db-password").get()'
    )

    value: SecretValue[JsonValue]

    @field_validator("value", mode="before")
    @classmethod
    def _unwrap_secret_str(cls, value: Any) -> Any:
        return value.get_secret_value() if isinstance(value, SecretStr) else value

    def get(self) -> JsonValue:
        """The secret value in clear."""
        return self.value.get_secret_value()


class JSON(Block):
    """Any JSON value: an object, a list, a number, a string, a boolean or null."""

    block_type_name: ClassVar[str] = "JSON"
    block_documentation_url: ClassVar[str | None] = _DOCS
    block_code_example: ClassVar[str | None] = (
        'from headrace.blocks import JSON\n\nthresholds = JSON.load("thresholds").value'
    )

    value: JsonValue


class String(Block):
    """A string, such as a bucket name or a URL that should live outside the flow's code."""

    block_documentation_url: ClassVar[str | None] = _DOCS
    block_code_example: ClassVar[str | None] = (
        'from headrace.blocks import String\n\nbucket = String.load("bucket").value'
    )

    value: str


class DateTime(Block):
    """A date and time (ISO 8601), such as a cut-off date for a backfill."""

    block_type_name: ClassVar[str] = "Date Time"
    block_documentation_url: ClassVar[str | None] = _DOCS
    block_code_example: ClassVar[str | None] = (
        'from headrace.blocks import DateTime\n\ncutoff = DateTime.load("backfill-cutoff").value'
    )

    value: datetime
