"""Reporting state changes: task-run records to the spool, and both kinds to the plugins' event hooks.

A task-run state change costs one :class:`~headrace.schemas.runs.TaskRunRecord` handed to
:func:`headrace.records.report_task_run_state` — an append to the on-disk spool and a queue put; the shipper
sends records to the API in batches, in the background. Nothing here waits on the network.

Plugins observing state changes (``headrace_on_task_run_state_change``, ``headrace_on_flow_run_state_change``)
are called directly, in the process where the change happened; an exception in one is reported by the
plugin manager and never breaks the run. When no plugin implements a hook, firing it costs a lookup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headrace.plugins import manager as _plugin_manager
from headrace.schemas.runs import TaskRunRecord
from headrace.states import assemble

if TYPE_CHECKING:
    from headrace.context import FlowRunInfo, TaskRunInfo
    from headrace.states import State

__all__ = ["report_flow_run_state", "report_task_run_state"]

_report: Any = None
# Records are assembled without pydantic's per-field work while the model has exactly these fields.
_ASSEMBLE = set(TaskRunRecord.model_fields) == {
    "task_run_id", "flow_run_id", "task_key", "name", "dynamic_key", "cache_key", "tags", "state"
}  # fmt: skip


def _reporter() -> Any:
    global _report  # noqa: PLW0603 - resolved once
    if _report is None:
        from headrace.records import report_task_run_state as report

        _report = report
    return _report


def report_task_run_state(task_run: TaskRunInfo, state: State) -> None:
    """Record that ``task_run`` entered ``state``: spool it for the API, tell the plugins, remember it."""
    details = state.state_details
    if details.task_run_id is None:  # plain attributes of a plain model: skip pydantic's __setattr__
        details.__dict__["task_run_id"] = task_run.id
        details.__dict__["flow_run_id"] = task_run.flow_run_id
    values: dict[str, Any] = {
        "task_run_id": task_run.id,
        "flow_run_id": task_run.flow_run_id,
        "task_key": task_run.task_key,
        "name": task_run.name,
        "dynamic_key": task_run.dynamic_key,
        "cache_key": task_run.cache_key,
        "tags": task_run.tags,
        "state": state,
    }
    record = assemble(TaskRunRecord, values) if _ASSEMBLE else TaskRunRecord.model_construct(**values)
    (_report or _reporter())(record)
    old_state, task_run.state = task_run.state, state
    _fire("headrace_on_task_run_state_change", task_run=task_run, old_state=old_state, new_state=state)


def report_flow_run_state(flow_run: FlowRunInfo, state: State) -> None:
    """Remember that ``flow_run`` entered ``state`` (already accepted by the server) and tell the plugins."""
    old_state, flow_run.state = flow_run.state, state
    _fire("headrace_on_flow_run_state_change", flow_run=flow_run, old_state=old_state, new_state=state)


def _fire(hook_name: str, **kwargs: Any) -> None:
    manager = _plugin_manager._manager or _plugin_manager.get_plugin_manager()
    if getattr(manager.hook, hook_name).get_hookimpls():
        manager.fire(hook_name, **kwargs)
