"""The embedded default: the orchestration API in-process, on the database under ``HEADRACE_HOME``.

With no ``HEADRACE_API_URL``, ``python flow.py`` records its runs through the server's own service
layer (``headrace.server.operations``), called directly in this process, on the SQLite database at
``HEADRACE_HOME/headrace.db`` (or ``HEADRACE_SERVER_DATABASE_CONNECTION_URL``). No server process is
started; a later ``headrace server start`` on the same home shows the runs, because it reads the very
same database through the very same code.

- The database is migrated on first use in the process: its revision is compared with the newest one
  this headrace knows, and Alembic runs only when they differ (concurrent first uses in several
  processes are serialized by SQLite's write lock; the later ones find nothing to do).
- On the process's event loop (:mod:`headrace.client.sync`) every embedded client shares one
  :class:`~headrace.server.db.Database` per URL, so the process has one write path; it is closed at
  exit, after the run records were flushed. A client used on another loop (``asyncio.run`` in user
  code) opens its own and closes it when its ``async with`` block ends.
- Errors are those of the HTTP client: a problem the service layer raises becomes :class:`ApiError`
  with the same status and detail; a database that cannot be opened is :class:`ApiUnreachable`.

The server's modules (SQLAlchemy, Alembic, the service layer) are imported inside the functions
below, never when this module is imported: the SDK does not depend on the server at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from headrace.client.base import ApiError, ApiUnreachable, ClientError
from headrace.schemas.base import RecordKind
from headrace.schemas.fast_records import validate_records
from headrace.schemas.logs import LogCreate
from headrace.schemas.runs import SetStateRequest, TaskRunRecord

if TYPE_CHECKING:
    from headrace.schemas.base import Page
    from headrace.schemas.blocks import (
        BlockDocument,
        BlockDocumentCreate,
        BlockDocumentFilter,
        BlockDocumentUpdate,
        BlockTypeCreate,
        BlockTypeFilter,
        BlockTypeInfo,
    )
    from headrace.schemas.logs import Log, LogFilter
    from headrace.schemas.runs import (
        Flow,
        FlowRun,
        FlowRunCreate,
        FlowRunFilter,
        IngestResult,
        OrchestrationResult,
        TaskRun,
        TaskRunFilter,
    )
    from headrace.schemas.states import State
    from headrace.server.db import Database  # noqa: TID251 - types only; embedded mode is the server in-process
    from headrace.server.security.encryption import BlockCipher  # noqa: TID251 - types only, as above
    from headrace.settings import Settings

__all__ = ["EmbeddedClient", "dispose_shared_databases"]


# Databases shared by the embedded clients on the process loop, by URL; and the lock that makes one.
_shared: dict[str, Database] = {}
_shared_pid: int | None = None
_shared_lock: asyncio.Lock | None = None


class EmbeddedClient:
    """:class:`~headrace.client.base.OrchestrationClient` calling the service layer in this process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._database: Database | None = None
        self._cipher: BlockCipher | None = None
        self._owned = False
        self._depth = 0

    def __repr__(self) -> str:
        return f"EmbeddedClient(home={str(self.settings.home)!r})"

    async def __aenter__(self) -> EmbeddedClient:
        self._depth += 1
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._depth = max(0, self._depth - 1)
        if self._depth == 0:
            await self.aclose()

    async def aclose(self) -> None:
        """Close this client's own database (a shared one stays open for the process)."""
        database, self._database = self._database, None
        if database is not None and self._owned:
            await database.dispose()

    # ---------------------------------------------------------------------------------- database

    async def database(self) -> Database:
        """The database, opened and migrated on first use."""
        if self._database is None:
            from headrace.client import sync

            if sync.in_loop_thread():
                self._database, self._owned = await _shared_database(self.settings), False
            else:
                database = await _open(self.settings)
                self._database, self._owned = database, True
        return self._database

    @contextlib.asynccontextmanager
    async def _call(self) -> AsyncIterator[Database]:
        """The database, with the service layer's errors turned into the client's."""
        from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

        from headrace.server.errors import Problem  # noqa: TID251 - embedded mode calls the server in-process

        database = await self.database()
        try:
            yield database
        except Problem as exc:
            raise ApiError(exc.status, exc.detail, _problem_document(exc)) from exc
        except IntegrityError as exc:
            raise ApiError(409, f"the database refused the change: {_first_line(exc.orig or exc)}") from exc
        except DBAPIError as exc:
            raise ApiUnreachable(
                f"the embedded database {database.display_url} failed: {_first_line(exc.orig or exc)}"
            ) from exc
        except SQLAlchemyError as exc:
            raise ClientError(f"the embedded database {database.display_url} failed: {_first_line(exc)}") from exc

    # ------------------------------------------------------------------------------- the protocol

    async def create_flow_run(self, data: FlowRunCreate) -> FlowRun:
        from headrace.server.operations import flow_runs  # noqa: TID251 - in-process service layer

        async with self._call() as database:
            flow_run, _ = await flow_runs.create_flow_run(database, data)
            return flow_run

    async def read_flow_run(self, flow_run_id: UUID) -> FlowRun:
        from headrace.server.operations import flow_runs  # noqa: TID251 - in-process service layer

        async with self._call() as database:
            return await flow_runs.read_flow_run(database, flow_run_id)

    async def read_flow_runs(self, flow_run_filter: FlowRunFilter) -> Page[FlowRun]:
        from headrace.server.operations import flow_runs  # noqa: TID251 - in-process service layer

        async with self._call() as database:
            return await flow_runs.filter_flow_runs(database, flow_run_filter)

    async def read_flow(self, flow_id: UUID) -> Flow:
        from headrace.server.operations import flows  # noqa: TID251 - in-process service layer

        async with self._call() as database:
            return await flows.read_flow(database, flow_id)

    async def set_flow_run_state(self, flow_run_id: UUID, state: State, *, force: bool = False) -> OrchestrationResult:
        from headrace.server.operations import flow_runs  # noqa: TID251 - in-process service layer

        async with self._call() as database:
            result, _ = await flow_runs.set_flow_run_state(
                database, flow_run_id, SetStateRequest(state=state, force=force)
            )
            return result

    async def read_flow_run_states(self, flow_run_id: UUID) -> list[State]:
        from headrace.server.operations import flow_runs  # noqa: TID251 - in-process service layer

        async with self._call() as database:
            return await flow_runs.read_flow_run_states(database, flow_run_id)

    async def ingest_task_run_records(self, records: list[TaskRunRecord]) -> IngestResult:
        from headrace.server.operations import task_runs  # noqa: TID251 - in-process service layer

        async with self._call() as database:
            return await task_runs.ingest_task_run_records(database, records)

    async def read_task_run(self, task_run_id: UUID) -> TaskRun:
        from headrace.server.operations import task_runs  # noqa: TID251 - in-process service layer

        async with self._call() as database:
            return await task_runs.read_task_run(database, task_run_id)

    async def read_task_runs(self, task_run_filter: TaskRunFilter) -> Page[TaskRun]:
        from headrace.server.operations import task_runs  # noqa: TID251 - in-process service layer

        async with self._call() as database:
            return await task_runs.filter_task_runs(database, task_run_filter)

    async def read_task_run_states(self, task_run_id: UUID) -> list[State]:
        from headrace.server.operations import task_runs  # noqa: TID251 - in-process service layer

        async with self._call() as database:
            return await task_runs.read_task_run_states(database, task_run_id)

    async def ingest_logs(self, logs: list[LogCreate]) -> IngestResult:
        from headrace.server.operations import logs as log_operations  # noqa: TID251 - in-process service layer

        async with self._call() as database:
            return await log_operations.ingest_logs(database, logs)

    async def read_logs(self, log_filter: LogFilter) -> Page[Log]:
        from headrace.server.operations import logs as log_operations  # noqa: TID251 - in-process service layer

        async with self._call() as database:
            return await log_operations.read_logs(database, log_filter)

    def cipher(self) -> BlockCipher:
        """What encrypts block secrets: the key from settings or the key file under ``HEADRACE_HOME``."""
        if self._cipher is None:
            from headrace.server.security.encryption import (  # noqa: TID251 - in-process server
                BlockCipher,
                EncryptionKeyError,
            )

            try:
                self._cipher = BlockCipher(self.settings)
            except EncryptionKeyError as exc:
                raise ClientError(str(exc)) from exc
        return self._cipher

    async def create_block_type(self, block_type: BlockTypeCreate) -> BlockTypeInfo:
        from headrace.server.operations import blocks  # noqa: TID251 - in-process service layer

        async with self._call() as database:
            return await blocks.create_block_type(database, block_type)

    async def read_block_types(self, type_filter: BlockTypeFilter | None = None) -> Page[BlockTypeInfo]:
        from headrace.schemas.blocks import BlockTypeFilter
        from headrace.server.operations import blocks  # noqa: TID251 - in-process service layer

        async with self._call() as database:
            return await blocks.read_block_types(database, type_filter or BlockTypeFilter())

    async def create_block_document(self, document: BlockDocumentCreate) -> BlockDocument:
        from headrace.server.operations import blocks  # noqa: TID251 - in-process service layer

        async with self._call() as database:
            return await blocks.create_block_document(database, self.cipher(), document)

    async def read_block_document(self, document_id: UUID, *, include_secrets: bool = False) -> BlockDocument:
        from headrace.server.operations import blocks  # noqa: TID251 - in-process service layer

        async with self._call() as database:
            return await blocks.read_block_document(
                database, self.cipher(), document_id, include_secrets=include_secrets
            )

    async def read_block_document_by_name(
        self, type_slug: str, name: str, *, include_secrets: bool = False
    ) -> BlockDocument:
        from headrace.server.operations import blocks  # noqa: TID251 - in-process service layer

        async with self._call() as database:
            return await blocks.read_block_document_by_name(
                database, self.cipher(), type_slug, name, include_secrets=include_secrets
            )

    async def read_block_documents(self, document_filter: BlockDocumentFilter) -> Page[BlockDocument]:
        from headrace.server.operations import blocks  # noqa: TID251 - in-process service layer

        async with self._call() as database:
            return await blocks.read_block_documents(database, self.cipher(), document_filter)

    async def update_block_document(self, document_id: UUID, update: BlockDocumentUpdate) -> BlockDocument:
        from headrace.server.operations import blocks  # noqa: TID251 - in-process service layer

        async with self._call() as database:
            return await blocks.update_block_document(database, self.cipher(), document_id, update)

    async def delete_block_document(self, document_id: UUID) -> None:
        from headrace.server.operations import blocks  # noqa: TID251 - in-process service layer

        async with self._call() as database:
            await blocks.delete_block_document(database, document_id)

    async def ingest_serialized(self, kind: RecordKind, payloads: Sequence[bytes]) -> IngestResult:
        """Validate the JSON records as the server's bulk endpoints do, then store them."""
        from pydantic import ValidationError

        try:
            records = validate_records(kind, payloads)
        except ValidationError as exc:
            raise ApiError(422, f"invalid {kind.replace('_', '-')} record: {exc.errors()[0].get('msg', exc)}") from exc
        if kind == "task_runs":
            return await self.ingest_task_run_records(records)
        return await self.ingest_logs(records)


