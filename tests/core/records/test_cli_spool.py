"""``headrace spool status`` and ``headrace spool flush``, as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from headrace.client.http import HttpClient
from headrace.client.sync import SyncClient
from headrace.schemas.runs import TaskRunFilter

KILLED = """
import time, uuid
from headrace import records
from headrace.schemas.runs import TaskRunRecord
from headrace.schemas.states import State, StateType
for i in range(3):
    records.report_task_run_state(TaskRunRecord(
        task_run_id=uuid.uuid4(), task_key="k", name=f"orphan-{i}", state=State(type=StateType.COMPLETED)))
print("reported", flush=True)
time.sleep(600)
"""


def headrace(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.upper().startswith("HEADRACE_")}
    environment.update(HEADRACE_HOME=str(home), **env)
    return subprocess.run(
        [sys.executable, "-m", "headrace.cli.main", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def killed_process(script: Any, api_url: str) -> None:
    process = script(KILLED, HEADRACE_API_URL=api_url)
    assert process.stdout.readline().strip() == "reported", process.stderr.read()
    process.send_signal(signal.SIGKILL)
    process.wait(30)


def test_status_of_an_empty_spool(home: Path) -> None:
    done = headrace(home, "spool", "status")
    assert done.returncode == 0, done.stderr
    assert "Nothing waits in the spool." in done.stdout
    assert f"Records go to: embedded:sqlite:{home.resolve() / 'headrace.db'}" in done.stdout


def test_flush_sends_what_a_killed_process_left(
    server_process: Any, script: Any, home: Path, make_settings: Any
) -> None:
    server_process.start()
    killed_process(script, server_process.api_url)

    status = headrace(home, "spool", "status", HEADRACE_API_URL=server_process.api_url)
    assert status.returncode == 0, status.stderr
    assert "(exited): 3 task-run record(s), 0 log line(s)" in status.stdout

    done = headrace(home, "spool", "flush", HEADRACE_API_URL=server_process.api_url)
    assert done.returncode == 0, done.stderr
    assert f"Sent 3 run record(s) to {server_process.api_url}." in done.stdout
    with SyncClient(HttpClient(make_settings(api_url=server_process.api_url))) as client:
        names = sorted(run.name for run in client.read_task_runs(TaskRunFilter(name_like="orphan")).items)
    assert names == ["orphan-0", "orphan-1", "orphan-2"]
    after = json.loads(headrace(home, "spool", "status", "--json").stdout)
    assert after["owners"] == []


def test_flush_with_the_server_down_fails_and_keeps_the_records(server_process: Any, script: Any, home: Path) -> None:
    killed_process(script, server_process.api_url)  # never started: nothing listens
    done = headrace(home, "spool", "flush", "--timeout", "1", HEADRACE_API_URL=server_process.api_url)
    assert done.returncode == 1
    assert "3 record(s) could not be sent" in done.stderr
    assert "refused" not in done.stdout
    (owner,) = json.loads(headrace(home, "spool", "status", "--json").stdout)["owners"]
    assert owner["task_runs"] == 3


def test_flush_into_the_embedded_database(script: Any, home: Path, make_settings: Any) -> None:
    process = script(KILLED)  # no HEADRACE_API_URL: the embedded database under HEADRACE_HOME
    assert process.stdout.readline().strip() == "reported", process.stderr.read()
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    done = headrace(home, "spool", "flush")
    assert done.returncode == 0, done.stderr
    assert "Sent 3 run record(s) to embedded:sqlite:" in done.stdout
    from headrace.client.embedded import EmbeddedClient

    with SyncClient(EmbeddedClient(make_settings())) as client:
        assert client.read_task_runs(TaskRunFilter(name_like="orphan")).total == 3


def test_a_record_reported_during_exit_is_kept_for_the_next_process(script: Any, home: Path) -> None:
    process = script(
        """
        import atexit, logging, uuid
        from headrace import records
        from headrace.schemas.runs import TaskRunRecord
        from headrace.schemas.states import State, StateType

        def late():   # runs after headrace's exit hook
            records.report_task_run_state(TaskRunRecord(
                task_run_id=uuid.uuid4(), task_key="k", name="late", state=State(type=StateType.COMPLETED)))

        atexit.register(late)
        records.report_task_run_state(TaskRunRecord(
            task_run_id=uuid.uuid4(), task_key="k", name="early", state=State(type=StateType.COMPLETED)))
        """
    )
    assert process.wait(120) == 0, process.stderr.read()
    (owner,) = json.loads(headrace(home, "spool", "status", "--json").stdout)["owners"]
    assert owner["task_runs"] == 1  # "early" went at exit; "late" waits in the spool
