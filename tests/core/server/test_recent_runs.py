"""The runs a server remembers as it wrote them (operations.recent_runs): bounded, and per database.

What they are for, and that a stale one is never trusted, is tested on PostgreSQL in
tests/core/server/db/test_unlocked_writes.py."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from headrace.schemas.states import State, StateType
from headrace.server.db import Database
from headrace.server.operations.recent_runs import RecentRuns, RunSnapshot, recent_runs


def _run(run_id: uuid.UUID) -> RunSnapshot:
    return RunSnapshot(
        id=run_id,
        state_id=uuid.uuid4(),
        concurrency_limits=[],
        max_retries=0,
        retry_delay_seconds=0.0,
        retry_jitter_factor=None,
        run_count=0,
        start_time=None,
        end_time=None,
        total_run_time=0.0,
        next_scheduled_start_time=None,
        pause_keys=[],
        created=None,
    )


def test_the_run_written_longest_ago_is_forgotten_first() -> None:
    recent = RecentRuns(capacity=2)
    first, second, third = (uuid.uuid4() for _ in range(3))
    state = State(type=StateType.PENDING)
    recent.remember(_run(first), state)
    recent.remember(_run(second), state)
    recent.remember(_run(first), state)  # written again: now the newest
    recent.remember(_run(third), state)
    assert len(recent) == 2
    assert recent.get(second) is None
    assert recent.get(first) is not None
    assert recent.get(third) is not None
    recent.forget(first)
    assert recent.get(first) is None


def test_a_moved_run_takes_the_written_state_columns_and_keeps_the_rest() -> None:
    run = _run(uuid.uuid4())._replace(max_retries=3, concurrency_limits=[])
    new_state = uuid.uuid4()
    moved = run.moved(
        {
            "state_id": new_state,
            "run_count": 1,
            "start_time": "t0",
            "end_time": None,
            "total_run_time": 0.5,
            "next_scheduled_start_time": None,
            "pause_keys": ["k"],
            "updated": "ignored: not a column a transition reads",
        }
    )
    assert (moved.state_id, moved.run_count, moved.start_time, moved.pause_keys) == (new_state, 1, "t0", ["k"])
    assert (moved.id, moved.max_retries) == (run.id, 3)


def test_each_database_has_its_own(tmp_path: Path, settings_for: Any) -> None:
    one = Database.from_settings(settings_for(f"sqlite:///{tmp_path / 'one.db'}"))
    two = Database.from_settings(settings_for(f"sqlite:///{tmp_path / 'two.db'}"))
    assert recent_runs(one) is recent_runs(one)
    assert recent_runs(one) is not recent_runs(two)


def test_a_state_is_remembered_without_its_data_and_message() -> None:
    """Results and tracebacks can be large; no decision written from memory reads them."""
    recent = RecentRuns()
    run = _run(uuid.uuid4())
    failed = State(type=StateType.FAILED, message="Traceback ..." * 1000, data={"result": "x" * 10_000})
    recent.remember(run, failed)
    remembered = recent.get(run.id)
    assert remembered is not None
    assert (remembered[1].data, remembered[1].message) == (None, None)
    assert (remembered[1].id, remembered[1].type) == (failed.id, StateType.FAILED)
    assert failed.data is not None  # the caller's state is left as it was
