"""The records pipeline of one process: spooled before the call returns, shipped in order and in
batches, acknowledged out of the spool, waiting while the server is away, flushed at exit."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from headrace import records
from headrace.client.embedded import EmbeddedClient
from headrace.client.http import HttpClient
from headrace.client.sync import SyncClient
from headrace.records.log_handler import truncate_message
from headrace.records.spool import read_ack, read_segment
from headrace.schemas.logs import LogCreate, LogFilter
from headrace.schemas.runs import TaskRunFilter, TaskRunRecord
from headrace.schemas.states import State, StateType


def task_record(i: int = 0, flow_run_id: uuid.UUID | None = None, **state: Any) -> TaskRunRecord:
    return TaskRunRecord(
        task_run_id=uuid.uuid4(),
        flow_run_id=flow_run_id,
        task_key="work",
        name=f"work-{i}",
        state=State(type=StateType.COMPLETED, **state),
    )


def segment_records(spool: Path, kind: str) -> list[bytes]:
    """The records of this kind in the spool that the server has not acknowledged."""
    found = []
    for path in sorted(spool.glob(f"*.{kind}.*.jsonl")):
        owner = path.name.split(".")[0]
        acked = read_ack(spool / f"{owner}.{kind}.ack")
        found += [payload for seq, payload in read_segment(path) if seq > acked]
    return found


# ---------------------------------------------------------------------------- a recording server


class Recorder:
    """A real HTTP server that takes ingest requests like the API, remembers them, and can refuse some."""

    def __init__(self) -> None:
        self.bodies: dict[str, list[list[dict[str, Any]]]] = {"task-runs/ingest": [], "logs": []}
        self.unavailable = 0  # answer this many ingest requests with 503 first
        self.lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: Any) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                self._answer(422, {"status": 422, "detail": "CSRF protection is off"})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                route = self.path.removeprefix("/api/")
                with recorder.lock:
                    if recorder.unavailable > 0:
                        recorder.unavailable -= 1
                        self._answer(503, {"status": 503, "detail": "busy"})
                        return
                    items = json.loads(body)
                    recorder.bodies[route].append(items)
                self._answer(201, {"received": len(items), "inserted": len(items), "duplicates": 0})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.api_url = f"http://127.0.0.1:{self.server.server_address[1]}/api"

    def items(self, route: str) -> list[dict[str, Any]]:
        with self.lock:
            return [item for body in self.bodies[route] for item in body]


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.server.shutdown()
    server.server.server_close()


# ----------------------------------------------------------------------------------------- tests


def test_records_reach_a_live_server_and_leave_the_spool(live_server: Any, make_settings: Any, spool: Path) -> None:
    settings = make_settings(api_url=live_server.api_url)
    records.configure(settings)
    sent = [task_record(i) for i in range(50)]
    for record in sent:
        records.report_task_run_state(record)
    log = LogCreate(task_run_id=sent[0].task_run_id, level=20, message="hello")
    records.report_log(log)
    assert records.flush(30)
    assert records.pending() == 0
    with SyncClient(HttpClient(settings)) as client:
        for record in sent[:5]:
            assert client.read_task_run(record.task_run_id).state is not None
        assert [entry.id for entry in client.read_logs(LogFilter(task_run_ids=[sent[0].task_run_id])).items] == [log.id]
    assert segment_records(spool, "task_runs") == []
    assert segment_records(spool, "logs") == []
    assert records.shutdown(5)
    assert list(spool.iterdir()) == []  # nothing left behind once everything was acknowledged


def test_embedded_records_are_in_the_local_database(make_settings: Any) -> None:
    settings = make_settings()
    records.configure(settings)
    sent = [task_record(i) for i in range(10)]
    for record in sent:
        records.report_task_run_state(record)
    records.report_log(LogCreate(task_run_id=sent[0].task_run_id, level=20, message="local"))
    assert records.flush(60)
    with SyncClient(EmbeddedClient(settings)) as client:
        assert client.read_task_runs(TaskRunFilter(ids=[r.task_run_id for r in sent], limit=200)).total == 10
        assert client.read_logs(LogFilter(task_run_ids=[sent[0].task_run_id])).items[0].message == "local"


def test_a_record_is_in_the_spool_when_the_call_returns(make_settings: Any, spool: Path) -> None:
    records.configure(make_settings(api_url="http://127.0.0.1:9/api"))  # nothing listens there
    record = task_record()
    records.report_task_run_state(record)
    (payload,) = segment_records(spool, "task_runs")
    assert TaskRunRecord.model_validate_json(payload) == record
    log = LogCreate(level=30, message="spooled")
    records.report_log(log)
    (payload,) = segment_records(spool, "logs")
    assert LogCreate.model_validate_json(payload) == log
    assert records.pending() == 2


def test_the_record_is_copied_when_reported(make_settings: Any, spool: Path) -> None:
    records.configure(make_settings(api_url="http://127.0.0.1:9/api"))
    record = task_record()
    records.report_task_run_state(record)
    record.state.message = "changed afterwards"
    (payload,) = segment_records(spool, "task_runs")
    assert TaskRunRecord.model_validate_json(payload).state.message is None


def test_records_ship_in_order_in_bounded_batches(recorder: Recorder, make_settings: Any) -> None:
    records.configure(make_settings(api_url=recorder.api_url, logging_to_api_batch_size=3000))
    sent = [task_record(i) for i in range(2500)]
    logs = [LogCreate(level=20, message=f"line {i:04d} " + "x" * 100) for i in range(100)]
    for i, record in enumerate(sent):
        records.report_task_run_state(record)
        if i < len(logs):
            records.report_log(logs[i])
    assert records.flush(60)
    assert [item["state"]["id"] for item in recorder.items("task-runs/ingest")] == [str(r.state.id) for r in sent]
    assert all(len(body) <= 1000 for body in recorder.bodies["task-runs/ingest"])
    assert [item["id"] for item in recorder.items("logs")] == [str(log.id) for log in logs]
    assert all(len(json.dumps(body)) <= 3000 + 200 for body in recorder.bodies["logs"])
    assert len(recorder.bodies["logs"]) > 1


def test_the_shipper_waits_out_an_unavailable_server(recorder: Recorder, make_settings: Any) -> None:
    recorder.unavailable = 7  # more than the client's own retries of one request: the shipper backs off
    records.configure(make_settings(api_url=recorder.api_url, client_retry_jitter_factor=0))
    sent = [task_record(i) for i in range(20)]
    for record in sent:
        records.report_task_run_state(record)
    assert records.flush(60)
    assert recorder.unavailable == 0
    assert [item["state"]["id"] for item in recorder.items("task-runs/ingest")] == [str(r.state.id) for r in sent]


def test_records_wait_for_a_server_that_is_down(server_process: Any, make_settings: Any, spool: Path) -> None:
    records.configure(make_settings(api_url=server_process.api_url))
    sent = [task_record(i) for i in range(30)]
    for record in sent:
        records.report_task_run_state(record)
    assert not records.flush(0.5)
    assert len(segment_records(spool, "task_runs")) == 30
    server_process.start()
    assert records.flush(60)
    with SyncClient(HttpClient(make_settings(api_url=server_process.api_url))) as client:
        found = client.read_task_runs(TaskRunFilter(ids=[r.task_run_id for r in sent], limit=200))
    assert found.total == 30
    assert segment_records(spool, "task_runs") == []


def test_a_refused_record_is_set_aside_and_the_rest_delivered(
    live_server: Any, make_settings: Any, spool: Path
) -> None:
    settings = make_settings(api_url=live_server.api_url)
    records.configure(settings)
    good = [task_record(i) for i in range(6)]
    bad = TaskRunRecord.model_construct(**(task_record(99).__dict__ | {"name": "n" * 500}))  # longer than allowed
    for record in [*good[:3], bad, *good[3:]]:
        records.report_task_run_state(record)
    assert records.flush(60)
    with SyncClient(HttpClient(settings)) as client:
        assert client.read_task_runs(TaskRunFilter(ids=[r.task_run_id for r in good])).total == 6
    (rejected,) = (spool / "rejected").glob("*.task_runs.jsonl")
    (line,) = rejected.read_text().splitlines()
    entry = json.loads(line)
    assert entry["status"] == 422
    assert entry["data"]["task_run_id"] == str(bad.task_run_id)


def test_logs_to_the_api_can_be_turned_off(recorder: Recorder, make_settings: Any, spool: Path) -> None:
    records.configure(make_settings(api_url=recorder.api_url, logging_to_api_enabled=False))
    records.report_log(LogCreate(level=20, message="not sent"))
    records.report_task_run_state(task_record())
    assert records.flush(30)
    assert recorder.items("logs") == []
    assert len(recorder.items("task-runs/ingest")) == 1
    assert list(spool.glob("*.logs.*")) == []


def test_long_messages_are_truncated_with_a_marker(recorder: Recorder, make_settings: Any) -> None:
    records.configure(make_settings(api_url=recorder.api_url, logging_to_api_max_log_size=100))
    records.report_log(LogCreate(level=20, message="a" * 1000))
    records.report_log(LogCreate(level=20, message="short"))
    assert records.flush(30)
    long, short = (item["message"] for item in recorder.items("logs"))
    assert len(long) <= 100
    assert long.startswith("a" * 50)
    assert long.endswith(f"… [truncated {1000 - long.index('…')} characters]")
    assert short == "short"


@pytest.mark.parametrize(("size", "limit"), [(10, 10), (11, 10), (1_000_000, 1000), (50, 5)])
def test_truncate_message(size: int, limit: int) -> None:
    message = "m" * size
    cut = truncate_message(message, limit)
    assert len(cut) <= limit
    if size <= limit:
        assert cut == message
    elif limit > 30:
        kept = cut.index("…")
        assert cut == "m" * kept + f"… [truncated {size - kept} characters]"


def test_configure_with_other_settings_starts_a_new_pipeline(recorder: Recorder, make_settings: Any) -> None:
    records.configure(make_settings(api_url=recorder.api_url))
    records.report_task_run_state(task_record())
    first = records.start()
    records.configure(make_settings(api_url=recorder.api_url, logging_to_api_enabled=False))
    assert records.start() is not first
    assert len(recorder.items("task-runs/ingest")) == 1  # the old one flushed as it closed


def test_reporting_is_thread_safe_and_keeps_each_threads_order(recorder: Recorder, make_settings: Any) -> None:
    records.configure(make_settings(api_url=recorder.api_url))
    per_thread: dict[int, list[TaskRunRecord]] = {n: [task_record(i) for i in range(300)] for n in range(4)}

    def report(n: int) -> None:
        for record in per_thread[n]:
            records.report_task_run_state(record)

    threads = [threading.Thread(target=report, args=(n,)) for n in per_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert records.flush(60)
    shipped = [item["state"]["id"] for item in recorder.items("task-runs/ingest")]
    assert len(shipped) == len(set(shipped)) == 1200
    for sent in per_thread.values():
        positions = [shipped.index(str(r.state.id)) for r in sent]
        assert positions == sorted(positions)


def test_flush_without_a_pipeline_is_true() -> None:
    assert records.flush(0)
    assert records.pending() == 0


def test_exit_flushes_what_is_left(recorder: Recorder, script: Any) -> None:
    process = script(
        """
        import uuid
        from headrace import records
        from headrace.schemas.runs import TaskRunRecord
        from headrace.schemas.states import State, StateType
        for i in range(200):
            records.report_task_run_state(TaskRunRecord(
                task_run_id=uuid.uuid4(), task_key="k", name=f"t{i}", state=State(type=StateType.COMPLETED)))
        # no flush: leaving the interpreter must send them
        """,
        HEADRACE_API_URL=recorder.api_url,
        HEADRACE_CLIENT_RECORDS_BATCH_INTERVAL="30",
    )
    assert process.wait(120) == 0, process.stderr.read()
    assert len(recorder.items("task-runs/ingest")) == 200


def test_exit_waits_a_bounded_time_then_leaves_the_rest_in_the_spool(script: Any, spool: Path) -> None:
    process = script(
        """
        import uuid
        from headrace import records
        from headrace.schemas.runs import TaskRunRecord
        from headrace.schemas.states import State, StateType
        records.report_task_run_state(TaskRunRecord(
            task_run_id=uuid.uuid4(), task_key="k", name="t", state=State(type=StateType.COMPLETED)))
        """,
        HEADRACE_API_URL="http://127.0.0.1:9/api",
        HEADRACE_CLIENT_RECORDS_FLUSH_TIMEOUT="1",
    )
    assert process.wait(120) == 0  # an unbounded wait for the unreachable server would never end
    assert "wait in the spool" in process.stderr.read()
    assert len(segment_records(spool, "task_runs")) == 1


def test_a_forked_worker_ships_its_own_records(recorder: Recorder, make_settings: Any) -> None:
    import multiprocessing

    records.configure(make_settings(api_url=recorder.api_url))
    records.report_task_run_state(task_record(0))
    parent = records.start()
    context = multiprocessing.get_context("fork")
    child = context.Process(target=_report_in_child, args=(5,))
    child.start()
    child.join(120)
    assert child.exitcode == 0
    assert records.start() is parent  # the parent's pipeline is untouched
    assert records.flush(30)
    names = sorted(item["name"] for item in recorder.items("task-runs/ingest"))
    assert names == ["child-0", "child-1", "child-2", "child-3", "child-4", "work-0"]


def _report_in_child(count: int) -> None:
    for i in range(count):
        records.report_task_run_state(
            TaskRunRecord(
                task_run_id=uuid.uuid4(), task_key="c", name=f"child-{i}", state=State(type=StateType.RUNNING)
            )
        )
    # the process ends without a flush: multiprocessing runs the threading exit hook, which flushes
