"""The server's database layer: typed models, engines, the write path and migrations.

The pieces, and who uses which:

- :class:`Database` (``database.py``): ``Database.from_settings(settings)``; ``async with db.read()`` /
  ``async with db.write()`` yield an ``AsyncSession`` in a transaction; ``db.insert(Model)`` gives the
  dialect's INSERT with ``on_conflict_do_nothing/do_update`` for idempotent upserts.
- ``models``: the ORM models (``from headrace.server.db import models``).
- ``types``: portable column types and :func:`json_contains_all` for tag filters.
- ``migrate``: ``upgrade``, ``downgrade``, ``reset``, ``migrate_on_start``.
- ``engine``: URL resolution and engine construction from settings (used by :class:`Database`).
"""

from __future__ import annotations

from headrace.server.db.database import Database
from headrace.server.db.engine import DatabaseConfigError, MigrationError, database_url

__all__ = ["Database", "DatabaseConfigError", "MigrationError", "database_url"]
