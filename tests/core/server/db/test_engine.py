"""Engines built from settings: the URL, SQLite's pragmas, PostgreSQL's connection settings, foreign keys."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from headrace.server.db import Database, DatabaseConfigError, database_url, models
from headrace.server.db.engine import (
    SQLITE_CACHE_SIZE,
    SQLITE_MMAP_SIZE,
    SQLITE_WAL_AUTOCHECKPOINT,
    postgresql_connect_args,
)
from headrace.settings import Settings

# ---------------------------------------------------------------------------------------------- URLs


def test_the_default_is_sqlite_under_headrace_home(settings_for: Callable[..., Settings], tmp_path: Path) -> None:
    url = database_url(settings_for(None))
    assert url.drivername == "sqlite+aiosqlite"
    assert url.database == str(tmp_path / "home" / "headrace.db")


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("sqlite:///relative.db", "sqlite+aiosqlite"),
        ("sqlite+pysqlite:////abs/x.db", "sqlite+aiosqlite"),
        ("postgresql://u:p@db.example:5433/headrace", "postgresql+asyncpg"),
        ("postgres://u@db.example/headrace", "postgresql+asyncpg"),
        ("postgresql+psycopg://u@db.example/headrace", "postgresql+asyncpg"),
    ],
)
def test_urls_get_the_async_driver(given: str, driver: str, settings_for: Callable[..., Settings]) -> None:
    assert database_url(settings_for(given)).drivername == driver


def test_a_home_relative_sqlite_path_is_expanded(settings_for: Callable[..., Settings]) -> None:
    assert database_url(settings_for("sqlite:///~/hr.db")).database == str(Path("~/hr.db").expanduser())


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("mysql://u@h/db", "uses 'mysql', which headrace does not support"),
        ("not a url", "is not a database URL"),
    ],
)
def test_unusable_urls_are_explained(given: str, message: str, settings_for: Callable[..., Settings]) -> None:
    with pytest.raises(DatabaseConfigError, match=message) as caught:
        database_url(settings_for(given))
    assert "HEADRACE_SERVER_DATABASE_CONNECTION_URL" in str(caught.value)


def test_the_password_never_shows(settings_for: Callable[..., Settings]) -> None:
    settings = settings_for("postgresql://user:s3cret@db.example/headrace")
    database = Database.from_settings(settings)
    assert "s3cret" not in repr(database)
    assert "s3cret" not in database.display_url
    asyncio.run(database.dispose())


# -------------------------------------------------------------------------------------------- SQLite


def test_sqlite_pragmas_are_in_effect_on_every_connection(
    settings_for: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_for(f"sqlite:///{tmp_path / 'p' / 'headrace.db'}", server_database_sqlite_busy_timeout=12.5)

    async def pragmas(session: sa.ext.asyncio.AsyncSession) -> dict[str, object]:
        names = ["journal_mode", "foreign_keys", "busy_timeout", "synchronous", "query_only", "cache_size", "mmap_size"]
        names.append("wal_autocheckpoint")
        return {name: await session.scalar(sa.text(f"PRAGMA {name}")) for name in names}

    async def scenario() -> None:
        async with Database.from_settings(settings) as database:
            async with database.write() as session:
                written = await pragmas(session)
            async with database.read() as session:
                read = await pragmas(session)
        assert written == {
            "journal_mode": "wal",
            "foreign_keys": 1,
            "busy_timeout": 0,  # the inline writer never waits inside SQLite; begin_immediate waits instead
            "synchronous": 2,
            "query_only": 0,
            "cache_size": SQLITE_CACHE_SIZE,
            "mmap_size": SQLITE_MMAP_SIZE,
            "wal_autocheckpoint": SQLITE_WAL_AUTOCHECKPOINT,
        }
        # The checkpoint size is the writer's setting; readers keep SQLite's default.
        assert read == {**written, "busy_timeout": 12500, "query_only": 1, "wal_autocheckpoint": 1000}

    asyncio.run(scenario())
    assert (tmp_path / "p" / "headrace.db").is_file()  # the folder was created


def _hold_write_lock(path: Path, seconds: float, locked: threading.Event) -> None:
    """Another writer (as another process would be): holds SQLite's write lock for ``seconds``."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(seconds)
        connection.execute("COMMIT")
    finally:
        connection.close()


