"""The plugin contract: every hook headrace calls, as methods of :class:`HeadraceSpecs`.

Two kinds of hook, deliberately:

* **Provider hooks** (``headrace_block_types`` … ``headrace_task_runners``) return registration
  objects from :mod:`headrace.plugins.types`. The core collects them from every plugin and selects
  one by name from configuration. They must be cheap: return lazy references, import nothing heavy.
* **Event hooks** (``headrace_on_*``) are called on every implementation to observe something that
  happened. They cannot veto it, and an exception in one is reported and never breaks the run.

Every hook is synchronous. pluggy does not await coroutines, so an ``async def`` implementation would
silently do nothing; the plugin manager refuses one with an error instead.

Each docstring ends with an example that runs as written (the test suite executes all of them).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pluggy

from headrace.plugins.types import (
    BlockType,
    Infrastructure,
    Notifier,
    Registration,
    StorageBackend,
    TaskRunner,
    TelemetryExporter,
)

if TYPE_CHECKING:
    import typer

PROJECT_NAME = "headrace"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class HeadraceSpecs:
    """The hook specifications. Implement any subset of them, as functions or methods."""

    # -- provider hooks ------------------------------------------------------------------------

    @hookspec
    def headrace_block_types(self) -> Iterable[BlockType]:
        """Contribute block types: typed configuration documents that flows load by name.

        Return one :class:`~headrace.plugins.types.BlockType` per block class. ``name`` is the block
        type's slug; ``implementation`` is a lazy reference to the ``Block`` subclass.

        Example::

            from headrace.plugins import hookimpl
            from headrace.plugins.types import BlockType
            from headrace.testing.plugins import plugin_manager_with

            class FtpPlugin:
                @hookimpl
                def headrace_block_types(self):
                    return [BlockType(name="ftp-server", implementation="my_ftp.blocks:FtpServer",
                                      description="Host, port and login of an FTP server.")]

            manager = plugin_manager_with(FtpPlugin())
            assert manager.select("headrace_block_types", "ftp-server").description.startswith("Host")
        """
        raise NotImplementedError

    @hookspec
    def headrace_storage_backends(self) -> Iterable[StorageBackend]:
        """Contribute result-storage backends, chosen by the protocol of a ``result_storage`` URL.

        ``implementation`` is a lazy reference to a factory ``(**options) -> fsspec.AbstractFileSystem``;
        ``protocols`` lists the URL schemes it serves; ``credentials_block`` names the block type
        that carries its credentials, if it has one.

        Example::

            from headrace.plugins import hookimpl
            from headrace.plugins.types import StorageBackend
            from headrace.testing.plugins import plugin_manager_with

            class ZipPlugin:
                @hookimpl
                def headrace_storage_backends(self):
                    yield StorageBackend(name="zip", protocols=("zip",),
                                         implementation="fsspec.implementations.zip:ZipFileSystem")

            manager = plugin_manager_with(ZipPlugin())
            assert manager.select("headrace_storage_backends", "zip").protocols == ("zip",)
        """
        raise NotImplementedError

    @hookspec
    def headrace_infrastructure(self) -> Iterable[Infrastructure]:
        """Contribute infrastructure that workers launch flow runs on (processes, containers, …).

        ``implementation`` is a lazy reference to a class holding the job-configuration model (whose
        defaults are the base job template) and the ``run`` and ``kill`` operations.

        Example::

            from headrace.plugins import hookimpl
            from headrace.plugins.types import Infrastructure
            from headrace.testing.plugins import plugin_manager_with

            class NomadPlugin:
                @hookimpl
                def headrace_infrastructure(self):
                    return [Infrastructure(name="nomad", implementation="my_nomad.jobs:NomadJob",
                                           description="Runs each flow run as a Nomad batch job.")]

            manager = plugin_manager_with(NomadPlugin())
            assert [r.name for r in manager.registrations("headrace_infrastructure")] == ["nomad"]
        """
        raise NotImplementedError

    @hookspec
    def headrace_notifiers(self) -> Iterable[Notifier]:
        """Contribute notification channels.

        ``implementation`` is a lazy reference to a notification block type with
        ``notify(subject, body)``.

        Example::

            from headrace.plugins import hookimpl
            from headrace.plugins.types import Notifier
            from headrace.testing.plugins import plugin_manager_with

            class PagerPlugin:
                @hookimpl
                def headrace_notifiers(self):
                    return [Notifier(name="pager", implementation="my_pager.blocks:PagerNotification")]

            manager = plugin_manager_with(PagerPlugin())
            assert manager.select("headrace_notifiers", "pager").implementation.endswith("PagerNotification")
        """
        raise NotImplementedError

    @hookspec
    def headrace_telemetry_exporters(self) -> Iterable[TelemetryExporter]:
        """Contribute telemetry exporters (traces, metrics, logs to some backend).

        ``implementation`` is a lazy reference to a class with ``setup(settings)`` and ``shutdown()``.

        Example::

            from headrace.plugins import hookimpl
            from headrace.plugins.types import TelemetryExporter
            from headrace.testing.plugins import plugin_manager_with

            class StatsdPlugin:
                @hookimpl
                def headrace_telemetry_exporters(self):
                    return [TelemetryExporter(name="statsd", implementation="my_statsd:StatsdExporter")]

            manager = plugin_manager_with(StatsdPlugin())
            assert manager.select("headrace_telemetry_exporters", "statsd").name == "statsd"
        """
        raise NotImplementedError

    @hookspec
    def headrace_task_runners(self) -> Iterable[TaskRunner]:
        """Contribute task runners: how ``task.submit()`` and ``task.map()`` execute work.

        ``implementation`` is a lazy reference to a ``TaskRunner`` subclass.

        Example::

            from headrace.plugins import hookimpl
            from headrace.plugins.types import TaskRunner
            from headrace.testing.plugins import plugin_manager_with

            class RayPlugin:
                @hookimpl
                def headrace_task_runners(self):
                    return [TaskRunner(name="ray", implementation="my_ray.runner:RayTaskRunner")]

            manager = plugin_manager_with(RayPlugin())
            assert manager.select("headrace_task_runners", "ray").load  # resolved only when called
        """
        raise NotImplementedError

    @hookspec
    def headrace_cli(self, app: typer.Typer) -> None:
        """Add commands to the ``headrace`` command line. ``app`` is the root ``typer.Typer``.

        Import heavy modules inside the command functions, not at the top of the plugin module:
        every plugin's module is imported whenever ``headrace`` runs.

        Example::

            import typer
            from typer.testing import CliRunner
            from headrace.plugins import hookimpl
            from headrace.testing.plugins import plugin_manager_with

            class HelloPlugin:
                @hookimpl
                def headrace_cli(self, app):
                    @app.command("hello")
                    def hello(name: str = "world") -> None:
                        print(f"hello {name}")

            app = typer.Typer()
            app.command("version")(lambda: None)
            plugin_manager_with(HelloPlugin()).fire("headrace_cli", app=app)
            assert CliRunner().invoke(app, ["hello", "--name", "ops"]).output == "hello ops\\n"
        """
        raise NotImplementedError

    # -- event hooks -------------------------------------------------------------------------------

    @hookspec
    def headrace_on_flow_run_state_change(self, flow_run: Any, old_state: Any, new_state: Any) -> None:
        """Observe a flow run entering a new state (``old_state`` is ``None`` for its first state).

        Called in the process that orchestrated the transition, after the new state was accepted.
        Do the work directly and quickly; an exception is reported and never breaks the run.

        Example::

            from headrace.plugins import hookimpl
            from headrace.testing.plugins import plugin_manager_with

            seen = []

            class Audit:
                @hookimpl
                def headrace_on_flow_run_state_change(self, flow_run, old_state, new_state):
                    seen.append((flow_run, old_state, new_state))

            plugin_manager_with(Audit()).fire(
                "headrace_on_flow_run_state_change", flow_run="nightly", old_state=None, new_state="Running"
            )
            assert seen == [("nightly", None, "Running")]
        """
        raise NotImplementedError

    @hookspec
    def headrace_on_task_run_state_change(self, task_run: Any, old_state: Any, new_state: Any) -> None:
        """Observe a task run entering a new state, in the process that runs the task.

        Example::

            from headrace.plugins import hookimpl
            from headrace.testing.plugins import plugin_manager_with

            failures = []

            class FailureCounter:
                @hookimpl
                def headrace_on_task_run_state_change(self, task_run, old_state, new_state):
                    if new_state == "Failed":
                        failures.append(task_run)

            manager = plugin_manager_with(FailureCounter())
            manager.fire("headrace_on_task_run_state_change", task_run="load", old_state="Running",
                         new_state="Failed")
            assert failures == ["load"]
        """
        raise NotImplementedError

    @hookspec
    def headrace_on_event(self, event: Any) -> None:
        """Observe an event (a resource-oriented record of something that happened).

        Example::

            from headrace.plugins import hookimpl
            from headrace.testing.plugins import plugin_manager_with

            names = []

            class EventTap:
                @hookimpl
                def headrace_on_event(self, event):
                    names.append(event["event"])

            plugin_manager_with(EventTap()).fire("headrace_on_event", event={"event": "flow-run.completed"})
            assert names == ["flow-run.completed"]
        """
        raise NotImplementedError


PROVIDER_HOOKS: dict[str, type[Registration]] = {
    "headrace_block_types": BlockType,
    "headrace_storage_backends": StorageBackend,
    "headrace_infrastructure": Infrastructure,
    "headrace_notifiers": Notifier,
    "headrace_telemetry_exporters": TelemetryExporter,
    "headrace_task_runners": TaskRunner,
}
"""Each provider hook and the registration type its implementations must return."""

EVENT_HOOKS: tuple[str, ...] = (
    "headrace_cli",
    "headrace_on_flow_run_state_change",
    "headrace_on_task_run_state_change",
    "headrace_on_event",
)
"""Hooks called on every implementation for their effect; ``headrace_cli`` is called the same way."""
