"""Durability, end to end, with real processes: a server stopped and restarted in the middle of a flow,
and a flow process killed with SIGKILL whose records a later headrace process (or
``headrace spool flush``) delivers — every record, none twice."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from headrace.client.http import HttpClient
from headrace.client.sync import SyncClient
from headrace.schemas.logs import LogFilter
from headrace.schemas.runs import FlowRunCreate, FlowRunFilter, TaskRunFilter
from headrace.schemas.states import StateType

FLOW = """
import os, pathlib, time
from headrace.flows import flow
from headrace.run_logging import get_run_logger
from headrace.tasks import task

signals = pathlib.Path(os.environ["SIGNALS"])

def wait_for(name):
    while not (signals / name).exists():
        time.sleep(0.05)

@task
def step(i):
    get_run_logger().info("step %d", i)
    if i == 3:
        (signals / "paused").touch()
        wait_for("server-stopped")   # steps 4 to 7 run while the server is down
    if i == 7:
        (signals / "ran-while-down").touch()
        wait_for("server-back")
    return i

@flow(name="durable")
def durable():
    return [step(i) for i in range(10)]

print(durable(), flush=True)
"""


def wait_for_file(path: Path, process: subprocess.Popen[str], timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"the flow process ended early ({process.returncode}): {process.stderr.read()}")  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path.name} did not appear")
        time.sleep(0.05)


def test_a_server_restarted_mid_flow_gets_every_task_run_and_log_line(
    server_process: Any, script: Any, tmp_path: Path, make_settings: Any
) -> None:
    signals = tmp_path / "signals"
    signals.mkdir()
    server_process.start()
    flow = script(FLOW, HEADRACE_API_URL=server_process.api_url, SIGNALS=str(signals))

    wait_for_file(signals / "paused", flow)
    server_process.stop()
    (signals / "server-stopped").touch()
    wait_for_file(signals / "ran-while-down", flow)
    server_process.start()
    (signals / "server-back").touch()
    assert flow.wait(300) == 0, flow.stderr.read()

    with SyncClient(HttpClient(make_settings(api_url=server_process.api_url))) as client:
        (flow_run,) = client.read_flow_runs(FlowRunFilter(flow_names=["durable"])).items
        assert flow_run.state is not None
        assert flow_run.state.type is StateType.COMPLETED
        task_runs = client.read_task_runs(TaskRunFilter(flow_run_ids=[flow_run.id], limit=200)).items
        assert sorted(run.name for run in task_runs) == sorted(f"step-{i}" for i in range(10))
        assert all(run.state is not None and run.state.type is StateType.COMPLETED for run in task_runs)
        logs = client.read_logs(LogFilter(flow_run_ids=[flow_run.id], limit=200)).items
        assert sorted(log.message for log in logs if log.message.startswith("step ")) == sorted(
            f"step {i}" for i in range(10)
        )


REPORTER = """
import os, time, uuid
from headrace import records
from headrace.schemas.logs import LogCreate
from headrace.schemas.runs import TaskRunRecord
from headrace.schemas.states import State, StateType

flow_run_id = uuid.UUID(os.environ["FLOW_RUN_ID"])
for i in range(int(os.environ["TASK_RUNS"])):
    task_run_id = uuid.uuid4()
    for state_type in (StateType.PENDING, StateType.RUNNING, StateType.COMPLETED):
        records.report_task_run_state(TaskRunRecord(
            task_run_id=task_run_id, flow_run_id=flow_run_id, task_key="work", name=f"work-{i}",
            state=State(type=state_type)))
    records.report_log(LogCreate(flow_run_id=flow_run_id, task_run_id=task_run_id, level=20, message=f"log {i}"))
