"""The task-runner contract suite: what every :class:`~headrace.task_runners.TaskRunner` must do.

Subclass :class:`TaskRunnerContract` and provide the ``task_runner`` fixture (a new, unstarted runner).
The suite checks the runner on its own (submit, futures, errors, shutdown, duplicate) and then under flows
(``submit``, ``map``, dependencies, retries, async tasks, and records reaching the API from wherever the
runner ran the work). The work it submits is defined in this module, so it can be imported by name in
worker processes too.

Capability flags come from the runner class (:attr:`TaskRunner.separate_processes`,
:attr:`TaskRunner.concurrent`); the suite checks the behaviour each one promises either way.
"""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from headrace.flows import flow
from headrace.task_runners import TaskRunner
from headrace.tasks import task
from headrace.testing.contracts.environment import HeadraceEnvironment, read_task_runs

__all__ = ["TaskRunnerContract"]

TIMEOUT = 120.0
"""Seconds any single wait in this suite may take (worker processes can be slow to start)."""


# -- work items (module level, so that worker processes can import them) -----------------------------


def add(x: int, y: int) -> int:
    return x + y


def fail(message: str) -> None:
    raise ValueError(message)


def process_id() -> int:
    return os.getpid()


def make_function(offset: int) -> Any:
    return lambda x: x + offset  # only cloudpickle can carry a lambda back


def touch_after(path: str, seconds: float) -> str:
    time.sleep(seconds)
    Path(path).touch()
    return path


def rendezvous(mine: str, theirs: str, timeout: float) -> bool:
    """Announce ``mine``, then wait up to ``timeout`` s for ``theirs``: both succeed only if they overlap."""
    Path(mine).touch()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Path(theirs).exists():
            return True
        time.sleep(0.01)
    return False


@task
def double(x: int) -> int:
    return 2 * x


@task
def total(values: list[int], extra: int) -> int:
    return sum(values) + extra


@task(retries=2, retry_delay_seconds=0)
def fail_first_time(marker: str) -> str:
    path = Path(marker)
    if not path.exists():
        path.touch()
        raise ConnectionError("first attempt fails")
    return "second attempt"


@task
def always_fails() -> None:
    raise KeyError("no such thing")


@task
async def async_double(x: int) -> int:
    await asyncio.sleep(0.01)
    return 2 * x


