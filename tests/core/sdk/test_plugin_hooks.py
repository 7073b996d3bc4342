"""Plugins observe flow-run and task-run state changes through the event hooks, in the running process."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from headrace import flow, task
from headrace.plugins import get_plugin_manager, hookimpl

from .conftest import Api


class Observer:
    def __init__(self) -> None:
        self.flow_runs: list[tuple[str, str | None, str]] = []
        self.task_runs: list[tuple[str, str | None, str]] = []

    @hookimpl
    def headrace_on_flow_run_state_change(self, flow_run: Any, old_state: Any, new_state: Any) -> None:
        self.flow_runs.append((flow_run.name, old_state.name if old_state else None, new_state.name))

    @hookimpl
    def headrace_on_task_run_state_change(self, task_run: Any, old_state: Any, new_state: Any) -> None:
        self.task_runs.append((task_run.name, old_state.name if old_state else None, new_state.name))
        if new_state.name == "Completed":
            raise RuntimeError("an observer's failure never breaks the run")


@pytest.fixture
def observer() -> Iterator[Observer]:
    manager = get_plugin_manager()
    watching = Observer()
    manager.register(watching, name="test-observer")
    try:
        yield watching
    finally:
        manager.unregister(name="test-observer")


def test_plugins_see_every_state_change(api: Api, observer: Observer) -> None:
    @task
    def step() -> int:
        return 1

    @flow(flow_run_name="observed")
    def observed() -> int:
        return step() + step.submit().result()

    assert observed() == 2
    assert observer.flow_runs == [("observed", None, "Running"), ("observed", "Running", "Completed")]
    assert len(observer.task_runs) == 5
    assert set(observer.task_runs) == {
        ("step-0", None, "Running"),
        ("step-0", "Running", "Completed"),
        ("step-1", None, "Pending"),
        ("step-1", "Pending", "Running"),
        ("step-1", "Running", "Completed"),
    }
