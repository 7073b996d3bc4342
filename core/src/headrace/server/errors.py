"""The error the service layer raises: a problem (RFC 9457) with an HTTP status and a detail for people.

It lives apart from :mod:`headrace.server.problems` (which turns it into a response and needs FastAPI)
so that the service layer, which the SDK's embedded mode calls in-process, never imports FastAPI.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

__all__ = ["PROBLEM_TYPE_BASE", "Problem"]

PROBLEM_TYPE_BASE = "https://headrace.dev/problems/"


class Problem(Exception):
    """Raise from a route to answer with a problem document. ``kind`` becomes the type URI's last part."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind or HTTPStatus(status).phrase.lower().replace(" ", "-")
        self.headers = headers
        self.extra = extra
