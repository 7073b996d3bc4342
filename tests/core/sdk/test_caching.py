"""Caching: policies, combinations, expiration and refresh; a hit is a Cached state — both modes."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from headrace import flow, task
from headrace.cache_policies import FLOW_PARAMETERS, INPUTS, NO_CACHE, RUN_ID, TASK_SOURCE, Inputs
from headrace.context import TaskRunContext
from headrace.results import ResultReference
from headrace.states import State

from .conftest import Api


def run_id(state: State) -> UUID:
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    return flow_run_id


@pytest.fixture
def storage(tmp_path: Path) -> str:
    return (tmp_path / "cache").as_uri()


def counting_task(storage: str, **options: Any) -> tuple[Any, list[Any]]:
    calls: list[Any] = []

    @task(result_storage=storage, **options)
    def compute(x: int, verbose: bool = False) -> int:
        calls.append(x)
        return x * 100

    return compute, calls


def test_a_cache_hit_returns_the_stored_result_without_running(api: Api, storage: str) -> None:
    compute, calls = counting_task(storage, cache_policy=INPUTS)

    @flow
    def twice() -> list[int]:
        return [compute(1), compute(1), compute(2)]

    state = twice(return_state=True)
    assert state.result() == [100, 100, 200]
    assert calls == [1, 2]
    runs = sorted(api.task_runs(run_id(state)), key=lambda run: int(run.dynamic_key))
    assert [run.state.name for run in runs] == ["Completed", "Cached", "Completed"]
    assert runs[1].state.type.value == "COMPLETED"
    assert runs[0].cache_key == runs[1].cache_key != runs[2].cache_key
    assert [s.name for s in api.task_run_states(runs[1].id)] == ["Cached"]
    reference = ResultReference.from_data(runs[1].state.data)
    assert reference is not None
    assert reference.load() == 100


def test_inputs_that_differ_only_in_a_secret_are_different_inputs(api: Api, storage: str) -> None:
    from pydantic import BaseModel, SecretStr

    class Login(BaseModel):
        user: str
        password: SecretStr

    calls: list[str] = []

    @task(result_storage=storage, cache_policy=INPUTS)
    def connect(login: Login, token: SecretStr) -> str:
        calls.append(login.password.get_secret_value() + token.get_secret_value())
        return calls[-1]

    @flow
    def logins() -> list[str]:
        prod, staging = Login(user="etl", password=SecretStr("p")), Login(user="etl", password=SecretStr("s"))
        return [
            connect(prod, SecretStr("1")),
            connect(staging, SecretStr("1")),  # another password: a miss
            connect(prod, SecretStr("2")),  # another token: a miss
            connect(Login(user="etl", password=SecretStr("p")), SecretStr("1")),  # equal values: a hit
        ]

    assert logins() == ["p1", "s1", "p2", "p1"]
    assert calls == ["p1", "s1", "p2"]


def test_the_cache_outlives_the_flow_run(api: Api, storage: str) -> None:
    compute, calls = counting_task(storage, cache_policy=INPUTS)

    @flow
    def once() -> int:
        return compute(7)

    assert once() == 700
    assert once() == 700
    assert calls == [7]


def test_run_id_limits_the_cache_to_one_flow_run(api: Api, storage: str) -> None:
    compute, calls = counting_task(storage, cache_policy=INPUTS + RUN_ID)

    @flow
    def reuse_within() -> list[int]:
        return [compute(1), compute(1)]

    reuse_within()
    reuse_within()
    assert calls == [1, 1]


def test_inputs_can_leave_some_arguments_out(api: Api, storage: str) -> None:
    compute, calls = counting_task(storage, cache_policy=INPUTS - "verbose")
    assert compute.cache_policy == Inputs(exclude=("verbose",))

    @flow
    def chatty_or_not() -> list[int]:
        return [compute(3, verbose=True), compute(3, verbose=False)]

    assert chatty_or_not() == [300, 300]
    assert calls == [3]


def test_task_source_misses_when_the_function_changes(api: Api, storage: str) -> None:
    calls: list[str] = []

    @task(cache_policy=TASK_SOURCE, result_storage=storage)
    def version() -> str:
        calls.append("one")
        return "one"

    first = version

    @task(cache_policy=TASK_SOURCE, result_storage=storage)  # type: ignore[no-redef]
    def version() -> str:
        calls.append("two")
        return "two"

    @flow
    def both() -> list[str]:
        return [first(), first(), version()]

    assert both() == ["one", "one", "two"]
    assert calls == ["one", "two"]


def test_flow_parameters_key_the_cache(api: Api, storage: str) -> None:
    calls: list[str] = []

    @task(cache_policy=FLOW_PARAMETERS, result_storage=storage)
    def per_region() -> str:
        calls.append("ran")
        return "data"

    @flow
    def regional(region: str) -> str:
        return per_region()

    regional("eu")
    regional("eu")
    regional("us")
    assert calls == ["ran", "ran"]


def test_cache_key_fn_and_combining_it(api: Api, storage: str) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    def by_parity(context: TaskRunContext, parameters: dict[str, Any]) -> str:
        seen.append((context.task.name, dict(parameters)))
        return f"parity-{parameters['x'] % 2}"

    compute, calls = counting_task(storage, cache_key_fn=by_parity)
    combined, combined_calls = counting_task(storage, cache_key_fn=by_parity, cache_policy=TASK_SOURCE)

    @flow
    def parity() -> list[int]:
        return [compute(2), compute(4), compute(3), combined(6)]

    # 4 is even like 2: the cached result for 2 is returned; combined keys differ from plain ones
    assert parity() == [200, 200, 300, 600]
    assert calls == [2, 3]
    assert combined_calls == [6]
    assert seen[0] == ("compute", {"x": 2, "verbose": False})


def test_a_cache_key_fn_returning_none_does_not_cache(api: Api, storage: str) -> None:
    compute, calls = counting_task(storage, cache_key_fn=lambda context, parameters: None)

    @flow
    def uncached() -> None:
        compute(1)
        compute(1)

    uncached()
    assert calls == [1, 1]


def test_cache_expiration(api: Api, storage: str) -> None:
    compute, calls = counting_task(storage, cache_policy=INPUTS, cache_expiration=timedelta(seconds=3))

    @flow
    def expiring() -> None:
        compute(5)
        compute(5)
        time.sleep(3.1)
        compute(5)

    state = expiring(return_state=True)
    assert calls == [5, 5]
    runs = sorted(api.task_runs(run_id(state)), key=lambda run: int(run.dynamic_key))
    assert [run.state.name for run in runs] == ["Completed", "Cached", "Completed"]
    assert runs[1].state.state_details.cache_expiration is not None


def test_refresh_cache_recomputes_and_replaces(api: Api, storage: str) -> None:
    results = iter([1, 2])
    calls: list[int] = []

    @task(cache_policy=INPUTS, result_storage=storage)
    def changing(x: int) -> int:
        calls.append(x)
        return next(results)

    @flow
    def refreshing() -> list[int]:
        first = changing(0)
        refreshed = changing.with_options(refresh_cache=True)(0)
        return [first, refreshed, changing(0)]

    assert refreshing() == [1, 2, 2]
    assert calls == [0, 0]


def test_no_cache_and_a_policy_without_persistence_is_refused(storage: str) -> None:
    compute, _ = counting_task(storage, cache_policy=NO_CACHE)
    assert not compute.caches
    with pytest.raises(ValueError, match="persist_result=False"):
        counting_task(storage, cache_policy=INPUTS, persist_result=False)


def test_policies_combine_with_plus(storage: str) -> None:
    combined = INPUTS + TASK_SOURCE + FLOW_PARAMETERS
    assert [type(part).__name__ for part in combined.policies] == ["Inputs", "TaskSource", "FlowParameters"]  # type: ignore[attr-defined]
    assert (combined - "verbose").policies[0] == Inputs(exclude=("verbose",))  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="does not include INPUTS"):
        _ = (TASK_SOURCE + RUN_ID) - "x"
