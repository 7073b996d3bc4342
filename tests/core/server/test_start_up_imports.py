"""What a server's start-up leaves out: SQLAlchemy's PostgreSQL dialect on SQLite (and SQLite's on PostgreSQL),
``cryptography`` until a secret is touched, prometheus_client with metrics off, and the ``websockets``
library (the app has no WebSocket route). No timing here; see benchmarks/bench_server.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.routing import APIWebSocketRoute, iter_route_contexts
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateTable
from starlette.routing import WebSocketRoute

from headrace.server.app import create_app
from headrace.server.db import models
from headrace.server.db.types import JSON_TYPE, RetryDelays
from headrace.settings import Settings

MODULES_AFTER = """
import json, sys
from pathlib import Path
from headrace.settings import Settings
settings = Settings(home=Path(sys.argv[1]), server_database_connection_url=None)
{code}
print(json.dumps(sorted(sys.modules)))
"""


def _modules_after(code: str, home: Path) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", MODULES_AFTER.format(code=code), str(home)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_the_database_layer_on_sqlite_does_not_import_the_postgresql_dialect(tmp_path: Path) -> None:
    code = (
        "from headrace.server.db import Database, models\n"
        "database = Database.from_settings(settings)\n"
        "database.insert(models.Flow).on_conflict_do_nothing()\n"
        "str(database.insert(models.Flow).compile(dialect=database.engine.dialect))\n"
    )
    modules = _modules_after(code, tmp_path)
    assert "sqlalchemy.dialects.sqlite" in modules  # the code under test did run
    assert "sqlalchemy.dialects.postgresql" not in modules


def test_create_app_imports_neither_cryptography_nor_the_postgresql_dialect_on_sqlite(tmp_path: Path) -> None:
    modules = _modules_after("from headrace.server.app import create_app\ncreate_app(settings)\n", tmp_path)
    assert "headrace.server.security.encryption" in modules
    assert "headrace.server.operations.task_runs" in modules
    assert not {name for name in modules if name.startswith("cryptography")}
    assert "sqlalchemy.dialects.postgresql" not in modules


def test_create_app_imports_prometheus_client_only_when_metrics_are_on(tmp_path: Path) -> None:
    create = (
        "from headrace.server.app import create_app\n"
        "create_app(Settings(home=Path(sys.argv[1]), server_database_connection_url=None, server_metrics_enabled={}))\n"
    )
    assert "prometheus_client" not in _modules_after(create.format(False), tmp_path)
    assert "prometheus_client" in _modules_after(create.format(True), tmp_path)


@pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
def test_a_postgresql_server_does_not_load_the_sqlite_stack(tmp_path: Path, database_url: str) -> None:
    """SQLAlchemy's SQLite dialect and aiosqlite stay out of a PostgreSQL server's start: app, database check,
    a write through each hot path."""
    code = (
        "import asyncio, uuid\n"
        f"settings = Settings(home=Path(sys.argv[1]), server_database_connection_url={database_url!r})\n"
        "from headrace.server.app import create_app\n"
        "from headrace.server.db import Database\n"
        "from headrace.server.db.migrate import migrate_on_start\n"
        "from headrace.schemas.runs import FlowRunCreate\n"
        "from headrace.server.operations.flows import ensure_flow\n"
        "from headrace.server.operations.flow_runs import create_flow_run\n"
        "create_app(settings)\n"
        "async def start():\n"
        "    async with Database.from_settings(settings) as database:\n"
        "        await migrate_on_start(database, settings)\n"
        "        await database.ping()\n"
        "        async with database.write() as session:\n"
        "            flow_id, _ = await ensure_flow(database, session, 'imports')\n"
        "        await create_flow_run(database, FlowRunCreate(id=uuid.uuid4(), flow_id=flow_id))\n"
        "asyncio.run(start())\n"
    )
    modules = _modules_after(code, tmp_path)
    assert "asyncpg" in modules  # the code under test did run on PostgreSQL
    assert not {name for name in modules if name.startswith(("aiosqlite", "sqlalchemy.dialects.sqlite"))}


def test_serve_loads_no_websocket_protocol(tmp_path: Path) -> None:
    """What ``serve`` hands uvicorn, loaded as uvicorn loads it (without serving)."""
    code = (
        "from headrace.server import serve\n"
        "def load_only(self, sockets=None):\n"
        "    self.config.load()\n"
        "    print('ws protocol:', self.config.ws_protocol_class)\n"
        "serve._AnnouncingServer.run = load_only\n"
        "try:\n"
        "    serve.serve(settings, host='127.0.0.1', port=0)\n"
        "except SystemExit:\n"
        "    pass\n"
    )
    modules = _modules_after(code, tmp_path)
    assert "uvicorn.lifespan.on" in modules  # the configuration was loaded
    assert not {name for name in modules if name.startswith(("websockets", "wsproto"))}


def test_the_app_has_no_websocket_route(tmp_path: Path) -> None:
    """``serve`` runs uvicorn with ``ws="none"``: a WebSocket route added to the app would need it back."""
    app = create_app(Settings(home=tmp_path, server_database_connection_url=None))
    contexts = list(iter_route_contexts(app.routes))
    assert contexts
    assert not [c for c in contexts if isinstance(c.original_route, (APIWebSocketRoute, WebSocketRoute))]


def test_json_columns_are_jsonb_on_postgresql_and_json_on_sqlite() -> None:
    """The JSON type keeps what ``JSON().with_variant(JSONB(), "postgresql")`` gave: DDL, casts, processors."""
    table = models.Base.metadata.tables["flow_runs"]
    pg, lite = postgresql.asyncpg.dialect(), sqlite.aiosqlite.dialect()  # type: ignore[no-untyped-call]
    assert "tags JSONB NOT NULL" in str(CreateTable(table).compile(dialect=pg))
    assert "tags JSON NOT NULL" in str(CreateTable(table).compile(dialect=lite))
    retry_delays = next(column for column in table.c if isinstance(column.type, RetryDelays))
    assert f"{retry_delays.name} JSONB" in str(CreateTable(table).compile(dialect=pg))
    assert "::JSONB" in str(sa.insert(table).values(tags=["a"]).compile(dialect=pg))
    variant = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
    for dialect in (pg, lite):
        ours, theirs = JSON_TYPE.dialect_impl(dialect), variant.dialect_impl(dialect)
        assert type(ours) is type(theirs)
        assert getattr(ours, "none_as_null", None) is getattr(theirs, "none_as_null", None) is True
    assert isinstance(JSON_TYPE, sa.JSON)  # db.driver's fast SQLite path recognises JSON columns so
