"""Flows: create (or find) by name, read, filter, delete.

A flow is little more than a name that runs hang from; its runs are created by name or by id (see
:mod:`headrace.server.operations.flow_runs`). Deleting a flow deletes its runs, their task runs and every
state history (``ON DELETE CASCADE``), and gives back the concurrency slots those runs held.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from headrace.schemas.base import Page, utcnow
from headrace.schemas.runs import Flow, FlowCreate, FlowFilter
from headrace.schemas.states import StateType
from headrace.server.db import Database, models
from headrace.server.db.types import json_contains_all
from headrace.server.errors import Problem
from headrace.server.operations.pages import fetch_page

__all__ = [
    "SLOT_HOLDING_TYPES",
    "create_flow",
    "delete_flow",
    "ensure_flow",
    "filter_flows",
    "flow_not_found",
    "read_flow",
    "read_flow_by_name",
    "release_slots_of_runs",
]


#: The state types in which a flow run may hold concurrency slots (see ``holds_concurrency_slot``).
SLOT_HOLDING_TYPES = (StateType.PENDING, StateType.RUNNING, StateType.CANCELLING, StateType.PAUSED)


def flow_not_found(key: object) -> Problem:
    return Problem(404, f"flow {key} not found", kind="not-found")


def _flow(row: models.Flow) -> Flow:
    return Flow(id=row.id, name=row.name, tags=list(row.tags or []), created=row.created, updated=row.updated)


async def ensure_flow(
    database: Database, session: AsyncSession, name: str, tags: Sequence[str] = ()
) -> tuple[UUID, bool]:
    """The id of the flow called ``name``, created (with ``tags``) if there is none; and whether it was.

    Race-free on both dialects: the insert is ``ON CONFLICT (name) DO NOTHING``, so of two concurrent
    creators one inserts and the other finds the row (PostgreSQL makes it wait for the first to commit).
    """
    existing = await session.scalar(sa.select(models.Flow.id).where(models.Flow.name == name))
    if existing is not None:
        return existing, False
    now = utcnow()
    statement = (
        database.insert(models.Flow.__table__)
        .values(name=name, tags=list(tags), created=now, updated=now)
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(models.Flow.__table__.c.id)
    )
    inserted = (await session.execute(statement)).scalar_one_or_none()
    if inserted is not None:
        return inserted, True
    existing = await session.scalar(sa.select(models.Flow.id).where(models.Flow.name == name))
    assert existing is not None, "a flow name conflicted but no flow has it"
    return existing, False


async def create_flow(database: Database, data: FlowCreate) -> tuple[Flow, bool]:
    """The flow called ``data.name``, and whether it was created now (an existing flow is left unchanged)."""
    async with database.write() as session:
        flow_id, created = await ensure_flow(database, session, data.name, data.tags)
        row = await session.get(models.Flow, flow_id)
        assert row is not None
        return _flow(row), created


async def read_flow(database: Database, flow_id: UUID) -> Flow:
    async with database.read() as session:
        row = await session.get(models.Flow, flow_id)
        if row is None:
            raise flow_not_found(flow_id)
        return _flow(row)


async def read_flow_by_name(database: Database, name: str) -> Flow:
    async with database.read() as session:
        row = await session.scalar(sa.select(models.Flow).where(models.Flow.name == name))
        if row is None:
            raise flow_not_found(repr(name))
        return _flow(row)


async def filter_flows(database: Database, query: FlowFilter) -> Page[Flow]:
    """One page of the flows matching ``query``, by name."""
    statement = sa.select(models.Flow)
    if query.name_like:
        statement = statement.where(models.Flow.name.icontains(query.name_like, autoescape=True))
    if query.tags_all:
        statement = statement.where(json_contains_all(models.Flow.tags.expression, query.tags_all))
    async with database.read() as session:
        rows, total = await fetch_page(
            session, statement, [models.Flow.name, models.Flow.id], limit=query.limit, offset=query.offset
        )
        return Page[Flow](items=[_flow(row) for row in rows], total=total, limit=query.limit, offset=query.offset)


async def release_slots_of_runs(session: AsyncSession, run_ids: Sequence[UUID]) -> None:
    """Delete the concurrency slots held by these flow runs (which are being deleted)."""
    holders = [str(run_id) for run_id in run_ids]
    for start in range(0, len(holders), 1000):
        await session.execute(
            sa.delete(models.ConcurrencySlot).where(models.ConcurrencySlot.holder.in_(holders[start : start + 1000]))
        )


async def delete_flow(database: Database, flow_id: UUID) -> None:
    """Delete the flow, its runs and their histories; 404 if there is no such flow."""
    async with database.write() as session:
        found = await session.scalar(sa.select(models.Flow.id).where(models.Flow.id == flow_id).with_for_update())
        if found is None:
            raise flow_not_found(flow_id)
        holding = await session.scalars(
            sa.select(models.FlowRun.id).where(
                models.FlowRun.flow_id == flow_id, models.FlowRun.state_type.in_(SLOT_HOLDING_TYPES)
            )
        )
        await release_slots_of_runs(session, list(holding))
        await session.execute(sa.delete(models.Flow).where(models.Flow.id == flow_id))
