"""How the SDK talks to the orchestration API: over HTTP, or in-process to the embedded database.

``get_client(settings)`` returns an :class:`~headrace.client.base.OrchestrationClient`: the HTTP client
when ``HEADRACE_API_URL`` is set, otherwise the embedded client, which calls the server's service layer
in this process on the database under ``HEADRACE_HOME`` (no subprocess server). The engine only ever
sees the protocol, so both paths run the very same engine code. Synchronous code uses
:class:`~headrace.client.sync.SyncClient`, which runs the client on the process's one event loop.

Importing this package is cheap: httpx, SQLAlchemy and the server's modules load when a client is made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from headrace.client.base import ApiError, ApiUnreachable, ClientError, OrchestrationClient

if TYPE_CHECKING:
    from headrace.settings import Settings

__all__ = ["ApiError", "ApiUnreachable", "ClientError", "OrchestrationClient", "client_target", "get_client"]


def get_client(settings: Settings | None = None) -> OrchestrationClient:
    """The client for ``settings`` (default: ``get_settings()``): HTTP if ``api_url`` is set, else embedded."""
    if settings is None:
        from headrace.settings import get_settings

        settings = get_settings()
    if settings.api_url:
        from headrace.client.http import HttpClient

        return HttpClient(settings)
    from headrace.client.embedded import EmbeddedClient

    return EmbeddedClient(settings)


def client_target(settings: Settings) -> str:
    """Where the client for ``settings`` sends runs, as a stable string (what the spool records).

    ``HEADRACE_API_URL`` when set; otherwise ``embedded:`` followed by the database: the SQLite file under
    ``HEADRACE_HOME``, or a fingerprint of ``HEADRACE_SERVER_DATABASE_CONNECTION_URL`` (never the URL
    itself, which may hold a password).
    """
    if settings.api_url:
        return settings.api_url
    secret = settings.server_database_connection_url
    raw = secret.get_secret_value().strip() if secret is not None else ""
    if raw:
        import hashlib

        return "embedded:url-sha256:" + hashlib.sha256(raw.encode()).hexdigest()[:16]
    return f"embedded:sqlite:{settings.home.expanduser().resolve() / 'headrace.db'}"
