"""One Alembic history for both dialects: it upgrades, downgrades and upgrades again, and agrees with the models."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from headrace.server.db import Database, MigrationError, migrate
from headrace.server.db.models import Base
from headrace.settings import Settings

TABLES = {
    "flows",
    "flow_runs",
    "flow_run_states",
    "task_runs",
    "task_run_states",
    "logs",
    "artifacts",
    "variables",
    "concurrency_limits",
    "concurrency_slots",
    "api_keys",
    "block_types",
    "block_schemas",
    "block_documents",
    "block_document_references",
}


async def _tables(database: Database) -> set[str]:
    async with database.read() as session:
        connection = await session.connection()
        names = await connection.run_sync(lambda sync: sa.inspect(sync).get_table_names())
    return set(names) - {"alembic_version"}


async def _differences(database: Database, metadata: sa.MetaData) -> list[Any]:
    def compare(connection: sa.Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with database.read() as session:
        connection = await session.connection()
        return await connection.run_sync(compare)


def test_upgrade_downgrade_to_base_and_upgrade_again(
    empty_database_url: str, settings_for: Callable[..., Settings]
) -> None:
    async def scenario() -> None:
        async with Database.from_settings(settings_for(empty_database_url)) as database:
            assert await migrate.current_revision(database) is None
            assert await _tables(database) == set()

            assert await migrate.upgrade(database) == migrate.head_revision()
            assert await migrate.current_revision(database) == migrate.head_revision()
            assert await _tables(database) == TABLES

            assert await migrate.downgrade(database, "base") is None
            assert await migrate.current_revision(database) is None
            assert await _tables(database) == set()

            assert await migrate.upgrade(database, "head") == migrate.head_revision()
            assert await _tables(database) == TABLES
            assert await _differences(database, Base.metadata) == []

    asyncio.run(scenario())


def test_models_and_migrations_agree(empty_database_url: str, settings_for: Callable[..., Settings]) -> None:
    """Autogenerate finds nothing to do after upgrading: the models and the history describe one schema."""

    async def scenario() -> None:
        async with Database.from_settings(settings_for(empty_database_url)) as database:
            await migrate.upgrade(database)
            assert await _differences(database, Base.metadata) == []

            # The comparison is not blind: a column the migrations lack is reported.
            drifted = sa.MetaData()
            for table in Base.metadata.sorted_tables:
                table.to_metadata(drifted)
            drifted.tables["flows"].append_column(sa.Column("color", sa.String(), nullable=True))
            differences = await _differences(database, drifted)
            assert [(d[0], d[3].name) for d in differences] == [("add_column", "color")]

    asyncio.run(scenario())


def test_reset_empties_every_table(database_url: str, settings_for: Callable[..., Settings]) -> None:
    from headrace.server.db import models

    async def scenario() -> None:
        async with Database.from_settings(settings_for(database_url)) as database:
            async with database.write() as session:
                session.add(models.Flow(name="kept-until-reset"))
            assert await migrate.reset(database) == migrate.head_revision()
            async with database.read() as session:
                assert (await session.scalar(sa.select(sa.func.count()).select_from(models.Flow))) == 0
            assert await _tables(database) == TABLES

    asyncio.run(scenario())


def test_errors_are_one_clear_line(empty_database_url: str, settings_for: Callable[..., Settings]) -> None:
    async def scenario() -> None:
        async with Database.from_settings(settings_for(empty_database_url)) as database:
            with pytest.raises(MigrationError, match="nothing to downgrade"):
                await migrate.downgrade(database)
            with pytest.raises(MigrationError, match="Can't locate revision identified by 'nope'"):
                await migrate.upgrade(database, "nope")
            assert await migrate.current_revision(database) is None

            await migrate.upgrade(database)
            async with database.write() as session:
                await session.execute(sa.text("UPDATE alembic_version SET version_num = 'fffffffffff0'"))
            with pytest.raises(MigrationError, match="newer headrace") as caught:
                await migrate.upgrade(database)
            assert "\n" not in str(caught.value)
            with pytest.raises(MigrationError, match="newer headrace"):
                await migrate.reset(database)
            assert await migrate.current_revision(database) == "fffffffffff0"

    asyncio.run(scenario())


def test_concurrent_upgrades_run_one_after_the_other(
    empty_database_url: str, settings_for: Callable[..., Settings]
) -> None:
    """Server replicas (or processes) starting together: each migrates or finds the work done."""
    settings = settings_for(empty_database_url)

    async def scenario() -> None:
        databases = [Database.from_settings(settings) for _ in range(4)]
        try:
            results = await asyncio.gather(*(migrate.upgrade(database) for database in databases))
            assert results == [migrate.head_revision()] * 4
            assert await _tables(databases[0]) == TABLES
        finally:
            for database in databases:
                await database.dispose()

    asyncio.run(scenario())


UPGRADE_WHEN_TOLD = """
import asyncio, sys
from headrace.server.db import Database, migrate
from headrace.settings import get_settings

async def main():
    async with Database.from_settings(get_settings()) as database:
        print("ready", flush=True)
        sys.stdin.readline()
        print(await migrate.upgrade(database), flush=True)

asyncio.run(main())
"""


def test_processes_upgrading_at_once_do_not_collide(
    empty_database_url: str, tmp_path: Path, clean_environ: dict[str, str]
) -> None:
    """Replicas started together: the PostgreSQL advisory lock (or SQLite's write lock) lines them up."""
    env = {
        **clean_environ,
        "HEADRACE_HOME": str(tmp_path),
        "HEADRACE_SERVER_DATABASE_CONNECTION_URL": empty_database_url,
    }
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", UPGRADE_WHEN_TOLD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready", process.stderr.read() if process.stderr else ""
        for process in processes:  # all at once
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        outcomes = [process.communicate(timeout=120) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    for process, (out, err) in zip(processes, outcomes, strict=True):
        assert process.returncode == 0, err
        assert out.strip() == migrate.head_revision()


def test_migrate_on_start_follows_the_setting(
    empty_database_url: str, settings_for: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        off = settings_for(empty_database_url, server_migrate_on_start=False)
        async with Database.from_settings(off) as database:
            with caplog.at_level(logging.WARNING, logger="headrace.server.db"):
                await migrate.migrate_on_start(database, off)
            assert await migrate.current_revision(database) is None
            assert "headrace server database upgrade" in caplog.text

        on = settings_for(empty_database_url, server_migrate_on_start=True)
        async with Database.from_settings(on) as database:
            await migrate.migrate_on_start(database, on)
            assert await migrate.current_revision(database) == migrate.head_revision()
            await migrate.migrate_on_start(database, on)  # a second start finds nothing to do
            assert await migrate.current_revision(database) == migrate.head_revision()

    asyncio.run(scenario())


def test_the_history_is_linear_and_every_revision_downgrades() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.alembic_config())
    assert len(script.get_heads()) == 1
    for revision in script.walk_revisions():
        assert revision.module.downgrade is not None
        assert revision.doc, f"revision {revision.revision} has no message"
