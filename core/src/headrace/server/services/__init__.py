"""Background services: loops that run inside the server (or alone, ``headrace server services start``).

A service is a small object with a ``name``, an ``enabled(settings)`` check, an ``interval(settings)``
in seconds and ``async run_once(database, settings)``. :func:`run_services` runs each enabled one
in its own asyncio task on the server's event loop; one pass that raises is logged and the loop goes on.
On PostgreSQL several replicas may run the same service: a pass must claim its work with row locks
(``FOR UPDATE SKIP LOCKED``) or be harmless to repeat.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

from headrace.server.db import Database
from headrace.settings import Settings

logger = logging.getLogger("headrace.server.services")


class Service(Protocol):
    name: str

    def enabled(self, settings: Settings) -> bool: ...

    def interval(self, settings: Settings) -> float: ...

    async def run_once(self, database: Database, settings: Settings) -> None: ...


def all_services() -> list[Service]:
    """Every service the server knows, enabled or not."""
    from headrace.server.services.retention import RetentionService

    return [RetentionService()]


async def _loop(service: Service, database: Database, settings: Settings) -> None:
    while True:
        try:
            await service.run_once(database, settings)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("service %s failed one pass; it will try again", service.name)
        await asyncio.sleep(service.interval(settings))


def start_services(
    database: Database, settings: Settings, services: Sequence[Service] | None = None
) -> list[asyncio.Task[None]]:
    """Start each enabled service as a task; cancel the tasks to stop them."""
    chosen = all_services() if services is None else list(services)
    return [
        asyncio.create_task(_loop(service, database, settings), name=f"headrace-service-{service.name}")
        for service in chosen
        if service.enabled(settings)
    ]


async def stop_services(tasks: Sequence[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
