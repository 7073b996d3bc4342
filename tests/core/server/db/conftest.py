"""Helpers shared by the database tests (fixtures, since test modules do not import each other)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

LockWait = Callable[[Any], Awaitable[None]]


async def _until_waiting_for_a_lock(observer: Any) -> None:
    """Return once a session of the observer's database waits for a lock (a write queued behind a row lock)."""
    for _ in range(3000):
        waiting = await observer.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no session ever waited for a lock")


@pytest.fixture
def until_waiting_for_a_lock() -> LockWait:
    """``await until_waiting_for_a_lock(asyncpg_connection)``: see :func:`_until_waiting_for_a_lock`."""
    return _until_waiting_for_a_lock
