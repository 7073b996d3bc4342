"""Grouped writes and prepared statements: each write succeeds or fails alone, and returns once committed.

On SQLite files the writes that queue up together share a transaction (headrace.server.db.group_commit);
on PostgreSQL each is a transaction of its own. The promises are the same on both, so both run these.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
import sqlalchemy as sa

from headrace.server.db import Database, models
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
