"""EmbeddedClient: every protocol method in-process on the SQLite database under HEADRACE_HOME, and a
server started later on the same home shows what it recorded."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from headrace.client import get_client
from headrace.client.base import ApiError, OrchestrationClient
from headrace.client.embedded import EmbeddedClient
from headrace.client.http import HttpClient
from headrace.client.sync import SyncClient
from headrace.schemas.logs import LogCreate, LogFilter
from headrace.schemas.runs import (
    FlowRunCreate,
    FlowRunFilter,
    OrchestrationStatus,
    TaskRunFilter,
    TaskRunRecord,
)
from headrace.schemas.states import State, StateType
from headrace.testing.server import running_server


def test_get_client_is_embedded_without_an_api_url(make_settings: Any) -> None:
    client = get_client(make_settings())
    assert isinstance(client, EmbeddedClient)
    assert isinstance(client, OrchestrationClient)


def test_every_method_then_a_server_on_the_same_home_shows_it(home: Path, make_settings: Any) -> None:
    settings = make_settings()
    assert not (home / "headrace.db").exists()
    with SyncClient(EmbeddedClient(settings)) as client:
        created = client.create_flow_run(FlowRunCreate(flow_name="local", parameters={"n": 3}))
        assert (home / "headrace.db").exists()  # created and migrated on first use
        assert client.create_flow_run(FlowRunCreate(id=created.id, flow_name="local")).id == created.id
        assert client.read_flow_run(created.id).parameters == {"n": 3}
        assert client.read_flow(created.flow_id).name == "local"
        assert [r.id for r in client.read_flow_runs(FlowRunFilter(flow_names=["local"])).items] == [created.id]
        for state_type in (StateType.PENDING, StateType.RUNNING, StateType.COMPLETED):
            result = client.set_flow_run_state(created.id, State(type=state_type))
            assert result.status is OrchestrationStatus.ACCEPT, result.reason
        assert len(client.read_flow_run_states(created.id)) == 4

        task_run_id = uuid.uuid4()
        records = [
            TaskRunRecord(
                task_run_id=task_run_id, flow_run_id=created.id, task_key="t", name="t-0", state=State(type=t)
            )
            for t in (StateType.PENDING, StateType.RUNNING, StateType.COMPLETED)
        ]
        assert client.ingest_task_run_records(records[:1]).inserted == 1
        raw = [r.model_dump_json().encode() for r in records]
        result = client.ingest_serialized("task_runs", raw)
        assert (result.inserted, result.duplicates) == (2, 1)
        assert client.read_task_run(task_run_id).run_count == 1
        assert client.read_task_runs(TaskRunFilter(flow_run_ids=[created.id])).total == 1
        assert [s.id for s in client.read_task_run_states(task_run_id)] == [r.state.id for r in records]

        assert client.ingest_logs([LogCreate(flow_run_id=created.id, level=20, message="one")]).inserted == 1
        raw_log = LogCreate(flow_run_id=created.id, task_run_id=task_run_id, level=40, message="two")
        assert client.ingest_serialized("logs", [raw_log.model_dump_json().encode()]).inserted == 1
        assert client.read_logs(LogFilter(flow_run_ids=[created.id])).total == 2

        with pytest.raises(ApiError) as missing:
            client.read_task_run(uuid.uuid4())
        assert missing.value.status == 404
        assert missing.value.problem["status"] == 404
        with pytest.raises(ApiError) as invalid:
            client.ingest_serialized("logs", [b'{"level": 500, "message": "x"}'])
        assert invalid.value.status == 422

    # `headrace server start` on the same home reads the very same database.
    with running_server(settings) as server, SyncClient(HttpClient(make_settings(api_url=server.api_url))) as http:
        assert http.read_flow_run(created.id).state is not None
        assert http.read_flow_run(created.id).state.type is StateType.COMPLETED  # type: ignore[union-attr]
        assert http.read_task_run(task_run_id).state.type is StateType.COMPLETED  # type: ignore[union-attr]
        assert http.read_logs(LogFilter(flow_run_ids=[created.id])).total == 2


def test_clients_on_the_process_loop_share_one_database(make_settings: Any) -> None:
    settings = make_settings()
    with SyncClient(EmbeddedClient(settings)) as first, SyncClient(EmbeddedClient(settings)) as second:
        first.create_flow_run(FlowRunCreate(flow_name="a"))
        second.read_flow_runs(FlowRunFilter())
        from headrace.client.sync import run_sync

        assert run_sync(first.client.database()) is run_sync(second.client.database())  # type: ignore[attr-defined]


def test_a_client_on_another_loop_opens_and_closes_its_own(make_settings: Any) -> None:
    settings = make_settings()

    async def scenario() -> uuid.UUID:
        async with EmbeddedClient(settings) as client:
            run = await client.create_flow_run(FlowRunCreate(flow_name="own-loop"))
            database = await client.database()
            assert client._owned
        assert client._database is None
        del database
        return run.id

    flow_run_id = asyncio.run(scenario())
    with SyncClient(EmbeddedClient(settings)) as client:
        assert client.read_flow_run(flow_run_id).id == flow_run_id


def test_an_empty_database_file_is_migrated_on_first_use(home: Path, make_settings: Any) -> None:
    home.mkdir(parents=True)
    sqlite3.connect(home / "headrace.db").close()  # exists, holds no table
    with SyncClient(EmbeddedClient(make_settings())) as client:
        assert client.read_logs(LogFilter()).total == 0
    with sqlite3.connect(home / "headrace.db") as connection:
        (revision,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert revision
    assert {"flow_runs", "task_runs", "logs"} <= tables


def test_a_script_using_the_embedded_client_exits_and_its_run_is_kept(
    home: Path, tmp_path: Path, make_settings: Any
) -> None:
    """The shared database is closed at exit (after the records flush), and what the script did is stored."""
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            """
            from headrace.client.sync import SyncClient
            from headrace.schemas.runs import FlowRunCreate

            with SyncClient.from_settings(__import__("headrace.settings").settings.get_settings()) as client:
                print(client.create_flow_run(FlowRunCreate(flow_name="exits")).id)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=_env(home), check=False
    )
    assert done.returncode == 0, done.stderr
    flow_run_id = uuid.UUID(done.stdout.strip())
    with SyncClient(EmbeddedClient(make_settings())) as client:
        assert client.read_flow_run(flow_run_id).id == flow_run_id


