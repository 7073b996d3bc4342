"""Artifacts: markdown, tables and links that runs publish, optionally under a key with versions.

An artifact with a ``key`` is versioned: each create stores a new row whose ``version`` is the highest
stored version of that key plus one, computed inside the write transaction (on PostgreSQL, where two
replicas may race, creates of one key are serialized by a transaction-scoped advisory lock on the key,
and the unique constraint on ``(key, version)`` turns anything that slips through into a retry). The
latest version is the key's current value. Deleting the latest version makes the one before it current
again, and the next create reuses the freed number. Artifacts without a key are single, version 1.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from headrace.schemas.artifacts import Artifact, ArtifactCreate, ArtifactFilter, ArtifactSort
from headrace.schemas.base import Page, utcnow
from headrace.server.db import Database, models
from headrace.server.errors import Problem
from headrace.server.operations.pages import fetch_page

__all__ = [
    "create_artifact",
    "delete_artifact",
    "read_artifact",
    "read_artifact_versions",
    "read_artifacts",
    "read_latest_artifact",
]

VERSION_ATTEMPTS = 5
"""How often a create retries when a concurrent create (another replica) took the same version."""


def _lock_id(key: str) -> int:
    """A signed 64-bit advisory-lock id for an artifact key (namespaced, so it collides with nothing else)."""
    digest = hashlib.blake2b(f"headrace.artifact-key:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def _flow_run_exists(session: AsyncSession, flow_run_id: uuid.UUID) -> bool:
    found = await session.scalar(sa.select(models.FlowRun.id).where(models.FlowRun.id == flow_run_id))
    return found is not None


def _flow_run_missing(flow_run_id: uuid.UUID) -> Problem:
    return Problem(404, f"no flow run with id {flow_run_id}", kind="flow-run-not-found")


async def create_artifact(database: Database, artifact: ArtifactCreate) -> Artifact:
    """Store ``artifact``; a keyed one becomes the key's latest version."""
    async with database.write() as session:
        if artifact.flow_run_id is not None and not await _flow_run_exists(session, artifact.flow_run_id):
            raise _flow_run_missing(artifact.flow_run_id)
        if artifact.key is not None and database.dialect == "postgresql":
            await session.execute(sa.select(sa.func.pg_advisory_xact_lock(_lock_id(artifact.key))))
        for attempt in range(VERSION_ATTEMPTS):
            version = 1
            if artifact.key is not None:
                highest = await session.scalar(
                    sa.select(sa.func.max(models.Artifact.version)).where(models.Artifact.key == artifact.key)
                )
                version = (highest or 0) + 1
            row = models.Artifact(
                id=uuid.uuid4(),
                key=artifact.key,
                version=version,
                type=artifact.type,
                data=artifact.data,
                description=artifact.description,
                flow_run_id=artifact.flow_run_id,
                task_run_id=artifact.task_run_id,
                created=utcnow(),
            )
            try:
                async with session.begin_nested():
                    session.add(row)
                    await session.flush()
            except IntegrityError:
                if artifact.flow_run_id is not None and not await _flow_run_exists(session, artifact.flow_run_id):
                    raise _flow_run_missing(artifact.flow_run_id) from None
                if attempt == VERSION_ATTEMPTS - 1:
                    raise
                continue
            return Artifact.model_validate(row)
    raise AssertionError("unreachable")  # pragma: no cover


async def read_artifact(database: Database, artifact_id: uuid.UUID) -> Artifact:
    async with database.read() as session:
        row = await session.get(models.Artifact, artifact_id)
    if row is None:
        raise Problem(404, f"no artifact with id {artifact_id}", kind="artifact-not-found")
    return Artifact.model_validate(row)


async def read_latest_artifact(database: Database, key: str) -> Artifact:
    """The latest version of the artifact ``key``."""
    async with database.read() as session:
        row = await session.scalar(
            sa.select(models.Artifact)
            .where(models.Artifact.key == key)
            .order_by(models.Artifact.version.desc())
            .limit(1)
        )
    if row is None:
        raise Problem(404, f"no artifact with key {key!r}", kind="artifact-not-found")
    return Artifact.model_validate(row)


async def read_artifact_versions(database: Database, key: str, *, limit: int, offset: int) -> Page[Artifact]:
    """The versions of the artifact ``key``, newest first; 404 when the key has none."""
    async with database.read() as session:
        rows, total = await fetch_page(
            session,
            sa.select(models.Artifact).where(models.Artifact.key == key),
            [models.Artifact.version.desc()],
            limit=limit,
            offset=offset,
        )
    if total == 0:
        raise Problem(404, f"no artifact with key {key!r}", kind="artifact-not-found")
    return Page[Artifact](items=[Artifact.model_validate(row) for row in rows], total=total, limit=limit, offset=offset)


def _filtered(artifact_filter: ArtifactFilter) -> sa.Select[Any]:
    query = sa.select(models.Artifact)
    if artifact_filter.key is not None:
        query = query.where(models.Artifact.key == artifact_filter.key)
    if artifact_filter.flow_run_ids:
        query = query.where(models.Artifact.flow_run_id.in_(artifact_filter.flow_run_ids))
    if artifact_filter.task_run_ids:
        query = query.where(models.Artifact.task_run_id.in_(artifact_filter.task_run_ids))
    if artifact_filter.types:
        query = query.where(models.Artifact.type.in_(artifact_filter.types))
    if artifact_filter.latest_only:
        newer = aliased(models.Artifact)
        query = query.where(
            models.Artifact.key.is_not(None),
            ~sa.exists().where(newer.key == models.Artifact.key, newer.version > models.Artifact.version),
        )
    return query


_ORDER = {
    ArtifactSort.CREATED_DESC: [models.Artifact.created.desc(), models.Artifact.id.desc()],
    ArtifactSort.CREATED_ASC: [models.Artifact.created.asc(), models.Artifact.id.asc()],
    ArtifactSort.KEY_ASC: [
        models.Artifact.key.asc().nulls_last(),
        models.Artifact.version.desc(),
        models.Artifact.id.asc(),
    ],
}


async def read_artifacts(database: Database, artifact_filter: ArtifactFilter) -> Page[Artifact]:
    async with database.read() as session:
        rows, total = await fetch_page(
            session,
            _filtered(artifact_filter),
            _ORDER[artifact_filter.sort],
            limit=artifact_filter.limit,
            offset=artifact_filter.offset,
        )
    return Page[Artifact](
        items=[Artifact.model_validate(row) for row in rows],
        total=total,
        limit=artifact_filter.limit,
        offset=artifact_filter.offset,
    )


async def delete_artifact(database: Database, artifact_id: uuid.UUID) -> None:
    async with database.write() as session:
        deleted = await session.scalar(
            sa.delete(models.Artifact).where(models.Artifact.id == artifact_id).returning(models.Artifact.id)
        )
    if deleted is None:
        raise Problem(404, f"no artifact with id {artifact_id}", kind="artifact-not-found")
