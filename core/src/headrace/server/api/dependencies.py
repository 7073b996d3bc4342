"""What routes depend on: the database, the settings, and the caller's authorization.

Every route under ``/api`` declares the scope it needs with one of :data:`Read`, :data:`Write` or
:data:`Admin`; the paths in :data:`OPEN_PATHS` (health) are the only ones that need no key. The
route-enumeration test in ``tests/core/server/api/test_auth.py`` calls each route without a key, with
a wrong key and with keys of lower scopes, so a route that forgets its scope is caught. Routes that
change something use :data:`Write` (or :data:`Admin`) whatever their method; a ``POST`` that only
reads (a filter or count with a body) may use :data:`Read` if its path ends in ``/filter`` or ``/count``.

Authentication and authorization run twice over, on purpose:

- :class:`~headrace.server.security.middleware.SecurityMiddleware` authenticates every ``/api``
  request and checks the scope its route declares before routing, so that a request without a valid
  key gets 401, and one with too low a scope 403, before FastAPI reads its body (FastAPI answers a
  malformed JSON body with 422 before it solves any dependency);
- the guards check again (they are the declaration the middleware reads), and authenticate the
  requests the middleware does not see (``/metrics``, or an app built without the middleware).

Auth is on when ``HEADRACE_SERVER_AUTH_REQUIRED`` is set or when any API key row exists, revoked or
not: revoking keys never opens the server again (the CLI can always create a new admin key).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any
from uuid import UUID

import sqlalchemy as sa
from fastapi import Depends, Request, WebSocketException
from starlette.requests import HTTPConnection
from starlette.status import WS_1008_POLICY_VIOLATION

from headrace.schemas.auth import Scope
from headrace.schemas.states import utcnow
from headrace.server.db import Database, models
from headrace.server.problems import Problem
from headrace.server.security.keys import hash_api_key
from headrace.settings import Settings

logger = logging.getLogger("headrace.server.auth")

KEY_CACHE_SECONDS = 10.0
"""How long a checked key (and the answer to "does any key exist?") is trusted without asking the
database; bounds how late a new or revoked key takes effect on *other* replicas and processes (the
replica that creates or revokes a key forgets its cache at once)."""
KEY_CACHE_SIZE = 1024
"""Most keys remembered at once. Only valid keys are cached, so wrong keys cannot grow the cache."""
MAX_KEY_LENGTH = 256
"""A longer bearer value is refused without a database query (keys are ``hr_`` and 43 characters)."""
LAST_USED_RESOLUTION = timedelta(minutes=1)
"""``last_used`` is written at most this often per key, so authentication adds no write per request."""
OPEN_PATHS = frozenset({"/api/health"})
"""Paths under ``/api`` that need no key, whatever the auth settings."""
CALLER_SCOPE_KEY = "headrace.caller"
"""Where the security middleware leaves the authenticated :class:`Caller` in the ASGI scope."""


@dataclass(frozen=True)
class Caller:
    """Who is calling: the key's id and scope, or ``key_id=None`` when auth is off (full access)."""

    scope: Scope
    key_id: UUID | None = None

    @property
    def authenticated(self) -> bool:
        """Whether the caller presented a valid API key (False when auth is off)."""
        return self.key_id is not None


@dataclass
class AuthState:
    """Per-app cache of checked keys and of whether any key exists (which switches auth on)."""

    required_by_setting: bool
    keys: dict[str, tuple[float, Caller]] = field(default_factory=dict)
    any_key_checked_at: float = -1e9
    any_key: bool = False
    last_used_written: dict[UUID, float] = field(default_factory=dict)

    def forget(self) -> None:
        """Drop every cached answer; call after creating or revoking a key."""
        self.keys.clear()
        self.any_key_checked_at = -1e9


async def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_auth_state(request: Request) -> AuthState:
    state: AuthState = request.app.state.auth
    return state


