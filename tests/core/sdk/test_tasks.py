"""Tasks, run for real inside flows (and outside), in both modes (see conftest.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from uuid import UUID

import pytest

from headrace import flow, runtime, task
from headrace.context import TaskRunInfo
from headrace.retries import exponential_backoff
from headrace.states import State

from .conftest import Api


def run_id(state: State) -> UUID:
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    return flow_run_id


@task
def add(x: int, y: int) -> int:
    return x + y


def test_calling_a_task_runs_it_and_records_running_then_completed(api: Api) -> None:
    @flow
    def adds() -> int:
        return add(add(1, 2), 3)

    state = adds(return_state=True)
    assert state.result() == 6
    runs = sorted(api.task_runs(run_id(state)), key=lambda run: run.dynamic_key)
    assert [(run.name, run.dynamic_key, run.state.type.value) for run in runs] == [
        ("add-0", "0", "COMPLETED"),
        ("add-1", "1", "COMPLETED"),
    ]
    assert runs[0].task_key.endswith("test_tasks.add")
    assert [s.type.value for s in api.task_run_states(runs[0].id)] == ["RUNNING", "COMPLETED"]


def test_task_options_names_tags_and_run_name_template(api: Api) -> None:
    @task(name="renamed", tags=["io"], task_run_name="fetch-{url}", description="Fetches.", version="2")
    def fetch(url: str) -> str:
        return url.upper()

    @flow(tags=["nightly"])
    def uses_fetch() -> str:
        return fetch("a")

    assert (fetch.name, fetch.description, fetch.version) == ("renamed", "Fetches.", "2")
    state = uses_fetch(return_state=True)
    (run,) = api.task_runs(run_id(state))
    assert run.name == "fetch-a"
    assert set(run.tags) == {"io", "nightly"}


def test_a_call_that_does_not_fit_the_signature_raises_type_error(api: Api) -> None:
    @flow
    def miscalls() -> None:
        add(1, 2, 3)

    with pytest.raises(TypeError, match="task 'add'"):
        miscalls()


def test_return_state_gives_the_state_instead_of_raising(api: Api) -> None:
    @task
    def fails() -> None:
        raise ValueError("bad")

    @flow
    def inspects() -> tuple[str, str]:
        state = fails(return_state=True)
        return state.name, type(state.result(raise_on_failure=False)).__name__

    assert inspects() == ("Failed", "ValueError")


def test_a_task_outside_a_flow_runs_and_is_recorded(api: Api) -> None:
    state = add(2, 2, return_state=True)
    assert state.result() == 4
    task_run_id = state.state_details.task_run_id
    assert task_run_id is not None
    recorded = api.task_run(task_run_id)
    assert recorded.flow_run_id is None
    assert recorded.state.type.value == "COMPLETED"


def test_a_task_may_call_another_task(api: Api) -> None:
    @task
    def outer(x: int) -> int:
        return add(x, 1) * 2

    @flow
    def nested() -> int:
        return outer(1)

    state = nested(return_state=True)
    assert state.result() == 4
    assert sorted(run.name for run in api.task_runs(run_id(state)))[0].startswith("add-")


# -- retries ---------------------------------------------------------------------------------------


def flaky_task(failures: int, **options: Any) -> tuple[Any, list[int]]:
    attempts: list[int] = []

    @task(**options)
    def flaky() -> str:
        attempts.append(runtime.task_run.attempt or 0)
        if len(attempts) <= failures:
            raise ConnectionError(f"failure {len(attempts)}")
        return "ok"

    return flaky, attempts


def retry_delays(api: Api, task_run_id: UUID) -> list[float]:
    """Seconds between each AwaitingRetry state and the time it was scheduled for."""
    states = api.task_run_states(task_run_id)
    return [(s.state_details.scheduled_time - s.timestamp).total_seconds() for s in states if s.name == "AwaitingRetry"]


@pytest.mark.parametrize(
    ("delay", "expected"),
    [
        (0.05, [0.05, 0.05]),
        ([0.01, 0.06], [0.01, 0.06]),
        (exponential_backoff(backoff_factor=0.02), [0.02, 0.04]),
    ],
    ids=["number", "list", "callable"],
)
def test_retries_with_a_number_a_list_or_a_callable_delay(api: Api, delay: Any, expected: list[float]) -> None:
    flaky, attempts = flaky_task(2, retries=3, retry_delay_seconds=delay)

    states: list[State] = []

    @flow
    def retrying() -> None:
        states.append(flaky(return_state=True))

    retrying()
    (state,) = states
    assert state.result() == "ok"
    assert attempts == [1, 2, 3]
    task_run_id = state.state_details.task_run_id
    assert task_run_id is not None
    names = [s.name for s in api.task_run_states(task_run_id)]
    assert names == ["Running", "AwaitingRetry", "Retrying", "AwaitingRetry", "Retrying", "Completed"]
    assert retry_delays(api, task_run_id) == pytest.approx(expected, abs=1e-3)
    assert api.task_run(task_run_id).run_count == 3


def test_retry_jitter_is_applied(api: Api) -> None:
    flaky, _ = flaky_task(4, retries=4, retry_delay_seconds=0.02, retry_jitter_factor=1.0)

    states: list[State] = []

    @flow
    def jittery() -> None:
        states.append(flaky(return_state=True))

    jittery()
    (state,) = states
    task_run_id = state.state_details.task_run_id
    assert task_run_id is not None
    delays = retry_delays(api, task_run_id)
    assert len(delays) == 4
    assert all(0.02 - 1e-3 <= d <= 0.04 + 1e-3 for d in delays)
    assert len(set(delays)) > 1  # drawn anew for each retry: the runs spread out


def test_retries_run_out_and_the_task_fails(api: Api) -> None:
    flaky, attempts = flaky_task(5, retries=1)

    states: list[State] = []

    @flow
    def gives_up() -> None:
        states.append(flaky(return_state=True))

    gives_up()
    (state,) = states
    assert state.is_failed()
    assert attempts == [1, 2]
    assert isinstance(state.result(raise_on_failure=False), ConnectionError)


def test_retry_condition_fn_decides_whether_to_retry(api: Api) -> None:
    seen: list[tuple[str, int, str]] = []

    def only_connection_errors(task_: Any, task_run: TaskRunInfo, state: State) -> bool:
        seen.append((task_.name, task_run.run_count, state.name))
        return isinstance(state.result(raise_on_failure=False), ConnectionError)

    calls: list[int] = []

    @task(retries=5, retry_condition_fn=only_connection_errors)
    def picky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("transient")
        raise PermissionError("permanent")

    states: list[State] = []

    @flow
    def conditional() -> None:
        states.append(picky(return_state=True))

    conditional()
    (state,) = states
    assert state.is_failed()
    assert len(calls) == 2
    assert seen == [("picky", 1, "Failed"), ("picky", 2, "Failed")]
    assert state.state_details.retriable is False


def test_timeouts_end_a_task_timed_out_and_are_retried(api: Api) -> None:
    attempts: list[int] = []

    @task(timeout_seconds=0.2, retries=1)
    def slow() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            for _ in range(500):
                time.sleep(0.01)
        return "fast enough"

    @task(timeout_seconds=0.2)
    def always_slow() -> None:
        for _ in range(500):
            time.sleep(0.01)

    states: list[State] = []

    @flow
    def timed() -> None:
        states.extend([slow(return_state=True), always_slow(return_state=True)])

    timed()
    retried, timed_out = states
    assert retried.result() == "fast enough"
    assert timed_out.name == "TimedOut"
    assert timed_out.is_failed()
    task_run_id = timed_out.state_details.task_run_id
    assert task_run_id is not None
    assert api.task_run(task_run_id).state.name == "TimedOut"


def test_a_timeout_in_a_worker_thread_is_enforced(api: Api) -> None:
    @task(timeout_seconds=0.2)
    def slow_in_pool() -> None:
        for _ in range(500):
            time.sleep(0.01)

    @flow
    def submits_and_reads() -> str:
        future = slow_in_pool.submit()
        future.wait()
        return future.state.name

    assert submits_and_reads() == "TimedOut"


# -- hooks -----------------------------------------------------------------------------------------


def test_task_state_hooks(api: Api) -> None:
    seen: list[tuple[str, str, str]] = []

    def remember(task_: Any, task_run: TaskRunInfo, state: State) -> None:
        seen.append((task_.name, task_run.name, state.name))

    @task(on_completion=[remember], on_failure=[remember])
    def maybe(fail: bool) -> None:
        if fail:
            raise ValueError("no")

    @maybe.on_completion
    def broken(task_: Any, task_run: TaskRunInfo, state: State) -> None:
        raise RuntimeError("a hook's failure never changes the run")

    @flow
    def hooked() -> None:
        maybe(False)
        maybe(True, return_state=True)

    assert hooked(return_state=True).is_completed()
    assert seen == [("maybe", "maybe-0", "Completed"), ("maybe", "maybe-1", "Failed")]


# -- async -----------------------------------------------------------------------------------------


@task
async def async_add(x: int, y: int) -> int:
    await asyncio.sleep(0.01)
    return x + y


def test_an_async_task_in_a_sync_flow_runs_to_completion(api: Api) -> None:
    @flow
    def sync_flow() -> int:
        return async_add(1, 2) + async_add.submit(3, 4).result()  # type: ignore[operator]

    assert sync_flow() == 10


def test_async_tasks_in_an_async_flow_are_awaited(api: Api) -> None:
    @flow
    async def gathering() -> list[int]:
        return list(await asyncio.gather(*(async_add(i, i) for i in range(5))))

    state = asyncio.run(gathering(return_state=True))
    assert state.result() == [0, 2, 4, 6, 8]
    assert len(api.task_runs(run_id(state))) == 5


def test_an_async_task_outside_a_flow() -> None:
    assert asyncio.run(async_add(1, 1)) == 2


# -- dependencies ------------------------------------------------------------------------------------


def test_a_failed_upstream_fails_its_dependents_without_running_them(api: Api) -> None:
    ran: list[str] = []

    @task
    def upstream() -> int:
        raise OSError("disk full")

    @task
    def downstream(x: int) -> None:
        ran.append("downstream")

    states: list[State] = []

    @flow
    def chained() -> None:
        first = upstream.submit()
        second = downstream.submit(first)
        second.wait()
        states.append(second.state)

    flow_state = chained(return_state=True)
    (state,) = states
    assert flow_state.is_completed()  # the failures were looked at: the flow handled them
    assert state.is_failed()
    assert "did not complete" in (state.message or "")
    assert "disk full" in (state.message or "")
    assert ran == []
