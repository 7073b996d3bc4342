"""The least a server on headrace's stack does before it answers ``GET /api/health``: the start-up floor.

``bench_server.py`` starts this beside ``headrace server start`` and reports both, so that the start-up
figure can be read against what the libraries the server is built on cost on the same machine at the same
moment. It imports what the server is prescribed to be made of (FastAPI, SQLAlchemy's asyncio extension,
pydantic-settings, uvicorn and the database driver), reads one setting, builds an app with one route,
checks the database's migration version in the lifespan (as the server does on an existing database)
and serves with the options ``headrace server start`` uses. It imports nothing of headrace.

The difference between the two figures is headrace's own start-up: its settings, CLI, ORM models, wire
schemas, 55 routes, security and services.

Usage: ``python benchmarks/stack_floor_server.py DATABASE_URL PORT`` (an async SQLAlchemy URL).
"""

import gc

gc.disable()  # as ``headrace server start`` does during its start-up

import contextlib  # noqa: E402
import sys  # noqa: E402
from collections.abc import AsyncIterator  # noqa: E402

import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from pydantic_settings import BaseSettings, SettingsConfigDict  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402


class FloorSettings(BaseSettings):
    """One setting read from the environment, as the server reads all of its own."""

    model_config = SettingsConfigDict(env_prefix="HEADRACE_FLOOR_")

    log_level: str = "warning"


def build_app(database_url: str) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_async_engine(database_url)
        async with engine.connect() as connection:
            await connection.execute(text("SELECT version_num FROM alembic_version"))
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/api/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    database_url, port = sys.argv[1], int(sys.argv[2])
    settings = FloorSettings()
    uvicorn.run(
        build_app(database_url), host="127.0.0.1", port=port, log_level=settings.log_level, ws="none", lifespan="on"
    )


if __name__ == "__main__":
    main()
