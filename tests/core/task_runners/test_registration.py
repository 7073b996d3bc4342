"""The built-in runners are registered through the ``headrace_task_runners`` hook and chosen by name."""

from __future__ import annotations

import pytest

from headrace import flow, task
from headrace.plugins import UnknownPluginName, get_plugin_manager
from headrace.plugins.manager import build_plugin_manager
from headrace.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner, resolve_task_runner


def test_both_built_ins_are_registered_by_the_core_entry_point() -> None:
    from importlib.metadata import entry_points

    core = [point for point in entry_points(group="headrace") if point.dist and point.dist.name == "headrace"]
    manager = build_plugin_manager(points=core)
    names = {registration.name: registration for registration in manager.registrations("headrace_task_runners")}
    assert set(names) >= {"thread-pool", "process-pool"}
    assert names["thread-pool"].load() is ThreadPoolTaskRunner
    assert names["process-pool"].load() is ProcessPoolTaskRunner


def test_a_flow_takes_an_instance_a_class_or_a_registered_name() -> None:
    assert isinstance(resolve_task_runner(None), ThreadPoolTaskRunner)
    runner = ThreadPoolTaskRunner(max_workers=2)
    assert resolve_task_runner(runner) is runner
    assert isinstance(resolve_task_runner(ProcessPoolTaskRunner), ProcessPoolTaskRunner)
    assert isinstance(resolve_task_runner("process-pool"), ProcessPoolTaskRunner)
    with pytest.raises(UnknownPluginName, match=r"unknown task runner 'dusk'; choose one of: .*process-pool"):
        resolve_task_runner("dusk")
    with pytest.raises(TypeError, match="task_runner must be"):
        flow(task_runner=42)(lambda: None)  # type: ignore[call-overload]


def test_a_runner_chosen_by_name_runs_a_flow(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("HEADRACE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HEADRACE_HOME", str(tmp_path))

    @task
    def one() -> int:
        return 1

    @flow(task_runner="thread-pool")
    def named() -> int:
        return one.submit().result()

    assert get_plugin_manager().select("headrace_task_runners", "thread-pool").name == "thread-pool"
    assert named() == 1
