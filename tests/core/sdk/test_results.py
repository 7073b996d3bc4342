"""Persisted results: what ``persist_result`` writes, where, how, and what the state carries — both modes."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from headrace import flow, task
from headrace.exceptions import MissingResult
from headrace.results import ResultReference, ResultStore, resolve_storage
from headrace.states import State, to_sdk_state

from .conftest import Api


def run_id(state: State) -> UUID:
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    return flow_run_id


def test_a_persisted_task_result_is_a_reference_in_the_state(api: Api, tmp_path: Path) -> None:
    storage = (tmp_path / "results").as_uri()

    @task(persist_result=True, result_storage=storage, result_serializer="json")
    def produce() -> dict[str, Any]:
        return {"rows": [1, 2, 3]}

    @flow
    def producing() -> None:
        produce()

    state = producing(return_state=True)
    (run,) = api.task_runs(run_id(state))
    reference = ResultReference.from_data(run.state.data)
    assert reference is not None
    assert reference.storage == storage
    assert reference.serializer == "json"
    assert (tmp_path / "results" / reference.key).is_file()
    assert reference.load() == {"rows": [1, 2, 3]}
    # a state read back from the API gives the result through its reference
    assert to_sdk_state(run.state).result() == {"rows": [1, 2, 3]}


def test_an_unpersisted_result_is_only_in_memory(api: Api) -> None:
    @task
    def ephemeral() -> int:
        return 1

    @flow
    def runs_it() -> None:
        ephemeral()

    state = runs_it(return_state=True)
    (run,) = api.task_runs(run_id(state))
    assert run.state.data is None
    with pytest.raises(MissingResult, match="persist_result=True"):
        to_sdk_state(run.state).result()


@pytest.mark.parametrize("serializer", ["pickle", "json", "compressed/pickle", "compressed/json"])
def test_every_serializer_round_trips_through_a_flow(api: Api, tmp_path: Path, serializer: str) -> None:
    @flow(persist_result=True, result_storage=(tmp_path / "r").as_uri(), result_serializer=serializer)
    def values() -> dict[str, Any]:
        return {"text": "é", "numbers": [1, 2.5], "nested": {"ok": True}}

    state = values(return_state=True)
    recorded = api.flow_run(run_id(state)).state
    reference = ResultReference.from_data(recorded.data)
    assert reference is not None
    assert reference.serializer == serializer
    assert to_sdk_state(recorded).result() == {"text": "é", "numbers": [1, 2.5], "nested": {"ok": True}}


def test_a_flow_passes_its_result_settings_to_its_tasks(api: Api, tmp_path: Path) -> None:
    @task
    def inherits() -> list[int]:
        return [1]

    @task(persist_result=False)
    def opts_out() -> int:
        return 2

    @flow(persist_result=True, result_storage=f"memory://{tmp_path.name}/inherited")
    def parent() -> None:
        inherits()
        opts_out()

    state = parent(return_state=True)
    runs = {run.name: run for run in api.task_runs(run_id(state))}
    reference = ResultReference.from_data(runs["inherits-0"].state.data)
    assert reference is not None
    assert reference.storage.startswith("memory://")
    assert reference.load() == [1]
    assert runs["opts_out-0"].state.data is None


def test_results_go_under_headrace_home_by_default(api: Api) -> None:
    from headrace.engine.api import current_settings

    @task(persist_result=True)
    def default_place() -> str:
        return "here"

    @flow
    def runs_it() -> None:
        default_place()

    state = runs_it(return_state=True)
    (run,) = api.task_runs(run_id(state))
    reference = ResultReference.from_data(run.state.data)
    assert reference is not None
    storage_root = (Path(current_settings().home).resolve() / "storage").as_uri()
    assert reference.storage == storage_root
    assert reference.serializer == "pickle"


def test_result_storage_key_template(api: Api, tmp_path: Path) -> None:
    @task(persist_result=True, result_storage=tmp_path.as_uri(), result_storage_key="reports/{day}.bin")
    def report(day: str) -> str:
        return f"report for {day}"

    @flow
    def reporting() -> None:
        report("monday")

    reporting()
    assert ResultStore(resolve_storage(tmp_path.as_uri())).read("reports/monday.bin").value == "report for monday"


def test_an_unknown_storage_protocol_fails_the_task_with_a_clear_message(api: Api) -> None:
    @task(persist_result=True, result_storage="nosuch://bucket/path")
    def nowhere() -> int:
        return 1

    @flow
    def runs_it() -> None:
        nowhere()

    message = r"no result-storage backend serves 'nosuch' URLs; installed protocols: .*file"
    with pytest.raises(ValueError, match=message):
        runs_it()


def test_a_result_the_serializer_cannot_handle_fails_the_task(api: Api, tmp_path: Path) -> None:
    @task(persist_result=True, result_storage=tmp_path.as_uri(), result_serializer="json")
    def not_json() -> object:
        return object()

    @flow
    def runs_it() -> None:
        not_json()

    with pytest.raises(TypeError, match="use result_serializer='pickle'"):
        runs_it()
