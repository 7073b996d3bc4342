"""Flows, run for real against the embedded default and a live server (see conftest.py)."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import pytest
from pydantic import BaseModel

from headrace import flow, get_run_logger, runtime, task
from headrace.exceptions import FailedRun, MissingContextError, ParameterValidationError
from headrace.retries import exponential_backoff
from headrace.states import Completed, Failed, State

from .conftest import Api


def run_id(state: State) -> UUID:
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    return flow_run_id


# -- calling a flow --------------------------------------------------------------------------------


def test_a_flow_returns_its_value_and_is_recorded_completed(api: Api) -> None:
    @flow
    def add(x: int, y: int = 2) -> int:
        return x + y

    assert add(1) == 3
    state = add(40, y=2, return_state=True)
    assert state.is_completed()
    assert state.result() == 42
    recorded = api.flow_run(run_id(state))
    assert recorded.state.type.value == "COMPLETED"
    assert recorded.parameters == {"x": 40, "y": 2}
    assert recorded.run_count == 1
    assert [s.type.value for s in api.flow_run_states(run_id(state))] == ["RUNNING", "COMPLETED"]


def test_decorator_with_and_without_arguments_sets_names_tags_description_version(api: Api) -> None:
    @flow
    def plain_flow() -> None:
        """Does nothing."""

    @flow(name="named", description="described", version="1.2", tags=["etl", "nightly"])
    def decorated() -> None:
        pass

    assert plain_flow.name == "plain-flow"
    assert plain_flow.description == "Does nothing."
    assert (decorated.name, decorated.description, decorated.version) == ("named", "described", "1.2")
    recorded = api.flow_run(run_id(decorated(return_state=True)))
    assert recorded.tags == ["etl", "nightly"]
    assert recorded.state.type.value == "COMPLETED"


def test_flow_run_name_template_and_callable(api: Api) -> None:
    @flow(flow_run_name="load-{day}")
    def load(day: str) -> None:
        pass

    def name_from_runtime() -> str:
        return f"run-for-{runtime.flow_run.parameters['day']}"

    assert api.flow_run(run_id(load("monday", return_state=True))).name == "load-monday"
    dynamic = load.with_options(flow_run_name=name_from_runtime)
    assert api.flow_run(run_id(dynamic("tuesday", return_state=True))).name == "run-for-tuesday"


def test_default_run_names_are_generated(api: Api) -> None:
    @flow
    def anonymous() -> None:
        pass

    name = api.flow_run(run_id(anonymous(return_state=True))).name
    assert "-" in name
    assert name.replace("-", "").isalpha()


# -- parameters ------------------------------------------------------------------------------------


class Point(BaseModel):
    x: int
    y: int


def test_parameters_are_coerced_from_type_hints(api: Api) -> None:
    @flow
    def typed(count: int, point: Point, ratio: float = 0.5) -> tuple[int, Point, float]:
        return count, point, ratio

    count, point, ratio = typed("3", {"x": "1", "y": 2}, ratio="0.25")
    assert (count, point, ratio) == (3, Point(x=1, y=2), 0.25)


def test_bad_parameters_raise_a_clear_error_and_are_recorded_as_a_failed_run(api: Api) -> None:
    from headrace.schemas.runs import FlowRunFilter

    @flow(name="strict-parameters")
    def strict(count: int, point: Point) -> None:
        pass

    with pytest.raises(ParameterValidationError) as caught:
        strict("many", {"x": 1})
    message = str(caught.value)
    assert "strict-parameters" in message
    assert "count" in message
    assert "'many'" in message
    assert "point.y" in message
    runs = api.client.read_flow_runs(FlowRunFilter(flow_names=["strict-parameters"], limit=200)).items
    assert runs
    assert runs[0].state.type.value == "FAILED"
    assert "Validation of flow parameters failed" in runs[0].state.message


def test_a_call_that_does_not_fit_the_signature_is_a_parameter_error(api: Api) -> None:
    @flow
    def one(a: int) -> int:
        return a

    with pytest.raises(ParameterValidationError, match="unexpected keyword argument 'b'"):
        one(1, b=2)


def test_validation_can_be_turned_off(api: Api) -> None:
    @flow(validate_parameters=False)
    def loose(count: int) -> Any:
        return count

    assert loose("3") == "3"


# -- final states ----------------------------------------------------------------------------------


def test_an_exception_fails_the_flow_and_is_raised_to_the_caller(api: Api) -> None:
    @flow
    def broken() -> None:
        raise ValueError("no input")

    with pytest.raises(ValueError, match="no input"):
        broken()
    state = broken(return_state=True)
    assert state.is_failed()
    assert "ValueError: no input" in (state.message or "")
    recorded = api.flow_run(run_id(state))
    assert recorded.state.type.value == "FAILED"


def test_returning_a_failed_state_fails_the_flow(api: Api) -> None:
    @flow
    def gives_up() -> State:
        return Failed(message="nothing to do")

    state = gives_up(return_state=True)
    assert state.is_failed()
    assert api.flow_run(run_id(state)).state.message == "nothing to do"
    with pytest.raises(FailedRun, match="nothing to do"):
        gives_up()


def test_returning_a_completed_state_completes_with_its_data(api: Api) -> None:
    @flow
    def explicit() -> State:
        return Completed(message="all good").with_value(7)

    state = explicit(return_state=True)
    assert state.is_completed()
    assert state.result() == 7


@task
def explode(x: int) -> int:
    raise RuntimeError(f"task failed for {x}")


@task
def identity(x: Any) -> Any:
    return x


def test_a_task_failure_the_flow_catches_does_not_fail_it(api: Api) -> None:
    @flow
    def careful() -> str:
        try:
            explode(1)
        except RuntimeError:
            return "recovered"
        return "unreachable"

    state = careful(return_state=True)
    assert state.is_completed()
    assert state.result() == "recovered"
    task_runs = api.task_runs(run_id(state))
    assert [run.state.type.value for run in task_runs] == ["FAILED"]


def test_an_unhandled_task_failure_fails_the_flow(api: Api) -> None:
    @flow
    def careless() -> None:
        explode(2)

    with pytest.raises(RuntimeError, match="task failed for 2"):
        careless()


def test_returned_futures_decide_the_final_state(api: Api) -> None:
    @flow
    def returns_futures() -> list[Any]:
        return [identity.submit(1), explode.submit(3)]

    @flow
    def returns_good_futures() -> dict[str, Any]:
        return {"a": identity.submit(1), "b": [identity.submit(2)]}

    state = returns_futures(return_state=True)
    assert state.is_failed()
    assert state.message == "1/2 states failed."
    assert isinstance(state.result(raise_on_failure=False), RuntimeError)
    assert returns_good_futures() == {"a": 1, "b": [2]}


def test_a_submitted_failure_nobody_looked_at_fails_the_flow(api: Api) -> None:
    @flow
    def fire_and_forget() -> str:
        explode.submit(4)
        identity.submit(5)
        return "done"

    state = fire_and_forget(return_state=True)
    assert state.is_failed()
    assert "1 submitted task run(s) failed and their futures were never resolved" in (state.message or "")
    runs = api.task_runs(run_id(state))
    assert sorted(run.state.type.value for run in runs) == ["COMPLETED", "FAILED"]


def test_a_submitted_failure_the_flow_looked_at_does_not_fail_it(api: Api) -> None:
    @flow
    def checks() -> str:
        future = explode.submit(5)
        future.wait()
        return "failed as expected" if future.state.is_failed() else "?"

    @flow
    def catches() -> str:
        future = explode.submit(6)
        try:
            future.result()
        except RuntimeError:
            return "caught"
        return "?"

    assert checks() == "failed as expected"
    assert catches() == "caught"


def test_the_flow_run_waits_for_every_submitted_task_run(api: Api) -> None:
    import time

    @task
    def slow(x: int) -> int:
        time.sleep(0.2)
        return x

    @flow
    def does_not_wait() -> None:
        for i in range(3):
            slow.submit(i)

    state = does_not_wait(return_state=True)
    assert state.is_completed()
    assert sorted(run.state.type.value for run in api.task_runs(run_id(state))) == ["COMPLETED"] * 3


def test_timeout_ends_the_flow_timed_out(api: Api) -> None:
    import time

    @flow(timeout_seconds=0.3)
    def sleepy() -> None:
        for _ in range(200):
            time.sleep(0.01)

    state = sleepy(return_state=True)
    assert state.is_failed()
    assert state.name == "TimedOut"
    assert "exceeded its timeout of 0.3 s" in (state.message or "")
    assert api.flow_run(run_id(state)).state.name == "TimedOut"


# -- flow retries: the server's rule -----------------------------------------------------------------


def test_flow_retries_are_applied_by_the_server(api: Api) -> None:
    calls: list[int] = []

    @flow(retries=2, retry_delay_seconds=0)
    def flaky_flow() -> str:
        calls.append(runtime.flow_run.attempt or 0)
        if len(calls) < 3:
            raise ConnectionError("try again")
        return "third time lucky"

    state = flaky_flow(return_state=True)
    assert state.is_completed()
    assert state.result() == "third time lucky"
    assert calls == [1, 2, 3]
    names = [s.name for s in api.flow_run_states(run_id(state))]
    assert names.count("AwaitingRetry") == 2
    assert names[-1] == "Completed"
    assert api.flow_run(run_id(state)).run_count == 3


@pytest.mark.parametrize(
    ("delays", "expected"), [([0.0, 0.4], [0.0, 0.4]), (exponential_backoff(backoff_factor=0.2), [0.2, 0.4])]
)
def test_flow_retry_delays_may_differ_per_retry(api: Api, delays: Any, expected: list[float]) -> None:
    calls: list[int] = []

    @flow(retries=2, retry_delay_seconds=delays)
    def flaky_flow() -> int:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("try again")
        return len(calls)

    state = flaky_flow(return_state=True)
    assert state.result() == 3
    assert api.flow_run(run_id(state)).retry_delay_seconds == expected
    waits = [
        (s.state_details.scheduled_time - s.timestamp).total_seconds()
        for s in api.flow_run_states(run_id(state))
        if s.name == "AwaitingRetry" and s.state_details.scheduled_time is not None
    ]
    assert waits == pytest.approx(expected, abs=0.01)


def test_flow_retries_run_out(api: Api) -> None:
    @flow(retries=1)
    def always_fails() -> None:
        raise ConnectionError("down")

    state = always_fails(return_state=True)
    assert state.is_failed()
    names = [s.name for s in api.flow_run_states(run_id(state))]
    assert names.count("AwaitingRetry") == 1
    assert names[-1] == "Failed"


# -- subflows --------------------------------------------------------------------------------------


def test_a_subflow_is_its_own_run_linked_to_a_task_run_of_the_parent(api: Api) -> None:
    @flow
    def child(x: int) -> int:
        return x * 10

    @flow
    def parent() -> int:
        return child(1) + child(2)

    state = parent(return_state=True)
    assert state.result() == 30
    task_runs = api.task_runs(run_id(state))
    assert len(task_runs) == 2
    assert {run.task_key for run in task_runs} == {"subflow:child"}
    assert all(run.state.type.value == "COMPLETED" for run in task_runs)
    children = [child_run for run in task_runs for child_run in api.child_flow_runs(run.id)]
    assert sorted(child_run.parameters["x"] for child_run in children) == [1, 2]
    assert all(child_run.state.type.value == "COMPLETED" for child_run in children)


def test_a_failing_subflow_raises_in_the_parent(api: Api) -> None:
    @flow
    def bad_child() -> None:
        raise KeyError("missing")

    @flow
    def tolerant_parent() -> str:
        try:
            bad_child()
        except KeyError:
            return "handled"
        return "?"

    state = tolerant_parent(return_state=True)
    assert state.result() == "handled"
    (link,) = api.task_runs(run_id(state))
    assert link.state.type.value == "FAILED"


# -- async -----------------------------------------------------------------------------------------


def test_an_async_flow_returns_a_coroutine(api: Api) -> None:
    @task
    async def double(x: int) -> int:
        await asyncio.sleep(0.01)
        return 2 * x

    @flow
    async def async_flow(x: int) -> int:
        return await double(x) + await double(1)

    assert asyncio.run(async_flow(5)) == 12
    state = asyncio.run(async_flow(1, return_state=True))
    assert state.is_completed()
    assert api.flow_run(run_id(state)).state.type.value == "COMPLETED"
    assert len(api.task_runs(run_id(state))) == 2


def test_an_async_subflow_runs_to_completion_inside_a_sync_flow(api: Api) -> None:
    @flow
    async def async_child() -> str:
        await asyncio.sleep(0.01)
        return "from async"

    @flow
    def sync_parent() -> Any:
        return async_child()

    assert sync_parent() == "from async"


def test_cancelling_an_async_flow_records_cancelled_and_runs_the_hook(api: Api) -> None:
    seen: list[str] = []

    @flow(on_cancellation=[lambda flow, flow_run, state: seen.append(state.name)])
    async def forever() -> None:
        seen.append(str(runtime.flow_run.id))
        await asyncio.sleep(60)

    async def scenario() -> None:
        running = asyncio.ensure_future(forever())
        for _ in range(6000):  # until the flow is running (at most a minute)
            if seen:
                break
            await asyncio.sleep(0.01)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running

    asyncio.run(scenario())
    assert seen[1:] == ["Cancelled"]
    assert api.flow_run(UUID(seen[0])).state.type.value == "CANCELLED"


# -- hooks, logs, runtime --------------------------------------------------------------------------


def test_state_hooks_receive_flow_flow_run_and_state(api: Api) -> None:
    seen: list[tuple[str, str, str]] = []

    def remember(flow_: Any, flow_run: Any, state: State) -> None:
        seen.append((flow_.name, flow_run.name, state.name))

    def broken_hook(flow_: Any, flow_run: Any, state: State) -> None:
        raise RuntimeError("a hook's failure never changes the run")

    @flow(flow_run_name="hooked", on_completion=[broken_hook, remember], on_failure=[remember])
    def hooked(fail: bool) -> None:
        if fail:
            raise ValueError("fail")

    assert hooked(False) is None
    with pytest.raises(ValueError, match="fail"):
        hooked(True)
    assert seen == [("hooked", "hooked", "Completed"), ("hooked", "hooked", "Failed")]


def test_on_crashed_runs_when_the_flow_is_interrupted(api: Api) -> None:
    seen: list[str] = []

    @flow(on_crashed=[lambda flow, flow_run, state: seen.append(state.name)])
    def interrupted() -> None:
        seen.append(str(runtime.flow_run.id))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert seen[1:] == ["Crashed"]
    assert api.flow_run(UUID(seen[0])).state.type.value == "CRASHED"


def test_run_logger_lines_reach_the_api_with_the_run_ids(api: Api) -> None:
    @task
    def chatty() -> None:
        get_run_logger().info("hello from the task")

    @flow(log_prints=True)
    def talkative() -> None:
        get_run_logger().warning("hello from the flow")
        print("printed", 42)
        chatty()

    state = talkative(return_state=True)
    logs = api.logs(run_id(state))
    messages = {log.message: log for log in logs}
    assert messages["hello from the flow"].level == 30
    assert messages["hello from the flow"].task_run_id is None
    assert messages["printed 42"].level == 20
    assert messages["hello from the task"].task_run_id is not None
    assert messages["hello from the task"].name == "headrace.task_runs"


def test_get_run_logger_outside_a_run_is_an_error() -> None:
    with pytest.raises(MissingContextError, match="outside a flow or task run"):
        get_run_logger()


def test_runtime_describes_the_current_runs(api: Api) -> None:
    seen: dict[str, Any] = {}

    @task(task_run_name="inspect-{x}")
    def inspect_task(x: int) -> None:
        seen["task"] = (runtime.task_run.name, runtime.task_run.parameters, runtime.task_run.attempt)
        seen["flow_from_task"] = runtime.flow_run.name

    @flow(flow_run_name="inspected")
    def inspected(y: int) -> None:
        seen["flow"] = (runtime.flow_run.name, runtime.flow_run.parameters, runtime.flow_run.attempt)
        seen["task_outside"] = runtime.task_run.id
        inspect_task(7)

    state = inspected(3, return_state=True)
    assert seen["flow"] == ("inspected", {"y": 3}, 1)
    assert seen["task_outside"] is None
    assert seen["task"] == ("inspect-7", {"x": 7}, 1)
    assert seen["flow_from_task"] == "inspected"
    assert runtime.flow_run.id is None
    assert api.flow_run(run_id(state)).state.type.value == "COMPLETED"