def _record_json(**changes: Any) -> bytes:
    record = TaskRunRecord(task_run_id=uuid.uuid4(), task_key="t", name="t-0", state=State(type=StateType.COMPLETED))
    return record.model_copy(update=changes).model_dump_json().encode()


@pytest.mark.parametrize(
    "payload",
    [
        _record_json(name="nul\x00inside"),
        _record_json(tags=["fine", "nul\x00inside"]),
        _record_json(task_key="k\x00"),
    ],
    ids=["name", "tag", "task-key"],
)
def test_ingesting_serialized_records_refuses_text_no_database_stores(make_settings: Any, payload: bytes) -> None:
    """The bytes are checked before the cheaper validation is trusted: NUL text is a 422, as from the server."""
    assert b"\\u0000" in payload
    with SyncClient(EmbeddedClient(make_settings())) as client:
        with pytest.raises(ApiError) as refused:
            client.ingest_serialized("task_runs", [payload])
        assert refused.value.status == 422
        assert "NUL" in refused.value.detail
        log = LogCreate.model_construct(level=20, message="a\x00b").model_dump_json().encode()
        with pytest.raises(ApiError) as refused_log:
            client.ingest_serialized("logs", [log])
        assert refused_log.value.status == 422


def test_ingesting_serialized_records_keeps_text_that_only_looks_like_an_escape(make_settings: Any) -> None:
    """A backslash before ``u0000`` (or a surrogate pair) is ordinary text: it is stored unchanged."""
    settings = make_settings()
    with SyncClient(EmbeddedClient(settings)) as client:
        run = client.create_flow_run(FlowRunCreate(flow_name="escapes"))
        task_run_id = uuid.uuid4()
        state = State(type=StateType.COMPLETED, message="C:\\u0000 and \U0001f600")
        record = TaskRunRecord(
            task_run_id=task_run_id, flow_run_id=run.id, task_key="t", name="t-0", tags=["\U0001f600"], state=state
        )
        payload = record.model_dump_json().encode()
        assert client.ingest_serialized("task_runs", [payload]).inserted == 1
        stored = client.read_task_run(task_run_id)
        assert stored.tags == ["\U0001f600"]
        assert stored.state is not None
        assert stored.state.message == "C:\\u0000 and \U0001f600"


_FREEZE_SCRIPT = """
import gc, sys
from headrace import flow
from headrace.client.sync import SyncClient
from headrace.engine.api import current_settings, engine_api
from headrace.schemas.logs import LogFilter
from headrace.settings import get_settings

if sys.argv[1] == "client":
    with SyncClient.from_settings(get_settings()) as client:
        client.read_logs(LogFilter())
    print(0, gc.get_freeze_count())
    raise SystemExit
if sys.argv[1] == "off":
    gc.disable()


@flow
def nothing() -> None:
    pass


engine_api(current_settings())  # the engine's client: the database is opened by its first call
engine_stage = gc.get_freeze_count()
nothing()
print(engine_stage, gc.get_freeze_count())
"""


@pytest.mark.parametrize("program", ["flow", "client", "off"])
def test_the_servers_stack_is_frozen_once_loaded_in_a_process_running_flows(home: Path, program: str) -> None:
    """Once a flow run opened the database, the server's stack is out of the collector's full scans; a
    program that only reads through a client, or that switched the collector off, pays no collection."""
    done = subprocess.run(
        [sys.executable, "-c", _FREEZE_SCRIPT, program],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(home),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    engine_stage, after = (int(value) for value in done.stdout.split())
    if program == "flow":
        assert engine_stage > 10_000
        assert after > engine_stage + 10_000  # SQLAlchemy, the schema, the service layer
    else:
        assert after == 0


def _env(home: Path) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("HEADRACE_")}
    env["HEADRACE_HOME"] = str(home)
    return env
