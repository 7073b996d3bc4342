"""``DaskTaskRunner`` passes the task-runner contract in each of its modes.

- its own ``LocalCluster`` of worker processes, started and closed by the runner for every test;
- a real ``dask scheduler`` + ``dask worker`` pair started as processes (``address=``), whose workers have
  no headrace settings of their own: the flow's settings travel with the work;
- its own ``LocalCluster`` with ``processes=False``: workers are threads of the test's process, and the
  runner says so (``separate_processes`` is false).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from headrace.task_runners import TaskRunner
from headrace.testing.contracts import TaskRunnerContract
from headrace_dask.task_runner import DaskTaskRunner, InProcessDaskTaskRunner


class _SharedHome(TaskRunnerContract):
    @pytest.fixture(scope="class")
    @classmethod
    def headrace_home(cls, shared_headrace_home: Path) -> Path:
        return shared_headrace_home


class TestDaskTaskRunnerOnItsOwnLocalCluster(_SharedHome):
    @pytest.fixture
    def task_runner(self) -> TaskRunner:
        return DaskTaskRunner(n_workers=2, threads_per_worker=1, processes=True)


class TestDaskTaskRunnerOnASchedulerAndWorkers(_SharedHome):
    @pytest.fixture
    def task_runner(self, dask_pair: str) -> TaskRunner:
        return DaskTaskRunner(address=dask_pair)


class TestDaskTaskRunnerWithWorkerThreads(_SharedHome):
    @pytest.fixture
    def task_runner(self) -> TaskRunner:
        runner = DaskTaskRunner(n_workers=1, threads_per_worker=4, processes=False)
        assert isinstance(runner, InProcessDaskTaskRunner)
        return runner
