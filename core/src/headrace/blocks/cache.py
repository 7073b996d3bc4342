"""The per-run cache of loaded blocks: a flow run that loads one block twice asks the server once.

Entries are kept per flow run id (a task inside a flow shares its flow run's entries) and only for the
last few runs of the process; outside a run nothing is cached, so a script always sees the newest
document. A hit returns a deep copy, so a run that changes its block does not change the cache.
Saving or deleting a block in this process forgets it in every run.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING
from uuid import UUID

if TYPE_CHECKING:
    from headrace.blocks.core import Block

__all__ = ["cached_block", "current_flow_run_id", "forget_block", "remember_block"]

MAX_RUNS = 32
"""How many flow runs keep their loaded blocks (the oldest run's entries go first)."""

_runs: OrderedDict[UUID, dict[tuple[str, str], Block]] = OrderedDict()
_lock = threading.Lock()


def current_flow_run_id() -> UUID | None:
    """The id of the flow run the caller runs in (from a task run too), or ``None`` outside any run."""
    from headrace.context import FlowRunContext, TaskRunContext

    task_context = TaskRunContext.get()
    if task_context is not None:
        return task_context.task_run.flow_run_id
    flow_context = FlowRunContext.get()
    return flow_context.flow_run.id if flow_context is not None else None


def cached_block(run_id: UUID | None, slug: str, name: str) -> Block | None:
    """A copy of the block this run loaded as (slug, name) before, if any."""
    if run_id is None:
        return None
    with _lock:
        block = _runs.get(run_id, {}).get((slug, name))
    return block.model_copy(deep=True) if block is not None else None


def remember_block(run_id: UUID | None, slug: str, name: str, block: Block) -> None:
    """Keep a copy of ``block`` for the rest of the run ``run_id`` (nothing outside a run)."""
    if run_id is None:
        return
    with _lock:
        entries = _runs.get(run_id)
        if entries is None:
            entries = _runs[run_id] = {}
            while len(_runs) > MAX_RUNS:
                _runs.popitem(last=False)
        entries[(slug, name)] = block.model_copy(deep=True)


def forget_block(slug: str, name: str) -> None:
    """Drop (slug, name) from every run's entries (after it was saved or deleted here)."""
    with _lock:
        for entries in _runs.values():
            entries.pop((slug, name), None)
