"""Database URLs and engines, built from :class:`~headrace.settings.Settings` and nothing else.

- :func:`database_url` resolves the URL: ``HEADRACE_SERVER_DATABASE_CONNECTION_URL`` if set (``sqlite``
  and ``postgresql``/``postgres`` URLs; the async driver is chosen here), else SQLite at
  ``HEADRACE_HOME/headrace.db``.
- :func:`create_sqlite_engine` sets, on every connection: ``busy_timeout``, ``journal_mode=WAL``,
  ``synchronous=FULL`` (a commit is on disk before the server acknowledges it), ``foreign_keys=ON``. It
  also takes over transaction control from the driver: a *writer* engine opens every transaction with
  ``BEGIN IMMEDIATE`` (the write lock is taken up front, so the busy timeout applies, instead of failing
  at the first write with SQLITE_BUSY), and a *reader* engine's connections are ``query_only``.
- :func:`create_postgresql_engine` sizes the pool and passes ``statement_timeout``, ``search_path``,
  ``application_name`` as server settings of each connection, and an SSL context for TLS and mutual TLS.

Most code wants :class:`headrace.server.db.Database`, which pairs these engines with the write path.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from headrace.server.db.liveness import check_connections_on_checkout
from headrace.server.db.types import json_dumps, json_loads

if TYPE_CHECKING:
    from headrace.settings import Settings

__all__ = [
    "SQLITE_FILE_NAME",
    "DatabaseConfigError",
    "Dialect",
    "create_postgresql_engine",
    "create_sqlite_engine",
    "database_url",
    "dialect_of",
    "is_sqlite_memory",
    "postgresql_connect_args",
    "render_url",
    "tls_context",
]

SQLITE_FILE_NAME = "headrace.db"
URL_SETTING = "HEADRACE_SERVER_DATABASE_CONNECTION_URL"

Dialect = Literal["sqlite", "postgresql"]

SQLITE_CACHE_SIZE = -32_768
"""SQLite's page cache per connection, in KiB when negative: 32 MiB, not SQLite's 2 MiB. Run tables are
indexed by random UUIDs, so every insert touches index pages all over the file; with the default cache
they were evicted and read back from the OS on every ingest batch."""
SQLITE_MMAP_SIZE = 256 * 1024 * 1024
"""Bytes of the database file SQLite reads through a memory map instead of ``read`` calls: measured on
ingest, ~12% less server CPU per record. The mapping is the OS page cache (shared, not the process's
own memory); it only counts in RSS for pages actually touched."""
SQLITE_WAL_AUTOCHECKPOINT = 10_000
"""Pages written to the write-ahead log before a checkpoint copies them into the database (SQLite's
default: 1,000). Fewer, larger checkpoints write each hot index page once per checkpoint instead of
ten times; the log file grows to ~40 MB between checkpoints."""


class MigrationError(RuntimeError):
    """A migration could not run; the message says why in one line. (Here, not in ``migrate``, so that
    importing the database layer does not import Alembic.)"""


class DatabaseConfigError(ValueError):
    """The database settings cannot work; the message names the setting and the fix."""


def database_url(settings: Settings) -> URL:
    """The SQLAlchemy URL of the server database, with the async driver headrace uses."""
    secret = settings.server_database_connection_url
    raw = secret.get_secret_value().strip() if secret is not None else ""
    if not raw:
        return URL.create("sqlite+aiosqlite", database=str(Path(settings.home).expanduser() / SQLITE_FILE_NAME))
    try:
        url = make_url(raw)
    except ArgumentError:
        raise DatabaseConfigError(
            f"{URL_SETTING} is not a database URL; expected sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
        ) from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
            url = url.set(database=str(Path(url.database).expanduser()))
        return url.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+asyncpg")
    raise DatabaseConfigError(
        f"{URL_SETTING} uses {backend!r}, which headrace does not support; use sqlite:///PATH or postgresql://..."
    )


def dialect_of(url: URL) -> Dialect:
    return "sqlite" if url.get_backend_name() == "sqlite" else "postgresql"


def is_sqlite_memory(url: URL) -> bool:
    database = url.database or ""
    return database in ("", ":memory:") or url.query.get("mode") == "memory"


def render_url(url: URL) -> str:
    """The URL for people: the password masked."""
    return url.render_as_string(hide_password=True)


# --------------------------------------------------------------------------------------------- SQLite


def create_sqlite_engine(url: URL, settings: Settings, *, role: Literal["write", "read"]) -> AsyncEngine:
    """An engine for SQLite. ``role="write"`` holds one connection; use it through the write path only."""
    from headrace.server.db.sqlite_writer import begin_immediate, inline_connector  # aiosqlite: SQLite only

    memory = is_sqlite_memory(url)
    if not memory and url.database:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    pool: dict[str, Any] = {}
    # The writer of a database file runs its statements inline on the event loop (see sqlite_writer).
    inline = not memory and role == "write"
    if inline:
        pool = {
            "pool_size": 1,
            "max_overflow": 0,
            "pool_timeout": settings.server_database_sqlite_busy_timeout,
            "async_creator": inline_connector(_sqlite_uri(url)),
        }
    engine = create_async_engine(
        url,
        echo=settings.server_database_echo,
        json_serializer=json_dumps,
        json_deserializer=json_loads,
        **pool,
    )
    busy_timeout = settings.server_database_sqlite_busy_timeout
    busy_ms = int(busy_timeout * 1000)
    readonly = role == "read"

    @event.listens_for(engine.sync_engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # The driver must not open transactions on its own: the "begin" hook below does.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            if not readonly:
                cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = FULL")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute(f"PRAGMA cache_size = {SQLITE_CACHE_SIZE}")
            cursor.execute(f"PRAGMA mmap_size = {SQLITE_MMAP_SIZE}")
            if not readonly:
                cursor.execute(f"PRAGMA wal_autocheckpoint = {SQLITE_WAL_AUTOCHECKPOINT}")
            if readonly:
                cursor.execute("PRAGMA query_only = ON")
            if inline:
                # Configured (above) with the usual wait; from now on the inline writer must never wait inside
                # SQLite, which would stop the event loop: begin_immediate waits for the lock instead.
                cursor.execute("PRAGMA busy_timeout = 0")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Any) -> None:
        if inline:
            begin_immediate(connection.connection.driver_connection, busy_timeout)
        else:
            connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


def _sqlite_uri(url: URL) -> str:
    """A ``file:`` URI for sqlite3 from a SQLAlchemy SQLite URL (its query options become URI parameters)."""
    from urllib.parse import quote, urlencode

    database = url.database or ""
    if database.startswith("file:"):
        return database
    query = {key: value for key, value in url.query.items() if key != "uri"}
    return f"file:{quote(database)}" + (f"?{urlencode(query, doseq=True)}" if query else "")


# ----------------------------------------------------------------------------------------- PostgreSQL


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The SSL context for PostgreSQL from the TLS settings, or ``None`` when TLS is off."""
    ca = settings.server_database_tls_ca_file
    cert = settings.server_database_tls_cert_file
    key = settings.server_database_tls_key_file
    if not settings.server_database_tls_enabled:
        given = [name for name, value in (("CA", ca), ("CERT", cert), ("KEY", key)) if value is not None]
        if given:
            names = ", ".join(f"HEADRACE_SERVER_DATABASE_TLS_{name}_FILE" for name in given)
            raise DatabaseConfigError(
                f"{names} set but HEADRACE_SERVER_DATABASE_TLS_ENABLED is false: "
                "enable TLS or unset the file settings (headrace will not silently connect in clear text)"
            )
        return None
    if key is not None and cert is None:
        raise DatabaseConfigError(
            "HEADRACE_SERVER_DATABASE_TLS_KEY_FILE is set without HEADRACE_SERVER_DATABASE_TLS_CERT_FILE: "
            "mutual TLS needs the client certificate too"
        )
    for setting, path in (("CA", ca), ("CERT", cert), ("KEY", key)):
        if path is not None and not Path(path).expanduser().is_file():
            raise DatabaseConfigError(f"HEADRACE_SERVER_DATABASE_TLS_{setting}_FILE={path}: no such file")
    try:
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=str(Path(ca).expanduser()) if ca is not None else None
        )
        context.check_hostname = settings.server_database_tls_check_hostname
        if cert is not None:
            context.load_cert_chain(
                str(Path(cert).expanduser()), str(Path(key).expanduser()) if key is not None else None
            )
    except ssl.SSLError as exc:
        raise DatabaseConfigError(f"cannot use the database TLS files: {exc}") from None
    return context