# ------------------------------------------------------------------------------------------ helpers


async def _open(settings: Settings) -> Database:
    """Open the database for ``settings`` and bring its schema to the newest revision if needed."""
    from headrace.server.db import Database, DatabaseConfigError, MigrationError  # noqa: TID251 - in-process server
    from headrace.server.db.migrate import current_revision, head_revision, upgrade  # noqa: TID251 - see above

    try:
        settings.home.mkdir(parents=True, exist_ok=True)
        database = Database.from_settings(settings)
    except DatabaseConfigError as exc:
        raise ClientError(str(exc)) from exc
    except OSError as exc:
        raise ApiUnreachable(f"cannot create HEADRACE_HOME at {settings.home}: {exc}") from exc
    try:
        if await current_revision(database) != head_revision():
            await upgrade(database)
    except MigrationError as exc:
        await database.dispose()
        raise ClientError(f"the embedded database {database.display_url} cannot be migrated: {exc}") from exc
    except Exception as exc:
        await database.dispose()
        raise ApiUnreachable(f"cannot open the embedded database {database.display_url}: {_first_line(exc)}") from exc
    from headrace.client.sync import freeze_start_up_objects

    freeze_start_up_objects("embedded-database", after="engine")
    return database


async def _shared_database(settings: Settings) -> Database:
    global _shared_lock, _shared_pid  # noqa: PLW0603 - one set of shared databases per process
    from headrace.server.db import database_url  # noqa: TID251 - in-process server
    from headrace.server.db.engine import render_url  # noqa: TID251 - in-process server

    if _shared_pid != os.getpid():  # a forked child: the parent's engines are not ours
        _shared.clear()
        _shared_lock = None
        _shared_pid = os.getpid()
    key = render_url(database_url(settings)) + f"#{settings.home}"
    found = _shared.get(key)
    if found is not None:
        return found
    if _shared_lock is None:
        _shared_lock = asyncio.Lock()
    async with _shared_lock:
        found = _shared.get(key)
        if found is None:
            found = await _open(settings)
            if not _shared:
                from headrace.client.sync import on_exit

                on_exit(dispose_shared_databases, order=100)
            _shared[key] = found
    return found


def dispose_shared_databases() -> None:
    """Close the databases shared on the process loop (at exit; the next use opens them again)."""
    if _shared_pid != os.getpid() or not _shared:
        return
    from headrace.client.sync import run_sync

    databases = list(_shared.values())
    _shared.clear()

    async def dispose() -> None:
        for database in databases:
            with contextlib.suppress(Exception):
                await database.dispose()

    run_sync(dispose(), timeout=30.0)


def _problem_document(exc: Any) -> dict[str, Any]:
    from http import HTTPStatus

    from headrace.server.errors import PROBLEM_TYPE_BASE  # noqa: TID251 - in-process server

    return {
        "type": PROBLEM_TYPE_BASE + exc.kind,
        "title": HTTPStatus(exc.status).phrase,
        "status": exc.status,
        "detail": exc.detail,
        **exc.extra,
    }


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
