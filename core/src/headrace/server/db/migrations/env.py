"""Alembic's environment for headrace: runs on the connection :mod:`headrace.server.db.migrate` provides.

There is no ``alembic.ini``: the configuration is built in code, so migrations run the same from a
source checkout and from an installed wheel. Use ``headrace server database upgrade`` (or the functions
in ``headrace.server.db.migrate``) rather than the ``alembic`` command.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from headrace.server.db.models import Base
from headrace.server.db.types import render_migration_type


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things: batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=render_migration_type,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("headrace's migrations run against a live database; offline (--sql) mode is not supported")

_connection = context.config.attributes.get("connection")
if not isinstance(_connection, Connection):
    raise RuntimeError(
        "run headrace's migrations through headrace.server.db.migrate or `headrace server database upgrade`"
    )
run_migrations(_connection)
