"""Routes about the server itself: health (open), version, CSRF tokens and the settings in force."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Query, Request

from headrace import __version__
from headrace.schemas.server import CsrfToken, Health, ServerSettingsView, Version
from headrace.server.api.dependencies import Admin, DatabaseDep, Read, SettingsDep
from headrace.server.problems import PROBLEM_RESPONSES, Problem
from headrace.server.security.csrf import issue_token

router = APIRouter(tags=["server"], responses=PROBLEM_RESPONSES)

API_VERSION = "1"


@router.get("/health", summary="Is the server up and its database reachable? Needs no key.")
async def health(database: DatabaseDep) -> Health:
    try:
        await database.ping()
    except Exception as exc:
        raise Problem(503, f"the database cannot be reached: {type(exc).__name__}", kind="unhealthy") from exc
    return Health(status="ok", database=database.dialect)


@router.get("/version", summary="The server's headrace version and API version.")
async def version(_: Read) -> Version:
    return Version(version=__version__, api_version=API_VERSION)


@router.get("/csrf-token", summary="A CSRF token for a browser client (when CSRF protection is on).")
async def csrf_token(
    request: Request,
    settings: SettingsDep,
    _: Read,
    client: Annotated[str, Query(min_length=1, max_length=200, description="The client's own id.")],
) -> CsrfToken:
    if not settings.server_csrf_protection_enabled:
        raise Problem(422, "CSRF protection is off on this server (HEADRACE_SERVER_CSRF_PROTECTION_ENABLED)")
    token, expires = issue_token(request.app.state.csrf_secret, client, settings.server_csrf_token_expiration)
    return CsrfToken(token=token, client=client, expiration=datetime.fromtimestamp(expires, tz=timezone.utc))


@router.get("/admin/settings", summary="The server's settings, secrets masked.")
async def admin_settings(settings: SettingsDep, _: Admin) -> ServerSettingsView:
    from headrace.settings import env_name, is_secret

    shown = {
        env_name(name): ("********" if is_secret(name) and value is not None else value)
        for name, value in settings.model_dump(mode="json").items()
    }
    return ServerSettingsView(settings=shown)
