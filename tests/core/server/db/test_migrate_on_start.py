"""Start-up migration: an empty database is migrated; one already at the newest revision costs one query.

The fast path must agree with Alembic about the newest revision, and must not import Alembic at all
(that import is a large part of a server's start-up); anything it is not sure about goes to Alembic.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from headrace.server.db import Database, migrate
from headrace.settings import Settings

_PROBE = """
import asyncio, json, sys
from headrace.server.db import Database
from headrace.server.db.migrate import migrate_on_start
from headrace.settings import Settings

async def main():
    settings = Settings()
    async with Database.from_settings(settings) as database:
        await migrate_on_start(database, settings)
        print(json.dumps({"alembic_imported": "alembic" in sys.modules}))

asyncio.run(main())
"""


def _start_in_a_fresh_process(url: str, home: Path) -> dict[str, bool]:
    """Run ``migrate_on_start`` in a new interpreter (so imports are observable); what it reports."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("HEADRACE_")}
    env.update(HEADRACE_HOME=str(home), HEADRACE_SERVER_DATABASE_CONNECTION_URL=url)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, bool] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_head_read_from_the_files_is_alembics() -> None:
    assert migrate._head_from_files() == migrate.head_revision()


def test_an_empty_database_is_migrated_and_one_at_head_is_left_without_alembic(
    empty_database_url: str, settings_for: Callable[..., Settings], tmp_path: Path
) -> None:
    first = _start_in_a_fresh_process(empty_database_url, tmp_path)
    assert first == {"alembic_imported": True}  # it had to migrate

    async def revision() -> str | None:
        async with Database.from_settings(settings_for(empty_database_url)) as database:
            return await migrate.current_revision(database)

    assert asyncio.run(revision()) == migrate.head_revision()
    assert _start_in_a_fresh_process(empty_database_url, tmp_path) == {"alembic_imported": False}


def test_a_database_behind_the_code_is_upgraded(
    empty_database_url: str, settings_for: Callable[..., Settings], tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with Database.from_settings(settings_for(empty_database_url)) as database:
            await migrate.upgrade(database)
            await migrate.downgrade(database, "-1")
            behind = await migrate.current_revision(database)
            assert behind is not None
            assert behind != migrate.head_revision()
            await migrate.migrate_on_start(database, settings_for(empty_database_url))
            assert await migrate.current_revision(database) == migrate.head_revision()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"a.py": 'revision = "a"\ndown_revision = None\n', "b.py": 'revision: str = "b"\ndown_revision = "a"\n'}, "b"),
        # Two heads (a branch), a merge and an assignment that is not a literal: Alembic decides.
        ({"a.py": 'revision = "a"\ndown_revision = None\n', "b.py": 'revision = "b"\ndown_revision = None\n'}, None),
        ({"a.py": 'revision = "a"\ndown_revision = ("b", "c")\n'}, None),
        ({"a.py": "revision = make()\ndown_revision = None\n"}, None),
        ({}, None),
    ],
)
def test_the_fast_path_gives_up_when_unsure(
    files: dict[str, str], expected: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    for name, text in files.items():
        (versions / name).write_text(text)
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", tmp_path)
    migrate._head_from_files.cache_clear()
    try:
        assert migrate._head_from_files() == expected
    finally:
        migrate._head_from_files.cache_clear()
