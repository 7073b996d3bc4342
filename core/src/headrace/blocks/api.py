"""How blocks reach the orchestration API: the process's one client, on the process's one loop.

Blocks use the client the flow engine uses (:func:`headrace.engine.api.engine_api`): HTTP when
``HEADRACE_API_URL`` is set, otherwise the embedded database under ``HEADRACE_HOME``, opened once and
closed at exit. Its connections live on the process loop (:mod:`headrace.client.sync`), so every call
runs there: the sync methods wait for it, the async ones await it from whichever loop they run on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

if TYPE_CHECKING:
    from headrace.client.base import OrchestrationClient

__all__ = ["current_client", "run_awaitable", "run_blocking"]

T = TypeVar("T")
P = ParamSpec("P")


def current_client() -> OrchestrationClient:
    """The process's client for the settings in force now."""
    from headrace.engine.api import current_settings, engine_api

    return engine_api(current_settings()).client


def run_blocking(
    function: Callable[Concatenate[OrchestrationClient, P], Awaitable[T]], *args: P.args, **kwargs: P.kwargs
) -> T:
    """Run ``function(client, ...)`` on the process loop and wait for it."""
    from headrace.client.sync import run_sync

    client = current_client()

    async def call() -> T:
        return await function(client, *args, **kwargs)

    return run_sync(call())


async def run_awaitable(
    function: Callable[Concatenate[OrchestrationClient, P], Awaitable[T]], *args: P.args, **kwargs: P.kwargs
) -> T:
    """Await ``function(client, ...)`` run on the process loop, from any loop."""
    from headrace.client.sync import get_loop, in_loop_thread

    client = current_client()

    async def call() -> T:
        return await function(client, *args, **kwargs)

    if in_loop_thread():
        return await call()
    result: Any = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call(), get_loop()))
    return result  # type: ignore[no-any-return]
