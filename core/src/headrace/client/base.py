"""The contract between the run engine and the orchestration API.

Both implementations — ``headrace.client.http.HttpClient`` and ``headrace.client.embedded.EmbeddedClient``
— satisfy :class:`OrchestrationClient`. All methods are ``async``; synchronous code reaches them through
:class:`headrace.client.sync.SyncClient`, which runs them on the process's one long-lived event loop.

Errors: a problem answer (4xx) raises :class:`ApiError` carrying the problem document; transport
failures that survive the retries raise :class:`ApiUnreachable`. Both are :class:`ClientError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from headrace.schemas.base import Page, RecordKind
from headrace.schemas.blocks import (
    BlockDocument,
    BlockDocumentCreate,
    BlockDocumentFilter,
    BlockDocumentUpdate,
    BlockTypeCreate,
    BlockTypeFilter,
    BlockTypeInfo,
)
from headrace.schemas.logs import Log, LogCreate, LogFilter
from headrace.schemas.runs import (
    Flow,
    FlowRun,
    FlowRunCreate,
    FlowRunFilter,
    IngestResult,
    OrchestrationResult,
    TaskRun,
    TaskRunFilter,
    TaskRunRecord,
)
from headrace.schemas.states import State


class ClientError(Exception):
    """The orchestration API could not do what was asked."""


class ApiError(ClientError):
    """The API answered with a problem document (RFC 9457)."""

    def __init__(self, status: int, detail: str, problem: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.problem = problem or {}


class ApiUnreachable(ClientError):
    """The API could not be reached (after the configured retries)."""


@runtime_checkable
class OrchestrationClient(Protocol):
    """What the engine, the record shipper and the CLI need from the API."""

    async def __aenter__(self) -> OrchestrationClient: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    # flows and flow runs: orchestrated by the server, one call per transition
    async def create_flow_run(self, data: FlowRunCreate) -> FlowRun: ...

    async def read_flow_run(self, flow_run_id: UUID) -> FlowRun: ...

    async def read_flow_runs(self, flow_run_filter: FlowRunFilter) -> Page[FlowRun]: ...

    async def read_flow(self, flow_id: UUID) -> Flow: ...

    async def set_flow_run_state(
        self, flow_run_id: UUID, state: State, *, force: bool = False
    ) -> OrchestrationResult: ...

    async def read_flow_run_states(self, flow_run_id: UUID) -> list[State]: ...

    # task runs: orchestrated in the running process, reported in bulk
    async def ingest_task_run_records(self, records: list[TaskRunRecord]) -> IngestResult: ...

    async def read_task_run(self, task_run_id: UUID) -> TaskRun: ...

    async def read_task_runs(self, task_run_filter: TaskRunFilter) -> Page[TaskRun]: ...

    async def read_task_run_states(self, task_run_id: UUID) -> list[State]: ...

    # logs: reported in bulk
    async def ingest_logs(self, logs: list[LogCreate]) -> IngestResult: ...

    async def read_logs(self, log_filter: LogFilter) -> Page[Log]: ...

    # the record shipper's path: records already serialized (as the spool holds them)
    async def ingest_serialized(self, kind: RecordKind, payloads: Sequence[bytes]) -> IngestResult:
        """Ingest records given as JSON documents (``TaskRunRecord`` or ``LogCreate``, by ``kind``).

        Equivalent to :meth:`ingest_task_run_records` / :meth:`ingest_logs` on the parsed records; the
        HTTP client sends the bytes as they are, so the shipper never serializes a record twice.
        """
        ...

    # blocks: typed configuration documents; secrets read as '********' unless ``include_secrets``
    async def create_block_type(self, block_type: BlockTypeCreate) -> BlockTypeInfo:
        """Register a block type, or update the metadata of the one with its slug."""
        ...

    async def read_block_types(self, type_filter: BlockTypeFilter | None = None) -> Page[BlockTypeInfo]: ...

    async def create_block_document(self, document: BlockDocumentCreate) -> BlockDocument:
        """Save a new document (its type and schema are registered too); ``ApiError`` 409 if the name is taken."""
        ...

    async def read_block_document(self, document_id: UUID, *, include_secrets: bool = False) -> BlockDocument:
        """One document; ``ApiError`` 404 if there is none, 403 for secrets without write scope."""
        ...

    async def read_block_document_by_name(
        self, type_slug: str, name: str, *, include_secrets: bool = False
    ) -> BlockDocument: ...

    async def read_block_documents(self, document_filter: BlockDocumentFilter) -> Page[BlockDocument]: ...

    async def update_block_document(self, document_id: UUID, update: BlockDocumentUpdate) -> BlockDocument:
        """Replace a document's data; secret leaves sent as '********' keep their stored values."""
        ...

    async def delete_block_document(self, document_id: UUID) -> None:
        """Delete a document; ``ApiError`` 409 (naming them) while other documents refer to it."""
        ...
