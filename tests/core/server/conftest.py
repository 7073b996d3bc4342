"""Database fixtures for the server's tests, on SQLite and on PostgreSQL.

Every fixture below that takes ``dialect`` runs each test twice, as ``[sqlite]`` and ``[postgresql]``.
PostgreSQL is the one at ``HEADRACE_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``); its tests are skipped, with the reason, only when that
server cannot be reached. Every PostgreSQL database a test uses is created for it
(``headrace_test_<random>``) and dropped afterwards.

- ``database_url``: a database migrated to head, with no rows in it. SQLite: a fresh file per test
  (a copy of a template migrated once per session). PostgreSQL: one database per test session, every
  table emptied before each test.
- ``empty_database_url``: a database with nothing in it, not even the schema (migration tests).
- ``empty_postgres_url``, ``postgres``: for PostgreSQL-only tests (not parametrized).
- ``server_settings``: :class:`~headrace.settings.Settings` for ``database_url``, with a temporary
  ``HEADRACE_HOME`` and no ``HEADRACE_*`` variable from the outer environment.
- ``settings_for(url, **overrides)``: the same for any URL, with more settings.

A :class:`~headrace.server.db.Database` belongs to one event loop, so create it inside the test's::

    def test_something(server_settings):
        async def scenario():
            async with Database.from_settings(server_settings) as database:
                async with database.write() as session:
                    ...
        asyncio.run(scenario())
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from headrace.settings import Settings, get_settings

POSTGRES_URL = os.environ.get("HEADRACE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
DIALECTS = ["sqlite", "postgresql"]


# ------------------------------------------------------------------------------------- PostgreSQL


def _run_sql(dsn: str, *statements: str) -> None:
    import asyncpg

    async def run() -> None:
        connection = await asyncpg.connect(dsn, timeout=10)
        try:
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run())


def _database_dsn(name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


class PostgresServer:
    """The PostgreSQL server the tests use: creates and drops uniquely named databases."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.created: list[str] = []

    def create_database(self) -> str:
        """A new, empty database; returns its URL. Dropped when the session ends (or by ``drop``)."""
        name = f"headrace_test_{uuid.uuid4().hex[:12]}"
        _run_sql(self.url, f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return _database_dsn(name)

    def drop_database(self, url: str) -> None:
        from sqlalchemy.engine import make_url

        name = make_url(url).database
        assert name is not None
        assert name.startswith("headrace_test_")
        _run_sql(self.url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self.created:
            self.created.remove(name)

    def execute(self, url: str, *statements: str) -> None:
        _run_sql(url, *statements)


@pytest.fixture(scope="session")
def _postgres_or_reason() -> Iterator[PostgresServer | str]:
    try:
        _run_sql(POSTGRES_URL, "SELECT 1")
    except (OSError, asyncio.TimeoutError) as exc:  # refused, unreachable, timed out
        yield f"PostgreSQL is not reachable at {POSTGRES_URL}: {exc or type(exc).__name__}"
        return
    except Exception as exc:
        import asyncpg

        if isinstance(exc, (asyncpg.exceptions.CannotConnectNowError, asyncpg.exceptions.ConnectionFailureError)):
            yield f"PostgreSQL is not accepting connections at {POSTGRES_URL}: {exc}"
            return
        raise
    server = PostgresServer(POSTGRES_URL)
    yield server
    for name in list(server.created):
        server.drop_database(_database_dsn(name))


@pytest.fixture(scope="session")
def postgres(_postgres_or_reason: PostgresServer | str) -> PostgresServer:
    """The PostgreSQL server; skips the test (saying why) when it cannot be reached."""
    if isinstance(_postgres_or_reason, str):
        pytest.skip(_postgres_or_reason)
    return _postgres_or_reason


# ------------------------------------------------------------------------------------------ settings


@pytest.fixture
def clean_environ() -> dict[str, str]:
    """The environment without any HEADRACE_* variable, for subprocesses (add the ones a test needs)."""
    return {name: value for name, value in os.environ.items() if not name.upper().startswith("HEADRACE_")}


def _clean_settings(home: Path, url: str | None, **overrides: Any) -> Settings:
    """Settings from arguments alone: HEADRACE_* variables of the outer environment must not leak in."""
    saved = {name: os.environ.pop(name) for name in list(os.environ) if name.upper().startswith("HEADRACE_")}
    try:
        return get_settings(home=home, server_database_connection_url=url, **overrides)
    finally:
        os.environ.update(saved)


async def _migrate(settings: Settings) -> None:
    from headrace.server.db import Database
    from headrace.server.db.migrate import upgrade

    async with Database.from_settings(settings) as database:
        await upgrade(database)


@pytest.fixture(params=DIALECTS)
def dialect(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgresql``: tests using it (or the fixtures below) run once for each."""
    if request.param == "postgresql":
        request.getfixturevalue("postgres")
    return str(request.param)


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("sqlite-template")
    path = home / "template.db"
    asyncio.run(_migrate(_clean_settings(home, f"sqlite:///{path}")))
    return path


@pytest.fixture(scope="session")
def _postgres_session_url(_postgres_or_reason: PostgresServer | str, tmp_path_factory: pytest.TempPathFactory) -> str:
    if isinstance(_postgres_or_reason, str):
        pytest.skip(_postgres_or_reason)
    url = _postgres_or_reason.create_database()
    asyncio.run(_migrate(_clean_settings(tmp_path_factory.mktemp("pg-home"), url)))
    return url


def _truncate_all(url: str) -> None:
    from headrace.server.db.models import Base

    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    _run_sql(url, f"TRUNCATE TABLE {tables} CASCADE")


@pytest.fixture
def database_url(dialect: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A database migrated to head and holding no rows (see the module docstring)."""
    if dialect == "sqlite":
        template: Path = request.getfixturevalue("_sqlite_template")
        path = tmp_path / "db" / "headrace.db"
        path.parent.mkdir()
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("_postgres_session_url")
    _truncate_all(url)
    return url


@pytest.fixture
def empty_database_url(dialect: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A database with nothing in it: a new SQLite path, or a new PostgreSQL database dropped afterwards."""
    if dialect == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty' / 'headrace.db'}"
        return
    yield request.getfixturevalue("empty_postgres_url")


@pytest.fixture
def empty_postgres_url(postgres: PostgresServer) -> Iterator[str]:
    """A new, empty PostgreSQL database for tests about PostgreSQL alone; dropped afterwards."""
    url = postgres.create_database()
    yield url
    postgres.drop_database(url)


@pytest.fixture
def settings_for(tmp_path: Path) -> Callable[..., Settings]:
    """``settings_for(url, **overrides)``: Settings for a database URL with a temporary HEADRACE_HOME."""

    def make(url: str | None, **overrides: Any) -> Settings:
        return _clean_settings(tmp_path / "home", url, **overrides)

    return make


@pytest.fixture
def server_settings(database_url: str, settings_for: Callable[..., Settings]) -> Settings:
    """Settings whose database is ``database_url`` (migrated, empty)."""
    return settings_for(database_url)
