"""The flow-run statements the create and set-state paths run, compiled once per dialect (:class:`Prepared`).

Two families:

- the locked path's (both databases): lock the run, read its states, insert a state, update the run;
- PostgreSQL's path without a transaction: :data:`READ_FOR_TRANSITION` (the run with its current state, one
  snapshot), :data:`MOVE_RUN` (compare-and-set: the state's insert and the run's update in one statement,
  only if the run's current state is the expected one) and :func:`create_run` (a run and its first state
  in one statement). See :mod:`headrace.server.operations.flow_runs` for how they are used.

Parameters are named by the columns they fill; a state's columns are prefixed ``s_`` where the run's
columns share their names (:func:`state_binds`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from headrace.server.db import models
from headrace.server.db.prepared import Prepared, typed_binds

if TYPE_CHECKING:
    from headrace.server.db import Database

__all__ = [
    "FLOW_BY_NAME",
    "INSERT_STATE",
    "LOCK_RUN",
    "MOVE_RUN",
    "MOVE_RUN_SCHEDULED",
    "READ_FOR_TRANSITION",
    "STATES_BY_ID",
    "UPDATE_RUN",
    "UPDATE_RUN_SCHEDULED",
    "create_run",
    "insert_run",
]


_RUNS: sa.Table = models.FlowRun.__table__  # type: ignore[assignment]
_STATES: sa.Table = models.FlowRunState.__table__  # type: ignore[assignment]
_FLOWS: sa.Table = models.Flow.__table__  # type: ignore[assignment]

_RUN_STATE_COLUMNS = (
    "state_id",
    "state_type",
    "state_name",
    "state_timestamp",
    "run_count",
    "start_time",
    "end_time",
    "total_run_time",
    "next_scheduled_start_time",
    "pause_keys",
)
_RUN_INSERT_COLUMNS = (
    "id",
    "flow_id",
    "name",
    "parameters",
    "tags",
    "idempotency_key",
    "parent_task_run_id",
    "concurrency_limits",
    "max_retries",
    "retry_delay_seconds",
    "retry_jitter_factor",
    "expected_start_time",
    "created",
    "updated",
    *_RUN_STATE_COLUMNS,
)
_STATE_COLUMNS = ("id", "flow_run_id", "type", "name", "timestamp", "message", "state_details", "data")

INSERT_STATE = Prepared(sa.insert(_STATES).values(typed_binds(_STATES, _STATE_COLUMNS)))
FLOW_BY_NAME = Prepared(sa.select(_FLOWS.c.id).where(_FLOWS.c.name == sa.bindparam("name", type_=_FLOWS.c.name.type)))
LOCK_RUN = Prepared(
    sa.select(
        _RUNS.c.id,
        _RUNS.c.state_id,
        _RUNS.c.concurrency_limits,
        _RUNS.c.max_retries,
        _RUNS.c.retry_delay_seconds,
        _RUNS.c.retry_jitter_factor,
        _RUNS.c.run_count,
        _RUNS.c.start_time,
        _RUNS.c.end_time,
        _RUNS.c.total_run_time,
        _RUNS.c.next_scheduled_start_time,
        _RUNS.c.pause_keys,
        _RUNS.c.created,
    )
    .where(_RUNS.c.id == sa.bindparam("id", type_=_RUNS.c.id.type))
    .with_for_update(key_share=True)
)
# The proposal's own row (a replay) and the run's current state row: two ids (the same one twice if the
# run has no state yet), so that the statement is one prepared statement rather than an expanding IN.
STATES_BY_ID = Prepared(
    sa.select(_STATES).where(
        _STATES.c.id.in_(
            [sa.bindparam("proposed", type_=_STATES.c.id.type), sa.bindparam("current", type_=_STATES.c.id.type)]
        )
    )
)


def _update_run(names: Sequence[str]) -> Prepared:
    return Prepared(
        sa.update(_RUNS)
        .where(_RUNS.c.id == sa.bindparam("key", type_=_RUNS.c.id.type))
        .values(typed_binds(_RUNS, names))
    )


UPDATE_RUN = _update_run((*_RUN_STATE_COLUMNS, "updated"))
UPDATE_RUN_SCHEDULED = _update_run((*_RUN_STATE_COLUMNS, "expected_start_time", "updated"))

_INSERT_RUN: dict[str, Prepared] = {}

# PostgreSQL, outside a transaction (see "Without a transaction" below). The run with its current state,
# and whether the proposal's own id is already a state row (a replay): one statement, one snapshot.
_CURRENT = _STATES.alias("current_state")
_APPLIED = _STATES.alias("applied_state")
READ_FOR_TRANSITION = Prepared(
    sa.select(
        *LOCK_RUN.statement.selected_columns,  # type: ignore[attr-defined]
        *(_CURRENT.c[name].label(f"current_{name}") for name in _STATE_COLUMNS if name != "flow_run_id"),
        _APPLIED.c.id.label("applied_id"),
    )
    .select_from(
        _RUNS.outerjoin(_CURRENT, _CURRENT.c.id == _RUNS.c.state_id).outerjoin(
            _APPLIED, _APPLIED.c.id == sa.bindparam("proposed", type_=_STATES.c.id.type)
        )
    )
    .where(_RUNS.c.id == sa.bindparam("id", type_=_RUNS.c.id.type))
)


def state_binds() -> dict[str, Any]:
    """Bind parameters for a state row's columns, prefixed ``s_`` (the run's own columns share the names)."""
    names = (name for name in _STATE_COLUMNS if name != "flow_run_id")
    return {name: sa.bindparam(f"s_{name}", type_=_STATES.c[name].type) for name in names}


def _with_state(run_statement: Any) -> Prepared:
    """``WITH run AS (<run_statement> RETURNING id) INSERT INTO flow_run_states ... SELECT ... FROM run``.

    The state row is written only if the run statement wrote the run's row, and both in one statement:
    atomic without a transaction around it.
    """
    run = run_statement.returning(_RUNS.c.id).cte("run")
    state = state_binds()
    return Prepared(
        sa.insert(_STATES)
        .from_select([*state, "flow_run_id"], sa.select(*state.values(), run.c.id))
        .returning(_STATES.c.flow_run_id)
    )


def _move_run(names: Sequence[str]) -> Prepared:
    """Compare-and-set: update the run's state columns only if its current state is still ``expected`` (and
    the run is still the one created at ``expected_created``, not one deleted and created again)."""
    return _with_state(
        sa.update(_RUNS)
        .where(
            _RUNS.c.id == sa.bindparam("key", type_=_RUNS.c.id.type),
            _RUNS.c.state_id.is_not_distinct_from(sa.bindparam("expected", type_=_RUNS.c.state_id.type)),
            _RUNS.c.created == sa.bindparam("expected_created", type_=_RUNS.c.created.type),
        )
        .values(typed_binds(_RUNS, names))
    )


MOVE_RUN = _move_run((*_RUN_STATE_COLUMNS, "updated"))
MOVE_RUN_SCHEDULED = _move_run((*_RUN_STATE_COLUMNS, "expected_start_time", "updated"))


def insert_run(database: Database) -> Prepared:
    """``INSERT ... SELECT ... WHERE the flow exists ON CONFLICT DO NOTHING RETURNING id`` for the dialect.

    One statement does what used to take three lookups: it inserts nothing (and returns no row) when
    the flow is unknown or a run with the id, or with the idempotency key for the flow, exists; only
    then are those looked up, to answer.
    """
    found = _INSERT_RUN.get(database.dialect)
    if found is None:
        values = typed_binds(_RUNS, _RUN_INSERT_COLUMNS)
        flow_exists = sa.exists().where(_FLOWS.c.id == values["flow_id"])
        found = _INSERT_RUN[database.dialect] = Prepared(
            database.insert(_RUNS)
            .from_select(list(_RUN_INSERT_COLUMNS), sa.select(*values.values()).where(flow_exists))
            .on_conflict_do_nothing()
            .returning(_RUNS.c.id)
        )
    return found


@functools.cache
def create_run() -> Prepared:
    """The run's insert (as :func:`insert_run` writes it, on PostgreSQL) and its state's, in one statement.

    Built on first use: the PostgreSQL dialect is not imported by a server on SQLite.
    """
    from sqlalchemy.dialects import postgresql

    values = typed_binds(_RUNS, _RUN_INSERT_COLUMNS)
    flow_exists = sa.exists().where(_FLOWS.c.id == values["flow_id"])
    return _with_state(
        postgresql.insert(_RUNS)
        .from_select(list(_RUN_INSERT_COLUMNS), sa.select(*values.values()).where(flow_exists))
        .on_conflict_do_nothing()
    )
