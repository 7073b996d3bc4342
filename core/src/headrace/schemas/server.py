"""Small responses about the server itself."""

from __future__ import annotations

from typing import Any

from headrace.schemas.base import UtcDatetime, WireModel


class Health(WireModel):
    status: str
    database: str


class Version(WireModel):
    version: str
    api_version: str


class CsrfToken(WireModel):
    token: str
    client: str
    expiration: UtcDatetime


class ServerSettingsView(WireModel):
    """The server's settings, secrets masked."""

    settings: dict[str, Any]