print("reported", flush=True)
time.sleep(600)
"""

LATER = """
from headrace import records
records.start()   # any headrace process that reports records takes over the spools of dead ones
"""

TASK_RUNS = 40  # 120 task-run states and 40 log lines


@pytest.mark.parametrize(
    "scenario",
    ["server down, a later process", "server up, headrace spool flush", "server down, headrace spool flush"],
)
def test_records_of_a_killed_process_arrive_once(
    scenario: str, server_process: Any, script: Any, home: Path, make_settings: Any
) -> None:
    server_during_run = "down" if scenario.startswith("server down") else "up"
    replayed_by = scenario.split(", ", 1)[1]
    server_process.start()
    settings = make_settings(api_url=server_process.api_url)
    with SyncClient(HttpClient(settings)) as client:
        flow_run = client.create_flow_run(FlowRunCreate(flow_name="killed"))
    if server_during_run == "down":
        server_process.stop()

    reporter = script(
        REPORTER, HEADRACE_API_URL=server_process.api_url, FLOW_RUN_ID=str(flow_run.id), TASK_RUNS=str(TASK_RUNS)
    )
    assert reporter.stdout.readline().strip() == "reported", reporter.stderr.read()
    reporter.send_signal(signal.SIGKILL)
    assert reporter.wait(30) == -signal.SIGKILL
    spooled = list((home / "spool").glob("*.jsonl"))
    if server_during_run == "down":
        assert spooled  # nothing could have been acknowledged

    if server_during_run == "down":
        server_process.start()
    if replayed_by == "a later process":
        later = script(LATER, HEADRACE_API_URL=server_process.api_url)
        assert later.wait(300) == 0, later.stderr.read()
    else:
        done = subprocess.run(
            [sys.executable, "-m", "headrace.cli.main", "spool", "flush"],
            env=_env(home, HEADRACE_API_URL=server_process.api_url),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "Sent" in done.stdout

    with SyncClient(HttpClient(settings)) as client:
        task_runs = client.read_task_runs(TaskRunFilter(flow_run_ids=[flow_run.id], limit=200)).items
        assert sorted(run.name for run in task_runs) == sorted(f"work-{i}" for i in range(TASK_RUNS))
        for run in task_runs:
            states = client.read_task_run_states(run.id)
            assert [s.type for s in states] == [StateType.PENDING, StateType.RUNNING, StateType.COMPLETED]
            assert run.run_count == 1  # a Running state applied twice would count two runs
        logs = client.read_logs(LogFilter(flow_run_ids=[flow_run.id], limit=200)).items
        assert sorted(log.message for log in logs) == sorted(f"log {i}" for i in range(TASK_RUNS))
    assert list((home / "spool").glob("*.jsonl")) == []
    assert list((home / "spool").glob("*.lock")) == []


def _env(home: Path, **extra: str) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("HEADRACE_")}
    env["HEADRACE_HOME"] = str(home)
    env.update(extra)
    return env


def test_the_spool_of_another_target_is_left_alone(
    server_process: Any, script: Any, home: Path, make_settings: Any, live_server: Any
) -> None:
    reporter = script(REPORTER, HEADRACE_API_URL=server_process.api_url, FLOW_RUN_ID=str(uuid.uuid4()), TASK_RUNS="2")
    assert reporter.stdout.readline().strip() == "reported"
    reporter.send_signal(signal.SIGKILL)
    reporter.wait(30)
    later = script(LATER, HEADRACE_API_URL=live_server.api_url)  # another server
    assert later.wait(300) == 0, later.stderr.read()
    assert len(list((home / "spool").glob("*.task_runs.*.jsonl"))) == 1  # still waiting for its own server
    status = subprocess.run(
        [sys.executable, "-m", "headrace.cli.main", "spool", "status", "--json"],
        env=_env(home, HEADRACE_API_URL=live_server.api_url),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    import json

    (owner,) = json.loads(status.stdout)["owners"]
    assert owner["target"] == server_process.api_url
    assert owner["alive"] is False
    assert (owner["task_runs"], owner["logs"]) == (6, 2)