# The getters above are ``async`` although they never wait: FastAPI runs a plain ``def`` dependency in a
# worker thread, and that hop cost more CPU per request than the rest of the dependency solving.
DatabaseDep = Annotated[Database, Depends(get_database)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
AuthStateDep = Annotated[AuthState, Depends(get_auth_state)]


def _unauthenticated(detail: str) -> Problem:
    return Problem(401, detail, kind="unauthenticated", headers={"WWW-Authenticate": "Bearer"})


async def authenticate(connection: HTTPConnection) -> Caller:
    """Resolve the bearer key to a caller; 401 problem when auth is on and the key is missing or wrong.

    Reuses the caller the security middleware already resolved for this request, if any.
    """
    known = connection.scope.get(CALLER_SCOPE_KEY)
    if isinstance(known, Caller):
        return known
    auth: AuthState = connection.app.state.auth
    database: Database = connection.app.state.database
    now = time.monotonic()
    if not auth.required_by_setting and now - auth.any_key_checked_at > KEY_CACHE_SECONDS:
        async with database.read() as session:
            found = await session.scalar(sa.select(models.ApiKey.id).limit(1))
        auth.any_key, auth.any_key_checked_at = found is not None, now
    if not (auth.required_by_setting or auth.any_key):
        return Caller(scope=Scope.ADMIN)
    scheme, _, key = connection.headers.get("authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise _unauthenticated(
            "this server requires an API key: send it as 'Authorization: Bearer <key>' (HEADRACE_API_KEY)"
        )
    caller = await _lookup(auth, database, key, now) if len(key) <= MAX_KEY_LENGTH else None
    if caller is None:
        raise _unauthenticated("the API key is not valid (unknown or revoked)")
    await _touch(auth, database, caller, now)
    return caller


async def _lookup(auth: AuthState, database: Database, key: str, now: float) -> Caller | None:
    hashed = hash_api_key(key)
    cached = auth.keys.get(hashed)
    if cached is not None and now - cached[0] < KEY_CACHE_SECONDS:
        return cached[1]
    async with database.read() as session:
        row = await session.scalar(
            sa.select(models.ApiKey).where(models.ApiKey.hashed_key == hashed, models.ApiKey.revoked.is_(False))
        )
    if row is None:
        auth.keys.pop(hashed, None)
        return None
    caller = Caller(scope=row.scope, key_id=row.id)
    if len(auth.keys) >= KEY_CACHE_SIZE:
        auth.keys.clear()
    auth.keys[hashed] = (now, caller)
    return caller


async def _touch(auth: AuthState, database: Database, caller: Caller, now: float) -> None:
    """Record when the key was last used, at most once a minute; a failure here never fails the request."""
    if caller.key_id is None:
        return
    last = auth.last_used_written.get(caller.key_id, -1e9)
    if now - last < LAST_USED_RESOLUTION.total_seconds():
        return
    auth.last_used_written[caller.key_id] = now
    try:
        async with database.write() as session:
            await session.execute(
                sa.update(models.ApiKey).where(models.ApiKey.id == caller.key_id).values(last_used=utcnow())
            )
    except sa.exc.SQLAlchemyError:
        logger.warning("could not record the last use of API key %s", caller.key_id, exc_info=True)


def forbidden(caller: Caller, needed: Scope) -> Problem:
    return Problem(
        403, f"this API key has scope '{caller.scope.value}'; this route needs '{needed.value}'", kind="forbidden"
    )


class ScopeGuard:
    """A dependency that lets the request through only for a caller whose scope includes ``scope``.

    A class rather than a closure so that tests (and the middleware's docs) can read which scope a
    route declared: walk ``route.dependant`` for a ``call`` that is a :class:`ScopeGuard`.
    """

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def __repr__(self) -> str:
        return f"ScopeGuard({self.scope.value})"

    async def __call__(self, connection: HTTPConnection) -> Caller:
        try:
            caller = await authenticate(connection)
        except Problem as unauthenticated:
            if connection.scope["type"] == "websocket":
                raise WebSocketException(WS_1008_POLICY_VIOLATION, unauthenticated.detail) from unauthenticated
            raise
        if not caller.scope.allows(self.scope):
            refusal = forbidden(caller, self.scope)
            if connection.scope["type"] == "websocket":
                raise WebSocketException(WS_1008_POLICY_VIOLATION, refusal.detail)
            raise refusal
        return caller


def require(scope: Scope) -> Any:
    """``Depends`` on a :class:`ScopeGuard`: for ``dependencies=[require(Scope.WRITE)]`` on a route or router."""
    return Depends(ScopeGuard(scope))


Read = Annotated[Caller, require(Scope.READ)]
Write = Annotated[Caller, require(Scope.WRITE)]
Admin = Annotated[Caller, require(Scope.ADMIN)]


def declared_scopes(dependant: Any) -> set[Scope]:
    """The scopes of every :class:`ScopeGuard` in a route's dependency tree (empty: the route is open)."""
    found: set[Scope] = set()
    stack = [dependant]
    while stack:
        current = stack.pop()
        if isinstance(current.call, ScopeGuard):
            found.add(current.call.scope)
        stack.extend(current.dependencies)
    return found
