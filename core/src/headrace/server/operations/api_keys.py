"""API keys: create (the key is returned once, only its hash is stored), list, find and revoke.

Names are unique. A revoked key keeps its row (``ls`` shows it, with when it was last used) until a
new key is created under the same name, which replaces the revoked row. A revoked key never counts
as "no key": once a key has been created, authentication stays on (see ``docs/security.md``).
"""

from __future__ import annotations

from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from headrace.schemas.auth import ApiKey, ApiKeyCreated, Scope
from headrace.server.db import Database, models
from headrace.server.errors import Problem
from headrace.server.security.keys import hash_api_key, new_api_key


async def create_api_key(database: Database, name: str, scope: Scope) -> ApiKeyCreated:
    """A new key with ``name`` and ``scope``; 409 if an active key already has that name."""
    key = new_api_key()
    taken = Problem(409, f"an API key named {name!r} already exists", kind="conflict")
    try:
        async with database.write() as session:
            existing = await session.scalar(sa.select(models.ApiKey).where(models.ApiKey.name == name))
            if existing is not None:
                if not existing.revoked:
                    raise taken
                await session.delete(existing)
                await session.flush()
            row = models.ApiKey(name=name, hashed_key=hash_api_key(key), scope=scope)
            session.add(row)
            await session.flush()
            created = ApiKey.model_validate(row)
    except sa.exc.IntegrityError as exc:
        # Another process created the same name between our check and our insert.
        raise taken from exc
    return ApiKeyCreated(**created.model_dump(), key=key)


async def list_api_keys(database: Database) -> list[ApiKey]:
    """Every key, revoked ones included, oldest first. Neither keys nor hashes are part of the answer."""
    async with database.read() as session:
        rows = await session.scalars(sa.select(models.ApiKey).order_by(models.ApiKey.created, models.ApiKey.name))
        return [ApiKey.model_validate(row) for row in rows]


async def find_api_key(database: Database, name_or_id: str) -> ApiKey:
    """The key with this id or, failing that, this name; 404 if there is none."""
    async with database.read() as session:
        row = await _find(session, name_or_id)
        if row is None:
            raise _unknown(name_or_id)
        return ApiKey.model_validate(row)


async def revoke_api_key(database: Database, name_or_id: UUID | str) -> tuple[ApiKey, bool]:
    """Revoke a key (by id, or by name); returns it and whether it was active until now.

    Revoking a revoked key changes nothing and is not an error, so that a retried request succeeds.
    """
    async with database.write() as session:
        row = await (
            session.get(models.ApiKey, name_or_id) if isinstance(name_or_id, UUID) else _find(session, name_or_id)
        )
        if row is None:
            raise _unknown(str(name_or_id))
        was_active = not row.revoked
        row.revoked = True
        await session.flush()
        return ApiKey.model_validate(row), was_active


async def _find(session: AsyncSession, name_or_id: str) -> models.ApiKey | None:
    try:
        key_id = UUID(name_or_id)
    except ValueError:
        pass
    else:
        row = await session.get(models.ApiKey, key_id)
        if row is not None:
            return row
    result: models.ApiKey | None = await session.scalar(
        sa.select(models.ApiKey).where(models.ApiKey.name == name_or_id)
    )
    return result


def _unknown(what: str) -> Problem:
    return Problem(404, f"no API key has the name or id {what!r}", kind="not-found")
