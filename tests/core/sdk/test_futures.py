"""Concurrency: submit, map, futures as dependencies, wait and as_completed — in both modes."""

from __future__ import annotations

import threading
import time
from typing import Any
from uuid import UUID

import pytest

from headrace import as_completed, flow, task, unmapped, wait
from headrace.futures import HeadraceFuture, HeadraceFutureList
from headrace.states import State

from .conftest import Api


def run_id(state: State) -> UUID:
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    return flow_run_id


@task
def square(x: int) -> int:
    return x * x


@task
def add(x: int, y: int) -> int:
    return x + y


def test_submit_returns_a_future_with_result_wait_and_state(api: Api) -> None:
    @flow
    def submits() -> tuple[Any, ...]:
        future = square.submit(4)
        assert isinstance(future, HeadraceFuture)
        future.wait()
        return future.state.name, future.result(), future.task_run_id

    state = submits(return_state=True)
    name, value, task_run_id = state.result()
    assert (name, value) == ("Completed", 16)
    recorded = api.task_run(task_run_id)
    assert recorded.flow_run_id == run_id(state)
    assert [s.type.value for s in api.task_run_states(task_run_id)] == ["PENDING", "RUNNING", "COMPLETED"]


def test_map_submits_one_run_per_element_with_unmapped_values(api: Api) -> None:
    @flow
    def maps() -> list[int]:
        futures = add.map([1, 2, 3], unmapped(10))
        assert isinstance(futures, HeadraceFutureList)
        return futures.result()

    state = maps(return_state=True)
    assert state.result() == [11, 12, 13]
    runs = api.task_runs(run_id(state))
    assert sorted(run.name for run in runs) == ["add-0", "add-1", "add-2"]


def test_map_broadcasts_non_iterables_and_checks_lengths(api: Api) -> None:
    @flow
    def broadcast() -> list[int]:
        return add.map([1, 2], 5).result()

    @flow
    def mismatched() -> None:
        add.map([1, 2], [1, 2, 3])

    @flow
    def nothing_to_map() -> None:
        add.map(1, 2)

    assert broadcast() == [6, 7]
    with pytest.raises(ValueError, match="different lengths: x has 2, y has 3"):
        mismatched()
    with pytest.raises(TypeError, match="at least one iterable"):
        nothing_to_map()


def test_map_over_a_future_maps_over_its_result(api: Api) -> None:
    @task
    def numbers() -> list[int]:
        return [1, 2, 3]

    @flow
    def maps_a_future() -> list[int]:
        return square.map(numbers.submit()).result()

    assert maps_a_future() == [1, 4, 9]


def test_futures_passed_as_arguments_are_dependencies(api: Api) -> None:
    order: list[str] = []
    lock = threading.Lock()

    @task
    def slow_source(x: int) -> int:
        time.sleep(0.2)
        with lock:
            order.append(f"source-{x}")
        return x

    @task
    def combine(values: list[int], extra: dict[str, int]) -> int:
        with lock:
            order.append("combine")
        return sum(values) + extra["k"]

    @flow
    def diamond() -> int:
        a = slow_source.submit(1)
        b = slow_source.submit(2)
        c = slow_source.submit(3)
        return combine.submit([a, b], {"k": c}).result()

    assert diamond() == 6
    assert order[-1] == "combine"
    assert sorted(order[:3]) == ["source-1", "source-2", "source-3"]


def test_wait_for_orders_runs_without_passing_data(api: Api) -> None:
    order: list[str] = []

    @task
    def first() -> None:
        time.sleep(0.2)
        order.append("first")

    @task
    def second() -> None:
        order.append("second")

    @flow
    def ordered() -> None:
        done = first.submit()
        second.submit(wait_for=[done]).wait()

    ordered()
    assert order == ["first", "second"]


def test_wait_and_as_completed(api: Api) -> None:
    @task
    def sleep_for(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    @flow
    def waits() -> tuple[list[float], int, int]:
        futures = [sleep_for.submit(s) for s in (0.6, 0.0, 0.3)]
        finished = [future.result() for future in as_completed(futures)]
        quick = sleep_for.submit(0.0)
        slow = sleep_for.submit(5.0)
        done, not_done = wait([quick, slow], timeout=2.0)
        slow.wait()
        return finished, len(done), len(not_done)

    finished, done, not_done = waits()
    assert finished == [0.0, 0.3, 0.6]
    assert (done, not_done) == (1, 1)


def test_result_with_a_timeout(api: Api) -> None:
    @task
    def sleeps() -> None:
        time.sleep(1.0)

    @flow
    def impatient() -> str:
        future = sleeps.submit()
        try:
            future.result(timeout=0.05)
        except TimeoutError:
            future.wait()
            return "timed out waiting"
        return "?"

    assert impatient() == "timed out waiting"


def test_the_thread_pool_is_bounded(api: Api) -> None:
    from headrace.task_runners import ThreadPoolTaskRunner

    running = 0
    peak = 0
    lock = threading.Lock()

    @task
    def occupy(i: int) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.2)
        with lock:
            running -= 1

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=3))
    def crowded() -> None:
        occupy.map(range(12)).wait()

    crowded()
    assert peak == 3


def test_one_thousand_submissions_are_all_recorded(api: Api) -> None:
    @task
    def noop(i: int) -> int:
        return i

    @flow
    def many() -> int:
        return sum(noop.map(range(1000)).result())

    state = many(return_state=True)
    assert state.result() == sum(range(1000))
    runs = api.task_runs(run_id(state))
    assert len(runs) == 1000
    assert {run.state.type.value for run in runs} == {"COMPLETED"}


@task
def where(x: int) -> tuple[int, int]:
    import os

    return os.getpid(), x * x


def test_the_process_pool_runs_tasks_in_workers_that_report_their_own_records(api: Api) -> None:
    import os

    @flow(task_runner="process-pool")
    def spread() -> list[tuple[int, int]]:
        return where.map(range(4)).result()

    state = spread(return_state=True)
    results = state.result()
    assert [value for _, value in results] == [0, 1, 4, 9]
    assert all(pid != os.getpid() for pid, _ in results)
    runs = api.task_runs(run_id(state))
    assert len(runs) == 4
    assert {run.state.type.value for run in runs} == {"COMPLETED"}
    assert [s.type.value for s in api.task_run_states(runs[0].id)] == ["PENDING", "RUNNING", "COMPLETED"]