class TaskRunnerContract(HeadraceEnvironment):
    """Subclass and provide ``task_runner``: a new, unstarted runner."""

    @pytest.fixture
    def task_runner(self) -> TaskRunner:
        raise NotImplementedError("provide a `task_runner` fixture returning a new, unstarted runner")

    # -- the runner on its own ----------------------------------------------------------------------

    def test_is_a_task_runner_and_starts_unstarted(self, task_runner: TaskRunner) -> None:
        assert isinstance(task_runner, TaskRunner)
        assert not task_runner.started

    def test_submit_before_start_is_refused(self, task_runner: TaskRunner) -> None:
        with pytest.raises(RuntimeError, match="not started"):
            task_runner.submit(add, 1, 2)

    def test_the_context_manager_starts_and_stops_it(self, task_runner: TaskRunner) -> None:
        with task_runner as entered:
            assert entered is task_runner
            assert task_runner.started
        assert not task_runner.started

    def test_submit_returns_a_future_of_the_return_value(self, task_runner: TaskRunner) -> None:
        with task_runner:
            future = task_runner.submit(add, 2, 3)
            assert isinstance(future, Future)
            assert future.result(timeout=TIMEOUT) == 5

    def test_an_exception_travels_in_the_future(self, task_runner: TaskRunner) -> None:
        with task_runner:
            future = task_runner.submit(fail, "broken on purpose")
            error = future.exception(timeout=TIMEOUT)
        assert isinstance(error, ValueError)
        assert str(error) == "broken on purpose"

    def test_many_items_each_get_their_own_result(self, task_runner: TaskRunner) -> None:
        with task_runner:
            futures = [task_runner.submit(add, i, 1000) for i in range(100)]
            assert [future.result(timeout=TIMEOUT) for future in futures] == [i + 1000 for i in range(100)]

    def test_results_travel_by_value(self, task_runner: TaskRunner) -> None:
        with task_runner:
            function = task_runner.submit(make_function, 10).result(timeout=TIMEOUT)
        assert function(1) == 11

    def test_separate_processes_flag_matches_where_work_runs(self, task_runner: TaskRunner) -> None:
        with task_runner:
            worker = task_runner.submit(process_id).result(timeout=TIMEOUT)
        if type(task_runner).separate_processes:
            assert worker != os.getpid()
        else:
            assert worker == os.getpid()

    def test_concurrent_flag_matches_whether_items_overlap(self, task_runner: TaskRunner, tmp_path: Path) -> None:
        a, b = str(tmp_path / "a"), str(tmp_path / "b")
        concurrent = type(task_runner).concurrent
        wait = TIMEOUT if concurrent else 2.0
        with task_runner:
            first = task_runner.submit(rendezvous, a, b, wait)
            second = task_runner.submit(rendezvous, b, a, wait)
            outcomes = (first.result(timeout=TIMEOUT + wait), second.result(timeout=TIMEOUT + wait))
        if concurrent:
            assert outcomes == (True, True)
        else:
            assert outcomes[0] is False

    def test_leaving_the_block_waits_for_submitted_work(self, task_runner: TaskRunner, tmp_path: Path) -> None:
        paths = [str(tmp_path / f"done-{i}") for i in range(4)]
        with task_runner:
            for path in paths:
                task_runner.submit(touch_after, path, 0.2)
        assert all(Path(path).exists() for path in paths)

    def test_duplicate_is_a_new_unstarted_runner_of_the_same_kind(self, task_runner: TaskRunner) -> None:
        with task_runner:
            copy = task_runner.duplicate()
            assert type(copy) is type(task_runner)
            assert copy is not task_runner
            assert not copy.started
        with copy:
            assert copy.submit(add, 1, 1).result(timeout=TIMEOUT) == 2

    # -- under flows ----------------------------------------------------------------------------------

    def test_a_flow_submits_and_maps_on_it_and_every_run_is_recorded(self, task_runner: TaskRunner) -> None:
        @flow(task_runner=task_runner)
        def mapping() -> list[int]:
            return double.map(range(10)).result()

        state = mapping(return_state=True)
        assert state.result() == [2 * i for i in range(10)]
        flow_run_id = state.state_details.flow_run_id
        assert flow_run_id is not None
        runs = read_task_runs(flow_run_id)
        assert len(runs) == 10
        assert {run.state.type.value for run in runs} == {"COMPLETED"}

    def test_futures_are_dependencies_on_it(self, task_runner: TaskRunner) -> None:
        @flow(task_runner=task_runner)
        def depends() -> int:
            a = double.submit(1)
            b = double.submit(a)
            return total.submit([a, b], extra=double.submit(10)).result()

        assert depends() == 2 + 4 + 20

    def test_retries_and_failures_on_it(self, task_runner: TaskRunner, tmp_path: Path) -> None:
        @flow(task_runner=task_runner)
        def mixed() -> tuple[str, str, str]:
            retried = fail_first_time.submit(str(tmp_path / "marker"))
            failed = always_fails.submit()
            failed.wait()
            error = failed.result(raise_on_failure=False)
            return retried.result(), failed.state.name, type(error).__name__

        assert mixed() == ("second attempt", "Failed", "KeyError")

    def test_an_unhandled_failure_on_it_fails_the_flow(self, task_runner: TaskRunner) -> None:
        @flow(task_runner=task_runner)
        def careless() -> None:
            always_fails.submit()

        state = careless(return_state=True)
        assert state.is_failed()

    def test_async_tasks_on_it(self, task_runner: TaskRunner) -> None:
        @flow(task_runner=task_runner)
        def async_work() -> Any:
            return async_double.map([1, 2, 3]).result()

        assert async_work() == [2, 4, 6]
