"""Named concurrency limits and the slots leased against them.

A slot is one row of ``concurrency_slots``: (limit, lease, holder, expires_at). One acquisition takes
one slot in each named limit, all or none, and its rows share a ``lease_id``. A slot counts against its
limit until ``expires_at``; the holder keeps it by renewing the lease and gives it back by releasing
it. Expired rows never count (every count filters on ``expires_at > now``) and anyone may delete them:
an acquisition deletes those of the limits it locks, and the retention service the rest. Flow runs that
name concurrency limits take rows with these same semantics during orchestration (holder: the run id).

Acquisition locks the limit rows (``SELECT ... ORDER BY name FOR UPDATE`` on PostgreSQL, so replicas
serialize per limit and never over-grant, and always lock in one order, so they never deadlock); on
SQLite the single write path serializes it. An inactive limit records slots but refuses none.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from headrace.schemas.base import Page, utcnow
from headrace.schemas.concurrency import (
    ConcurrencyLimit,
    ConcurrencyLimitCreate,
    ConcurrencyLimitFilter,
    ConcurrencyLimitUpdate,
    SlotAcquire,
    SlotLease,
    SlotRenew,
)
from headrace.server.db import Database, models
from headrace.server.errors import Problem
from headrace.server.operations.pages import fetch_page

__all__ = [
    "MAX_RETRY_AFTER_SECONDS",
    "acquire_slots",
    "create_limit",
    "delete_expired_slots",
    "delete_limit",
    "read_lease",
    "read_limit",
    "read_limits",
    "release_lease",
    "renew_lease",
    "update_limit",
]

MAX_RETRY_AFTER_SECONDS = 30.0
"""The longest wait a refused acquisition is told to observe (a slot may also be released sooner)."""

Slot = models.ConcurrencySlot
Limit = models.ConcurrencyLimit


# ------------------------------------------------------------------------------------------- limits


def _limit_not_found(names: Sequence[str]) -> Problem:
    quoted = ", ".join(repr(name) for name in names)
    noun = "limit" if len(names) == 1 else "limits"
    return Problem(404, f"no concurrency {noun} named {quoted}", kind="concurrency-limit-not-found")


async def _slots_in_use(session: AsyncSession, limit_ids: Sequence[uuid.UUID], now: datetime) -> dict[uuid.UUID, int]:
    if not limit_ids:
        return {}
    rows = await session.execute(
        sa.select(Slot.limit_id, sa.func.count())
        .where(Slot.limit_id.in_(limit_ids), Slot.expires_at > now)
        .group_by(Slot.limit_id)
    )
    return {limit_id: int(count) for limit_id, count in rows.all()}


def _limit(row: models.ConcurrencyLimit, in_use: int) -> ConcurrencyLimit:
    return ConcurrencyLimit(
        id=row.id,
        name=row.name,
        limit=row.limit,
        active=row.active,
        slots_in_use=in_use,
        created=row.created,
        updated=row.updated,
    )


async def create_limit(database: Database, limit: ConcurrencyLimitCreate) -> ConcurrencyLimit:
    """Create a named limit; 409 when the name is taken."""
    taken = Problem(409, f"a concurrency limit named {limit.name!r} exists already", kind="concurrency-limit-exists")
    now = utcnow()
    row = Limit(id=uuid.uuid4(), name=limit.name, limit=limit.limit, active=limit.active, created=now, updated=now)
    try:
        async with database.write() as session:
            if await session.scalar(sa.select(Limit.id).where(Limit.name == limit.name)) is not None:
                raise taken
            session.add(row)
    except IntegrityError:  # another replica created it between the check and the insert
        raise taken from None
    return _limit(row, 0)


async def read_limit(database: Database, name: str) -> ConcurrencyLimit:
    async with database.read() as session:
        row = await session.scalar(sa.select(Limit).where(Limit.name == name))
        if row is None:
            raise _limit_not_found([name])
        in_use = await _slots_in_use(session, [row.id], utcnow())
    return _limit(row, in_use.get(row.id, 0))


async def update_limit(database: Database, name: str, update: ConcurrencyLimitUpdate) -> ConcurrencyLimit:
    """Change the limit or switch it on or off. Lowering it below the slots in use revokes none of them:
    new acquisitions wait until enough are released or expire."""
    async with database.write() as session:
        row = await session.scalar(sa.select(Limit).where(Limit.name == name).with_for_update())
        if row is None:
            raise _limit_not_found([name])
        if update.limit is not None:
            row.limit = update.limit
        if update.active is not None:
            row.active = update.active
        row.updated = utcnow()
        await session.flush()
        in_use = await _slots_in_use(session, [row.id], utcnow())
        return _limit(row, in_use.get(row.id, 0))


async def delete_limit(database: Database, name: str) -> None:
    """Delete a limit and every slot taken against it."""
    async with database.write() as session:
        deleted = await session.scalar(sa.delete(Limit).where(Limit.name == name).returning(Limit.id))
    if deleted is None:
        raise _limit_not_found([name])


async def read_limits(database: Database, limit_filter: ConcurrencyLimitFilter) -> Page[ConcurrencyLimit]:
    query = sa.select(Limit)
    if limit_filter.names:
        query = query.where(Limit.name.in_(limit_filter.names))
    if limit_filter.active is not None:
        query = query.where(Limit.active.is_(limit_filter.active))
    async with database.read() as session:
        rows, total = await fetch_page(
            session, query, [Limit.name.asc()], limit=limit_filter.limit, offset=limit_filter.offset
        )
        in_use = await _slots_in_use(session, [row.id for row in rows], utcnow())
    return Page[ConcurrencyLimit](
        items=[_limit(row, in_use.get(row.id, 0)) for row in rows],
        total=total,
        limit=limit_filter.limit,
        offset=limit_filter.offset,
    )


# ------------------------------------------------------------------------------------------- leases


@dataclass(frozen=True)
class _Refusal:
    full: list[tuple[str, int, int]]  # name, limit, slots in use
    retry_after: float


def _refused(refusal: _Refusal) -> Problem:
    described = "; ".join(f"{name!r} ({in_use} of {limit} in use)" for name, limit, in_use in refusal.full)
    return Problem(
        423,
        f"no free slot in {described}: try again later",
        kind="no-free-slot",
        headers={"Retry-After": str(max(1, math.ceil(refusal.retry_after)))},
        retry_after=refusal.retry_after,
        limits=[{"name": name, "limit": limit, "slots_in_use": in_use} for name, limit, in_use in refusal.full],
    )


async def _live_lease(session: AsyncSession, lease_id: uuid.UUID, now: datetime) -> SlotLease | None:
    rows = (
        await session.execute(
            sa.select(Limit.name, Slot.holder, Slot.expires_at)
            .join(Limit, Limit.id == Slot.limit_id)
            .where(Slot.lease_id == lease_id, Slot.expires_at > now)
            .order_by(Limit.name)
        )
    ).all()
    if not rows:
        return None
    return SlotLease(
        id=lease_id,
        names=[row.name for row in rows],
        holder=rows[0].holder,
        expires_at=min(row.expires_at for row in rows),
    )


async def acquire_slots(database: Database, request: SlotAcquire) -> SlotLease:
    """Take one slot in each named limit, all or none. 404 names unknown limits; 423 (``Retry-After``)
    names the full ones. With ``request.lease_id``, repeating an acquisition returns the lease it got."""
    names = sorted(set(request.names))
    lease_id = request.lease_id or uuid.uuid4()
    refusal: _Refusal | None = None
    async with database.write() as session:
        now = utcnow()
        expires_at = now + timedelta(seconds=request.lease_seconds)
        if request.lease_id is not None:
            existing = await _live_lease(session, request.lease_id, now)
            if existing is not None:
                if existing.names != names or existing.holder != request.holder:
                    raise Problem(
                        409,
                        f"lease {request.lease_id} is held for other limits or by another holder",
                        kind="lease-conflict",
                    )
                return existing
            await session.execute(sa.delete(Slot).where(Slot.lease_id == request.lease_id))
        limits = (
            await session.scalars(sa.select(Limit).where(Limit.name.in_(names)).order_by(Limit.name).with_for_update())
        ).all()
        missing = sorted(set(names) - {limit.name for limit in limits})
        if missing:
            raise _limit_not_found(missing)
        ids = [limit.id for limit in limits]
        await session.execute(sa.delete(Slot).where(Slot.limit_id.in_(ids), Slot.expires_at <= now))
        in_use = await _slots_in_use(session, ids, now)
        full = [limit for limit in limits if limit.active and in_use.get(limit.id, 0) >= limit.limit]
        if full:
            refusal = _Refusal(
                full=[(limit.name, limit.limit, in_use.get(limit.id, 0)) for limit in full],
                retry_after=await _retry_after(session, [limit.id for limit in full], now),
            )
        else:
            session.add_all(
                Slot(
                    id=uuid.uuid4(),
                    limit_id=limit.id,
                    lease_id=lease_id,
                    holder=request.holder,
                    expires_at=expires_at,
                    created=now,
                )
                for limit in limits
            )
    if refusal is not None:  # raised after the commit, which keeps the expired slots deleted above
        raise _refused(refusal)
    return SlotLease(id=lease_id, names=names, holder=request.holder, expires_at=expires_at)


async def _retry_after(session: AsyncSession, full_ids: Sequence[uuid.UUID], now: datetime) -> float:
    """When every full limit will have had one slot expire: an upper bound, capped, for ``Retry-After``."""
    rows = await session.execute(
        sa.select(Slot.limit_id, sa.func.min(Slot.expires_at))
        .where(Slot.limit_id.in_(full_ids), Slot.expires_at > now)
        .group_by(Slot.limit_id)
    )
    earliest: dict[uuid.UUID, Any] = {limit_id: expiry for limit_id, expiry in rows.all()}
    if len(earliest) < len(full_ids):  # a limit of 0 (or lowered): no expiry will free it
        return MAX_RETRY_AFTER_SECONDS
    wait = max(float((expiry - now).total_seconds()) for expiry in earliest.values())
    return min(max(wait, 0.0), MAX_RETRY_AFTER_SECONDS)


def _lease_not_found(lease_id: uuid.UUID) -> Problem:
    return Problem(
        404,
        f"no live lease {lease_id}: it expired or was released (its slots may have been taken since)",
        kind="lease-not-found",
    )


async def read_lease(database: Database, lease_id: uuid.UUID) -> SlotLease:
    async with database.read() as session:
        lease = await _live_lease(session, lease_id, utcnow())
    if lease is None:
        raise _lease_not_found(lease_id)
    return lease


async def renew_lease(database: Database, lease_id: uuid.UUID, renew: SlotRenew) -> SlotLease:
    """Extend a live lease to ``lease_seconds`` from now. An expired lease cannot be renewed: acquire again."""
    async with database.write() as session:
        now = utcnow()
        result = await session.execute(
            sa.update(Slot)
            .where(Slot.lease_id == lease_id, Slot.expires_at > now)
            .values(expires_at=now + timedelta(seconds=renew.lease_seconds))
            .returning(Slot.id)
        )
        if not result.all():
            raise _lease_not_found(lease_id)
        lease = await _live_lease(session, lease_id, now)
    assert lease is not None
    return lease


async def release_lease(database: Database, lease_id: uuid.UUID) -> None:
    """Give the lease's slots back; 404 when there is nothing to release."""
    async with database.write() as session:
        released = (await session.execute(sa.delete(Slot).where(Slot.lease_id == lease_id).returning(Slot.id))).all()
    if not released:
        raise _lease_not_found(lease_id)


async def delete_expired_slots(database: Database, *, batch_size: int = 1_000) -> int:
    """Delete expired slot rows in batches (each its own transaction); returns how many."""
    total = 0
    while True:
        async with database.write() as session:
            now = utcnow()
            batch = sa.select(Slot.id).where(Slot.expires_at <= now).limit(batch_size)
            deleted = len((await session.execute(sa.delete(Slot).where(Slot.id.in_(batch)).returning(Slot.id))).all())
        total += deleted
        if deleted < batch_size:
            return total
