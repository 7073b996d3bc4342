"""The built-in process pool passes the task-runner contract; work defined anywhere travels by value."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from headrace.task_runners import ProcessPoolTaskRunner, TaskRunner
from headrace.testing.contracts import TaskRunnerContract


class TestProcessPoolTaskRunner(TaskRunnerContract):
    @pytest.fixture(scope="class")
    @classmethod
    def headrace_home(cls, shared_headrace_home: Path) -> Path:
        return shared_headrace_home

    @pytest.fixture
    def task_runner(self) -> TaskRunner:
        return ProcessPoolTaskRunner(max_workers=2)


def test_tasks_defined_in_a_script_run_in_workers_without_a_main_guard(tmp_path: Path) -> None:
    """The workers never re-run the script: a flow at module level runs exactly once."""
    script = tmp_path / "etl.py"
    script.write_text(
        textwrap.dedent(
            """
            import os
            from headrace import flow, task

            SEEN = []

            @task
            def where(x):
                return os.getpid(), x * 2

            @flow(task_runner="process-pool")
            def spread():
                return where.map(range(4)).result()

            results = spread()
            assert all(pid != os.getpid() for pid, _ in results), results
            print("results", [value for _, value in results])
            """
        ),
        encoding="utf-8",
    )
    env = {"HEADRACE_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("results [0, 2, 4, 6]") == 1
