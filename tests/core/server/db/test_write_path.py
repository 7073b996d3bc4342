"""The write path: concurrent writers never see "database is locked", and reads cannot write."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from headrace.server.db import Database, models
from headrace.settings import Settings

WRITERS = 50


async def _increment(database: Database, index: int) -> None:
    """A read-modify-write: lost updates or lock errors show at once if writers are not serialized."""
    async with database.write() as session:
        counter = await session.scalar(
            sa.select(models.Variable).where(models.Variable.name == "counter").with_for_update()
        )
        assert counter is not None
        seen = counter.value
        await asyncio.sleep(0)  # let every other writer try to get in here
        session.add(models.Flow(name=f"flow-{index}", tags=[str(index)]))
        counter.value = seen + 1


def test_fifty_concurrent_writers_all_succeed(server_settings: Settings) -> None:
    async def scenario() -> None:
        async with Database.from_settings(server_settings) as database:
            async with database.write() as session:
                session.add(models.Variable(name="counter", value=0))

            results = await asyncio.gather(
                *(_increment(database, index) for index in range(WRITERS)), return_exceptions=True
            )
            assert [result for result in results if result is not None] == []

            async with database.read() as session:
                names = set((await session.scalars(sa.select(models.Flow.name))).all())
                counter = await session.scalar(
                    sa.select(models.Variable.value).where(models.Variable.name == "counter")
                )
            assert names == {f"flow-{index}" for index in range(WRITERS)}
            assert counter == WRITERS

    asyncio.run(scenario())


WRITE_IN_ANOTHER_PROCESS = """
import asyncio, sys, uuid
from headrace.server.db import Database, models
from headrace.settings import get_settings

async def main():
    async with Database.from_settings(get_settings()) as database:
        print("ready", flush=True)
        sys.stdin.readline()
        for index in range(int(sys.argv[1])):
            async with database.write() as session:
                session.add(models.Log(id=uuid.uuid4(), name="other", level=20, message=str(index),
                                       timestamp=models.utcnow()))

asyncio.run(main())
"""


def test_writers_in_two_processes_wait_for_each_other(
    settings_for: Callable[..., Settings], tmp_path: Path, clean_environ: dict[str, str]
) -> None:
    """The embedded SDK and a server on one SQLite file: BEGIN IMMEDIATE + busy timeout, no lock errors."""
    from headrace.server.db.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    settings = settings_for(url)
    count = 200

    async def migrate() -> None:
        async with Database.from_settings(settings) as database:
            await upgrade(database)

    async def write_here() -> None:
        async with Database.from_settings(settings) as database:
            for index in range(count):
                async with database.write() as session:
                    session.add(models.Log(name="here", level=20, message=str(index), timestamp=models.utcnow()))

    async def rows_by_writer() -> dict[str, int]:
        async with Database.from_settings(settings) as database, database.read() as session:
            query = sa.select(models.Log.name, sa.func.count()).group_by(models.Log.name)
            return {name: number for name, number in (await session.execute(query)).all()}

    asyncio.run(migrate())
    env = {**clean_environ, "HEADRACE_HOME": str(tmp_path), "HEADRACE_SERVER_DATABASE_CONNECTION_URL": url}
    other = subprocess.Popen(
        [sys.executable, "-c", WRITE_IN_ANOTHER_PROCESS, str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert other.stdout is not None
        assert other.stdin is not None
        assert other.stdout.readline().strip() == "ready"
        other.stdin.write("go\n")
        other.stdin.flush()
        asyncio.run(write_here())
        _, err = other.communicate(timeout=120)
    finally:
        if other.poll() is None:
            other.kill()
    assert other.returncode == 0, err
    assert asyncio.run(rows_by_writer()) == {"here": count, "other": count}


def test_a_failed_write_rolls_back_and_frees_the_path(server_settings: Settings) -> None:
    async def fail_midway(database: Database) -> None:
        async with database.write() as session:
            session.add(models.Flow(name="never"))
            await session.flush()
            raise ZeroDivisionError

    async def scenario() -> None:
        async with Database.from_settings(server_settings) as database:
            with pytest.raises(ZeroDivisionError):
                await fail_midway(database)
            async with database.write() as session:
                session.add(models.Flow(name="after"))
            async with database.read() as session:
                assert (await session.scalars(sa.select(models.Flow.name))).all() == ["after"]

    asyncio.run(scenario())


def test_a_write_inside_a_write_fails_at_once(server_settings: Settings) -> None:
    async def scenario() -> None:
        async with Database.from_settings(server_settings) as database:
            async with database.write() as session:
                session.add(models.Flow(name="outer"))
                with pytest.raises(RuntimeError, match="inside another one"):
                    async with database.write():
                        pass
            async with database.read() as session:
                assert (await session.scalars(sa.select(models.Flow.name))).all() == ["outer"]

    asyncio.run(scenario())


def test_a_read_session_cannot_write(server_settings: Settings) -> None:
    async def write_in_read(database: Database) -> None:
        async with database.read() as session:
            session.add(models.Flow(name="sneaky"))
            await session.flush()

    async def scenario() -> None:
        async with Database.from_settings(server_settings) as database:
            with pytest.raises(sa.exc.DBAPIError, match=r"read-?only"):
                await write_in_read(database)
            async with database.write() as session:  # the pooled connection is writable again
                session.add(models.Flow(name="proper"))
            async with database.read() as session:
                assert (await session.scalars(sa.select(models.Flow.name))).all() == ["proper"]

    asyncio.run(scenario())


def test_read_only_is_reset_when_the_connection_is_reused(
    database_url: str, dialect: str, settings_for: Callable[..., Settings]
) -> None:
    """A pool of one connection: a read, then a write, on the very same connection."""
    settings = settings_for(database_url, server_database_pool_size=1, server_database_max_overflow=0)

    async def scenario() -> None:
        async with Database.from_settings(settings) as database:
            for round_ in range(3):
                async with database.read() as session:
                    await session.execute(sa.select(models.Flow))
                async with database.write() as session:
                    session.add(models.Flow(name=f"round-{round_}"))
            async with database.read() as session:
                assert len((await session.scalars(sa.select(models.Flow.id))).all()) == 3

    asyncio.run(scenario())


def test_insert_on_conflict_makes_ingest_idempotent(server_settings: Settings) -> None:
    rows = [
        {"id": uuid.uuid4(), "name": "run", "level": 20, "message": f"line {n}", "timestamp": models.utcnow()}
        for n in range(5)
    ]

    async def scenario() -> None:
        async with Database.from_settings(server_settings) as database:
            for _ in range(2):  # the same batch twice: the second changes nothing
                async with database.write() as session:
                    statement = database.insert(models.Log).values(rows).on_conflict_do_nothing(index_elements=["id"])
                    await session.execute(statement)
            async with database.write() as session:
                statement = database.insert(models.Variable).values(name="v", value=1, tags=[])
                statement = statement.on_conflict_do_update(
                    index_elements=["name"], set_={"value": statement.excluded.value}
                )
                await session.execute(statement)
                statement = database.insert(models.Variable).values(name="v", value=2, tags=[])
                statement = statement.on_conflict_do_update(
                    index_elements=["name"], set_={"value": statement.excluded.value}
                )
                await session.execute(statement)
            async with database.read() as session:
                assert await session.scalar(sa.select(sa.func.count()).select_from(models.Log)) == 5
                assert await session.scalar(sa.select(models.Variable.value)) == 2

    asyncio.run(scenario())
