"""The built-in thread pool passes the task-runner contract, and is bounded by default."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from headrace.task_runners import TaskRunner, ThreadPoolTaskRunner
from headrace.task_runners.thread import default_max_workers
from headrace.testing.contracts import TaskRunnerContract


class TestThreadPoolTaskRunner(TaskRunnerContract):
    @pytest.fixture(scope="class")
    @classmethod
    def headrace_home(cls, shared_headrace_home: Path) -> Path:
        return shared_headrace_home

    @pytest.fixture
    def task_runner(self) -> TaskRunner:
        return ThreadPoolTaskRunner(max_workers=4)


def test_bounded_by_default() -> None:
    runner = ThreadPoolTaskRunner()
    assert runner.max_workers == default_max_workers() == min(32, (os.cpu_count() or 1) + 4)
    assert runner.duplicate().max_workers == runner.max_workers


def test_max_workers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ThreadPoolTaskRunner(max_workers=0)
