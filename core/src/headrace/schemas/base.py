"""Conventions shared by every wire model: strict field names, UTC timestamps, pagination."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from headrace.schemas.states import utcnow

__all__ = [
    "MAX_INTEGER",
    "MAX_PAGE_SIZE",
    "ActionModel",
    "Page",
    "PaginationFilter",
    "UtcDatetime",
    "WireModel",
    "utcnow",
]

MAX_PAGE_SIZE = 200
MAX_INTEGER = 2**31 - 1
"""The largest count a request may carry (offsets, limits, retries): what a PostgreSQL ``integer`` column
holds. A larger value is a 422 rather than a database overflow (a 500)."""


def _as_utc(value: datetime) -> datetime:
    """Naive timestamps are taken as UTC; aware ones are converted, so comparisons never mix zones."""
    from datetime import timezone

    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]


class WireModel(BaseModel):
    """A response model: what the server says about a resource.

    ``defer_build``, here and on :class:`ActionModel`: a model's validator is built when it is first used
    (FastAPI builds those of the routes' models when the app is made), not when its class is created. The
    server imports many models it does not validate while it starts, and building them all was ~15 ms of
    ``headrace server start``; the SDK, which imports these modules too, starts faster for the same reason.
    """

    model_config = ConfigDict(from_attributes=True, defer_build=True)


def _refuse_unstorable_text(data: Any) -> None:
    """Refuse text no database can store: NUL characters (PostgreSQL) and lone surrogates (not UTF-8)."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise ValueError("text must not contain the NUL character (\\u0000)")
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    raise ValueError("text must be valid Unicode (it has a lone surrogate)") from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


RecordKind = Literal["task_runs", "logs"]
"""The two kinds of run record the SDK ships in bulk: task-run state changes and log lines."""

_UNSTORABLE_ESCAPES = (b"\\u0000", b"\\ud", b"\\uD")
_ENCODED_SURROGATE = re.compile(rb"\xed[\xa0-\xbf]")  # UTF-8 bytes of U+D800..U+DFFF (Hangul is \xed[\x80-\x9f])

TEXT_CHECKED = "headrace.text_checked"
"""A validation-context key: ``{TEXT_CHECKED: True}`` says the raw JSON was checked with :func:`plain_text`,
so the models need not walk every string of it again (see :class:`ActionModel`)."""


def plain_text(payload: bytes) -> bool:
    """Whether the JSON ``payload`` certainly holds no text a database refuses (NUL, lone surrogates).

    In UTF-8 JSON those can only arrive as ``\\u`` escapes or as the bytes of an encoded surrogate, so a
    search of the raw bytes settles it for the whole payload at once. A zero byte anywhere fails it too:
    that is either a raw NUL or JSON in UTF-16 or UTF-32 (which ``json.loads`` accepts), where escapes
    cannot be searched for as bytes. A false alarm (an escaped backslash before ``u0000``, a valid
    surrogate pair) only means the payload is checked string by string.
    """
    if b"\x00" in payload or any(escape in payload for escape in _UNSTORABLE_ESCAPES):
        return False
    return not (b"\xed" in payload and _ENCODED_SURROGATE.search(payload))


class ActionModel(BaseModel):
    """A request body: unknown fields are an error, so that a typo is never silently ignored; text that no
    database can store (NUL characters, lone surrogates) is refused with 422 rather than failing on insert."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data: Any, info: ValidationInfo) -> Any:
        context = info.context
        if not (context and context.get(TEXT_CHECKED)):
            _refuse_unstorable_text(data)
        return data


class PaginationFilter(ActionModel):
    limit: int = Field(default=50, ge=1, le=MAX_PAGE_SIZE, description="Items per page.")
    offset: int = Field(default=0, ge=0, le=MAX_INTEGER, description="Items to skip.")


T = TypeVar("T")


class Page(WireModel, Generic[T]):
    """One page of results; ``total`` counts every match, so clients know how many pages there are."""

    items: list[T]
    total: int
    limit: int
    offset: int
