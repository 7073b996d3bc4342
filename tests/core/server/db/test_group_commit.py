"""Grouped writes and prepared statements: each write succeeds or fails alone, and returns once committed.

On SQLite files the writes that queue up together share a transaction (headrace.server.db.group_commit);
on PostgreSQL each is a transaction of its own. The promises are the same on both, so both run these.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from headrace.server.db import Database, models
from headrace.server.db.migrate import migrate_on_start
from headrace.server.db.prepared import Prepared
from headrace.settings import Settings

_FLOWS: sa.Table = models.Flow.__table__  # type: ignore[assignment]
INSERT_FLOW = Prepared(
    sa.insert(_FLOWS).values(
        id=sa.bindparam("id", type_=_FLOWS.c.id.type),
        name=sa.bindparam("name", type_=_FLOWS.c.name.type),
        tags=sa.bindparam("tags", type_=_FLOWS.c.tags.type),
        created=sa.func.now(),
        updated=sa.func.now(),
    )
)
FLOW_BY_NAME = Prepared(
    sa.select(_FLOWS.c.id, _FLOWS.c.tags).where(_FLOWS.c.name == sa.bindparam("name", type_=_FLOWS.c.name.type))
)


async def _committed_names(database: Database) -> set[str]:
    """What a reader finds: readers have connections of their own, so they see committed writes only."""
    async with database.read() as session:
        return set((await session.scalars(sa.select(models.Flow.name))).all())


def test_a_failing_write_in_a_group_leaves_the_others_committed(server_settings: Settings) -> None:
    async def write(database: Database, name: str, fail: bool) -> None:
        async with database.write() as session:
            await INSERT_FLOW.run(session, {"id": uuid.uuid4(), "name": name, "tags": ["t"]})
            session.add(models.Variable(name=f"var-{name}", value=1))
            await session.flush()
            if fail:
                raise RuntimeError(f"{name} fails after writing")

    async def scenario() -> None:
        async with Database.from_settings(server_settings) as database:
            names = [f"flow-{index}" for index in range(30)]
            results = await asyncio.gather(
                *(write(database, name, index % 3 == 0) for index, name in enumerate(names)), return_exceptions=True
            )
            failed = {name for name, result in zip(names, results, strict=True) if isinstance(result, RuntimeError)}
            assert failed == {name for index, name in enumerate(names) if index % 3 == 0}
            # Every write that returned is committed (visible to another connection), and no failed one is.
            assert await _committed_names(database) == set(names) - failed
            async with database.read() as session:
                variables = set((await session.scalars(sa.select(models.Variable.name))).all())
            assert variables == {f"var-{name}" for name in set(names) - failed}

    asyncio.run(scenario())


def test_prepared_statements_read_what_the_orm_wrote_with_the_same_types(server_settings: Settings) -> None:
    async def scenario() -> None:
        async with Database.from_settings(server_settings) as database:
            async with database.write() as session:
                session.add(models.Flow(name="orm", tags=["a", "b"]))
            async with database.write() as session:
                row = await FLOW_BY_NAME.first(session, {"name": "orm"})
                missing = await FLOW_BY_NAME.first(session, {"name": "nope"})
            assert row is not None
            assert isinstance(row.id, uuid.UUID)
            assert row.tags == ["a", "b"]
            assert missing is None

    asyncio.run(scenario())


def test_a_constraint_error_on_the_fast_path_is_sqlalchemys_and_rolls_back_only_its_write(
    server_settings: Settings,
) -> None:
    async def scenario() -> None:
        async with Database.from_settings(server_settings) as database:
            async with database.write() as session:
                await INSERT_FLOW.run(session, {"id": uuid.uuid4(), "name": "taken", "tags": []})

            async def insert_two() -> None:
                async with database.write() as session:
                    await INSERT_FLOW.run(session, {"id": uuid.uuid4(), "name": "kept-out", "tags": []})
                    await INSERT_FLOW.run(session, {"id": uuid.uuid4(), "name": "taken", "tags": []})

            with pytest.raises(sa.exc.IntegrityError):
                await insert_two()
            async with database.write() as session:
                await INSERT_FLOW.run(session, {"id": uuid.uuid4(), "name": "after", "tags": []})
            assert await _committed_names(database) == {"taken", "after"}

    asyncio.run(scenario())


def test_a_maintenance_connection_commits_the_open_group_first(server_settings: Settings) -> None:
    async def scenario() -> None:
        async with Database.from_settings(server_settings) as database:

            async def grouped() -> None:
                async with database.write() as session:
                    await INSERT_FLOW.run(session, {"id": uuid.uuid4(), "name": "grouped", "tags": []})

            async def maintenance() -> list[str]:
                async with database.write_connection() as connection:
                    return list((await connection.execute(sa.select(models.Flow.name))).scalars())

            _, seen = await asyncio.gather(grouped(), maintenance())
            if database.dialect == "sqlite":
                # One write path, FIFO: the maintenance connection waited for the open group to commit
                # (with one writer connection, it would otherwise wait for that connection forever).
                assert seen == ["grouped"]
            assert await _committed_names(database) == {"grouped"}

    asyncio.run(scenario())


def test_when_the_group_commit_fails_every_write_of_the_group_raises_its_error(
    settings_for: Callable[..., Settings], tmp_path: Path
) -> None:
    """A failed write waits for the writes before it: what it saw may never be committed."""
    settings = settings_for(f"sqlite:///{tmp_path / 'group.db'}")
    sqlite_writer = sa.text("PRAGMA defer_foreign_keys = ON")  # foreign keys are checked at the commit

    async def breaks_the_commit(database: Database) -> None:
        async with database.write() as session:
            await session.execute(sqlite_writer)
            session.add(models.FlowRun(flow_id=uuid.uuid4(), name="orphan"))  # no such flow

    async def fails_after_it(database: Database) -> None:
        async with database.write() as session:
            session.add(models.Flow(name="seen-the-orphan"))
            await session.flush()
            raise RuntimeError("fails because of what it saw")

    async def scenario() -> list[BaseException | None]:
        async with Database.from_settings(settings) as database:
            await migrate_on_start(database, settings)
            results = await asyncio.gather(
                breaks_the_commit(database), fails_after_it(database), return_exceptions=True
            )
            assert await _committed_names(database) == set()
            return list(results)

    first, second = asyncio.run(scenario())
    assert isinstance(first, sa.exc.IntegrityError)
    assert isinstance(second, sa.exc.IntegrityError)  # not its own RuntimeError: the commit failed first
    assert isinstance(second.__cause__, RuntimeError)
