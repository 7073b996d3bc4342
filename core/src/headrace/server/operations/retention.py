"""Retention: delete run history, logs and artifacts older than their periods, in bounded batches.

What goes, and when (periods from the ``HEADRACE_SERVER_RETENTION_*`` settings):

- Flow runs in a terminal state (Completed, Failed, Cancelled, Crashed) that ended more than
  ``flow_runs_days`` ago (by ``end_time``, or the time of their terminal state when they never ran),
  with their state history, task runs and task-run states, and the artifacts attached to them (all by
  ``ON DELETE CASCADE``). A run that has not finished is never deleted, however old.
- Task runs recorded without a flow run, after the same period: ended that long ago, or never ended
  and not updated since.
- Logs whose ``timestamp`` is more than ``logs_days`` old.
- Artifacts created more than ``artifacts_days`` ago.
- Concurrency slots whose lease has expired (they no longer count; this only tidies).
- Events after ``events_days``: their table arrives with the events issue, which adds its step to
  :data:`STEPS` (see :func:`_delete_events`).

Each batch of at most ``batch_size`` rows is its own short write transaction, so a pass never holds
the write path for long: other writers get their turn between batches. A flow run's task runs are
deleted in batches before the run itself, so one run with a huge number of task runs cannot turn one
batch into a huge cascade. On PostgreSQL batches pick rows with ``FOR UPDATE SKIP LOCKED``, so two
replicas running retention at once share the work instead of waiting on each other; repeating a pass
is harmless anyway.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa

from headrace.schemas.base import utcnow
from headrace.schemas.states import TERMINAL_STATE_TYPES
from headrace.server.db import Database, models
from headrace.settings import Settings

__all__ = ["DEFAULT_BATCH_SIZE", "STEPS", "RetentionReport", "apply_retention"]

logger = logging.getLogger("headrace.server.services.retention")

DEFAULT_BATCH_SIZE = 500
"""Rows per delete transaction."""


@dataclass
class RetentionReport:
    """How many rows one pass deleted, by kind (flow runs count their own rows, not what cascaded)."""

    deleted: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


async def _delete_batches(
    database: Database, table: sa.Table, condition: Callable[[datetime], sa.ColumnElement[bool]], batch_size: int
) -> int:
    """Delete the rows of ``table`` matching ``condition(now)``, ``batch_size`` per transaction."""
    total = 0
    while True:
        async with database.write() as session:
            chosen = (
                sa.select(table.c.id)
                .where(condition(utcnow()))
                .limit(batch_size)
                .with_for_update(skip_locked=True)
                .scalar_subquery()
            )
            ids = (await session.execute(sa.delete(table).where(table.c.id.in_(chosen)).returning(table.c.id))).all()
        total += len(ids)
        if len(ids) < batch_size:
            return total
        await asyncio.sleep(0)  # let waiting writers in between batches


def _table(model: type[models.Base]) -> sa.Table:
    table = model.__table__
    assert isinstance(table, sa.Table)
    return table


def _always(condition: sa.ColumnElement[bool]) -> Callable[[datetime], sa.ColumnElement[bool]]:
    return lambda _now: condition


def _days_ago(days: float) -> datetime:
    return utcnow() - timedelta(days=days)


async def _delete_flow_runs(database: Database, settings: Settings, batch_size: int) -> int:
    cutoff = _days_ago(settings.server_retention_flow_runs_days)
    runs = _table(models.FlowRun).c
    tasks = _table(models.TaskRun)
    finished_long_ago = sa.and_(
        runs.state_type.in_([state_type.value for state_type in TERMINAL_STATE_TYPES]),
        sa.or_(runs.end_time < cutoff, sa.and_(runs.end_time.is_(None), runs.state_timestamp < cutoff)),
    )
    total = 0
    while True:
        async with database.read() as session:
            batch: list[uuid.UUID] = list(
                (await session.scalars(sa.select(runs.id).where(finished_long_ago).limit(batch_size))).all()
            )
        if not batch:
            return total
        # Task runs first, in batches, so that the cascade of one flow-run batch stays small.
        await _delete_batches(database, tasks, _always(tasks.c.flow_run_id.in_(batch)), batch_size)
        async with database.write() as session:
            deleted = (
                await session.execute(
                    sa.delete(_table(models.FlowRun)).where(runs.id.in_(batch), finished_long_ago).returning(runs.id)
                )
            ).all()
        total += len(deleted)
        if len(batch) < batch_size:
            return total
        await asyncio.sleep(0)


async def _delete_orphan_task_runs(database: Database, settings: Settings, batch_size: int) -> int:
    cutoff = _days_ago(settings.server_retention_flow_runs_days)
    tasks = _table(models.TaskRun).c

    def condition(_now: datetime) -> sa.ColumnElement[bool]:
        return sa.and_(
            tasks.flow_run_id.is_(None),
            sa.or_(
                tasks.end_time < cutoff,
                sa.and_(tasks.end_time.is_(None), tasks.created < cutoff, tasks.updated < cutoff),
            ),
        )

    return await _delete_batches(database, _table(models.TaskRun), condition, batch_size)


async def _delete_logs(database: Database, settings: Settings, batch_size: int) -> int:
    cutoff = _days_ago(settings.server_retention_logs_days)
    logs = _table(models.Log)
    return await _delete_batches(database, logs, lambda _now: logs.c.timestamp < cutoff, batch_size)


async def _delete_artifacts(database: Database, settings: Settings, batch_size: int) -> int:
    cutoff = _days_ago(settings.server_retention_artifacts_days)
    artifacts = _table(models.Artifact)
    return await _delete_batches(database, artifacts, lambda _now: artifacts.c.created < cutoff, batch_size)


async def _delete_expired_slots(database: Database, settings: Settings, batch_size: int) -> int:
    slots = _table(models.ConcurrencySlot)
    return await _delete_batches(database, slots, lambda now: slots.c.expires_at <= now, batch_size)


async def _delete_events(database: Database, settings: Settings, batch_size: int) -> int:
    """The hook for events (``server_retention_events_days``): no events table exists yet.

    When it does, this becomes ``_delete_batches(database, events, occurred < cutoff, batch_size)``.
    """
    return 0


Step = Callable[[Database, Settings, int], Awaitable[int]]

STEPS: dict[str, Step] = {
    "flow_runs": _delete_flow_runs,
    "orphan_task_runs": _delete_orphan_task_runs,
    "logs": _delete_logs,
    "artifacts": _delete_artifacts,
    "events": _delete_events,
    "expired_concurrency_slots": _delete_expired_slots,
}
"""One pass, in order. Flow runs go first: their artifacts cascade with them."""


async def apply_retention(
    database: Database, settings: Settings, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> RetentionReport:
    """One retention pass over every kind of record; returns what it deleted."""
    report = RetentionReport()
    for name, step in STEPS.items():
        report.deleted[name] = await step(database, settings, batch_size)
    return report