def postgresql_connect_args(settings: Settings) -> dict[str, Any]:
    """asyncpg ``connect()`` arguments: timeout, per-connection server settings and TLS."""
    server_settings: dict[str, str] = {}
    if settings.server_database_application_name:
        server_settings["application_name"] = settings.server_database_application_name
    if settings.server_database_search_path:
        server_settings["search_path"] = settings.server_database_search_path
    if settings.server_database_statement_timeout is not None:
        server_settings["statement_timeout"] = str(int(settings.server_database_statement_timeout * 1000))
    args: dict[str, Any] = {"timeout": settings.server_database_connection_timeout, "server_settings": server_settings}
    context = tls_context(settings)
    if context is not None:
        args["ssl"] = context
    return args


def create_postgresql_engine(url: URL, settings: Settings) -> AsyncEngine:
    engine = create_async_engine(
        url,
        echo=settings.server_database_echo,
        json_serializer=json_dumps,
        json_deserializer=json_loads,
        pool_size=settings.server_database_pool_size,
        max_overflow=settings.server_database_max_overflow,
        pool_timeout=settings.server_database_pool_timeout,
        pool_recycle=settings.server_database_pool_recycle,
        pool_pre_ping=False,  # check_connections_on_checkout instead: no round trip for a busy pool
        connect_args=postgresql_connect_args(settings),
    )
    check_connections_on_checkout(engine)
    return engine
