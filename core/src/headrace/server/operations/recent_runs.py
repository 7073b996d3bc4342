"""The flow runs this server process wrote last, as a transition would read them (PostgreSQL, unlocked path).

Why: a transition on PostgreSQL's unlocked path is a read (the run and its current state) and a
compare-and-set write. A run's life is a create and a few transitions in quick succession, usually
through the same server: after each write the server knows exactly what it stored, so the next proposal
for the run is decided on that and written straight away, one round trip instead of two.

Why it is safe: the write applies only if the run's ``state_id`` and ``created`` are still the ones the
decision saw. Every write of a flow-run row writes a new state with a new id (the run's other columns
are set when it is created and never change), and ``created`` tells a run apart from one deleted and
created again with the same ids. So a remembered run that was moved since (by another replica, or by
the locked path) makes the write change nothing, and the proposal is decided again on a fresh read, as
under contention. Only an accepted proposal is written from memory: its state carries the proposal's
id, so a replay of an applied proposal fails the write and is answered as a replay. Anything else (an
answer that writes nothing, which no write checks; a state the rules write instead of the proposal) is
decided again on a fresh read.

The memory is bounded (:data:`CAPACITY` runs; the one written longest ago goes first) and per database.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, NamedTuple
from uuid import UUID
from weakref import WeakKeyDictionary

from headrace.schemas.states import State
from headrace.server.db import Database
from headrace.server.db.types import RetryDelays

__all__ = ["CAPACITY", "RecentRuns", "RunSnapshot", "recent_runs"]

CAPACITY = 10_000
"""Runs remembered per database: about 15 MB at most, and runs in flight on a busy server."""


class RunSnapshot(NamedTuple):
    """A run's columns that a transition reads (those of ``flow_run_statements.LOCK_RUN``), as stored."""

    id: UUID
    state_id: UUID | None
    concurrency_limits: list[str]
    max_retries: int
    retry_delay_seconds: float | list[float]
    retry_jitter_factor: float | None
    run_count: int
    start_time: Any
    end_time: Any
    total_run_time: float
    next_scheduled_start_time: Any
    pause_keys: list[str]
    created: Any

    @classmethod
    def of(cls, row: Any) -> RunSnapshot:
        """From a row with these columns (among others)."""
        return cls._make(getattr(row, name) for name in cls._fields)

    @classmethod
    def inserted(cls, values: Mapping[str, Any]) -> RunSnapshot:
        """From the values a new run's row was inserted with, as they read back."""
        return cls._make(values[name] for name in cls._fields)._replace(
            retry_delay_seconds=RetryDelays.as_read(values["retry_delay_seconds"])
        )

    def moved(self, values: Mapping[str, Any]) -> RunSnapshot:
        """After an update of the run's row with ``values`` (a transition's: its state columns)."""
        return self._replace(**{name: values[name] for name in self._fields if name in values})


class RecentRuns:
    """Run id → (the run as stored, its current state), for the runs written last."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._runs: OrderedDict[UUID, tuple[RunSnapshot, State]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._runs)

    def get(self, run_id: UUID) -> tuple[RunSnapshot, State] | None:
        return self._runs.get(run_id)

    def remember(self, run: RunSnapshot, current: State) -> None:
        """Remember ``run`` and its current state, without the state's data and message: results and
        tracebacks can be large, and no decision written from memory reads them."""
        if current.data is not None or current.message is not None:
            current = current.model_copy(update={"data": None, "message": None})
        runs = self._runs
        runs[run.id] = (run, current)
        runs.move_to_end(run.id)
        if len(runs) > self.capacity:
            runs.popitem(last=False)

    def forget(self, run_id: UUID) -> None:
        self._runs.pop(run_id, None)


_BY_DATABASE: WeakKeyDictionary[Database, RecentRuns] = WeakKeyDictionary()


def recent_runs(database: Database) -> RecentRuns:
    """The runs remembered for ``database`` (made on first use)."""
    found = _BY_DATABASE.get(database)
    if found is None:
        found = _BY_DATABASE[database] = RecentRuns()
    return found