@pytest.mark.parametrize(("hold", "busy_timeout", "succeeds"), [(0.4, 5.0, True), (1.5, 0.3, False)])
def test_the_writer_waits_for_another_writer_without_stopping_the_event_loop(
    settings_for: Callable[..., Settings], tmp_path: Path, hold: float, busy_timeout: float, succeeds: bool
) -> None:
    path = tmp_path / "headrace.db"
    settings = settings_for(f"sqlite:///{path}", server_database_sqlite_busy_timeout=busy_timeout)

    async def scenario() -> tuple[bool, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        async with Database.from_settings(settings) as database:
            async with database.write() as session:
                await session.execute(sa.text("CREATE TABLE t (x INTEGER)"))
            locked = threading.Event()
            other = threading.Thread(target=_hold_write_lock, args=(path, hold, locked))
            other.start()
            locked.wait(5)
            ticking = asyncio.create_task(ticker())
            try:
                async with database.write() as session:
                    await session.execute(sa.text("INSERT INTO t VALUES (1)"))
                wrote = True
            except sa.exc.OperationalError as error:
                wrote = "database is locked" not in str(error)  # any other error fails the test below
            finally:
                ticking.cancel()
                await asyncio.to_thread(other.join)
        return wrote, ticks

    wrote, ticks = asyncio.run(scenario())
    assert wrote is succeeds
    # The loop kept running while the writer waited: ~10 ms ticks for the whole wait, not a frozen loop.
    assert ticks >= min(hold, busy_timeout) / 0.01 / 4


def test_in_memory_sqlite_works_for_experiments(settings_for: Callable[..., Settings]) -> None:
    from headrace.server.db.migrate import upgrade

    async def scenario() -> None:
        async with Database.from_settings(settings_for("sqlite://")) as database:
            await upgrade(database)
            async with database.write() as session:
                session.add(models.Flow(name="in-memory"))
            async with database.read() as session:
                assert (await session.scalars(sa.select(models.Flow.name))).all() == ["in-memory"]

    asyncio.run(scenario())


# -------------------------------------------------------------------------------------- both dialects


def test_foreign_keys_are_enforced(server_settings: Settings) -> None:
    async def scenario() -> None:
        async with Database.from_settings(server_settings) as database:
            with pytest.raises(sa.exc.IntegrityError):
                async with database.write() as session:
                    session.add(models.FlowRun(flow_id=uuid.uuid4(), name="orphan"))

    asyncio.run(scenario())


def test_deleting_a_run_deletes_what_it_owns(server_settings: Settings) -> None:
    async def scenario() -> None:
        async with Database.from_settings(server_settings) as database:
            async with database.write() as session:
                flow = models.Flow(name="owner")
                session.add(flow)
                await session.flush()
                run = models.FlowRun(flow_id=flow.id, name="run")
                session.add(run)
                await session.flush()
                task = models.TaskRun(flow_run_id=run.id, task_key="t", name="t")
                session.add_all(
                    [
                        task,
                        models.FlowRunState(flow_run_id=run.id, type=models.StateType.RUNNING, name="Running"),
                        models.Artifact(type=models.ArtifactType.MARKDOWN, data="# hi", flow_run_id=run.id),
                    ]
                )
                await session.flush()
                session.add(models.TaskRunState(task_run_id=task.id, type=models.StateType.COMPLETED, name="Completed"))
                run_id = run.id
            async with database.write() as session:
                await session.execute(sa.delete(models.FlowRun).where(models.FlowRun.id == run_id))
            async with database.read() as session:
                for table in (models.TaskRun, models.TaskRunState, models.FlowRunState, models.Artifact):
                    assert await session.scalar(sa.select(sa.func.count()).select_from(table)) == 0, table
                assert await session.scalar(sa.select(sa.func.count()).select_from(models.Flow)) == 1

    asyncio.run(scenario())


# ---------------------------------------------------------------------------------------- PostgreSQL


def test_postgresql_connections_carry_the_settings(
    empty_postgres_url: str, settings_for: Callable[..., Settings]
) -> None:
    from headrace.server.db.migrate import upgrade

    schema = f"hr_{uuid.uuid4().hex[:8]}"
    settings = settings_for(
        empty_postgres_url,
        server_database_application_name="headrace-test-app",
        server_database_search_path=f"{schema}, public",
        server_database_statement_timeout=0.25,
    )

    async def scenario() -> None:
        async with Database.from_settings(settings) as database:
            async with database.write() as session:
                await session.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
            async with database.read() as session:
                shown = {
                    name: await session.scalar(sa.text(f"SHOW {name}"))
                    for name in ("application_name", "search_path", "statement_timeout")
                }
                assert shown == {
                    "application_name": "headrace-test-app",
                    "search_path": f"{schema}, public",
                    "statement_timeout": "250ms",
                }
            with pytest.raises(sa.exc.DBAPIError, match="statement timeout"):
                async with database.read() as session:
                    await session.execute(sa.text("SELECT pg_sleep(30)"))

            # Migrations lift the statement timeout and create their tables in the first schema of the path.
            await upgrade(database)
            async with database.read() as session:
                query = "SELECT DISTINCT table_schema FROM information_schema.tables WHERE table_name = 'flow_runs'"
                schemas = set((await session.scalars(sa.text(query))).all())
            assert schemas == {schema}

    asyncio.run(scenario())


def test_pool_settings_reach_the_engine(settings_for: Callable[..., Settings]) -> None:
    settings = settings_for(
        "postgresql://u@db.example/headrace",
        server_database_pool_size=7,
        server_database_max_overflow=3,
        server_database_pool_timeout=4.5,
        server_database_connection_timeout=2.5,
    )
    database = Database.from_settings(settings)
    pool = database.engine.pool
    assert (pool.size(), pool._max_overflow, pool._timeout) == (7, 3, 4.5)  # type: ignore[attr-defined]
    assert postgresql_connect_args(settings)["timeout"] == 2.5
    asyncio.run(database.dispose())


def test_no_statement_timeout_when_unset(settings_for: Callable[..., Settings]) -> None:
    args = postgresql_connect_args(settings_for(None, server_database_statement_timeout=None))
    assert "statement_timeout" not in args["server_settings"]
    assert "ssl" not in args
