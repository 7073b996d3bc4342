"""The retention service: deletes run history, logs, artifacts and events older than their periods.

On by default (``HEADRACE_SERVER_RETENTION_ENABLED``), one pass every
``HEADRACE_SERVER_RETENTION_LOOP_SECONDS``; what a pass deletes is described in
:mod:`headrace.server.operations.retention`.
"""

from __future__ import annotations

import logging

from headrace.server.db import Database
from headrace.server.operations.retention import apply_retention
from headrace.settings import Settings

logger = logging.getLogger("headrace.server.services.retention")


class RetentionService:
    name = "retention"

    def enabled(self, settings: Settings) -> bool:
        return settings.server_retention_enabled

    def interval(self, settings: Settings) -> float:
        return settings.server_retention_loop_seconds

    async def run_once(self, database: Database, settings: Settings) -> None:
        report = await apply_retention(database, settings)
        if report.total:
            logger.info(
                "retention deleted %s",
                ", ".join(f"{count} {kind.replace('_', ' ')}" for kind, count in report.deleted.items() if count),
            )
