"""One test per hook in :class:`~headrace.plugins.hookspecs.HeadraceSpecs` (``test_<hook name>``).

Each registers a throwaway plugin, exercises the hook and checks the effect. Provider hooks also show
that the implementation behind a registration is imported only when it is loaded. ``test_meta.py``
checks that no hook is missing here.
"""

from __future__ import annotations

import inspect
import sys
import textwrap
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from headrace.plugins import hookimpl
from headrace.plugins.hookspecs import EVENT_HOOKS, PROVIDER_HOOKS, HeadraceSpecs
from headrace.plugins.types import (
    BlockType,
    Infrastructure,
    Notifier,
    StorageBackend,
    TaskRunner,
    TelemetryExporter,
)
from headrace.testing.plugins import plugin_manager_with

from .conftest import IMPORT_MARKER, PluginSite

ALL_HOOKS = [*PROVIDER_HOOKS, *EVENT_HOOKS]


@pytest.fixture
def implementation(plugin_site: PluginSite) -> Iterator[ImplementationModules]:
    modules = ImplementationModules(plugin_site.path)
    yield modules
    for name in modules.names:
        sys.modules.pop(name, None)


class ImplementationModules:
    """Writes the modules that registration objects refer to lazily, with an import marker."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.names: list[str] = []

    def write(self, name: str, source: str) -> str:
        (self.folder / f"{name}.py").write_text(IMPORT_MARKER + textwrap.dedent(source), encoding="utf-8")
        self.names.append(name)
        return name

    def imported(self, name: str) -> bool:
        return (self.folder / f"{name}.imported").exists()


def test_headrace_block_types(implementation: ImplementationModules) -> None:
    module = implementation.write(
        "hooks_ftp_blocks",
        """
        class FtpServer:
            def __init__(self, host: str) -> None:
                self.host = host
        """,
    )

    class FtpPlugin:
        @hookimpl
        def headrace_block_types(self) -> Iterable[BlockType]:
            return [
                BlockType(
                    name="ftp-server",
                    implementation=f"{module}:FtpServer",
                    description="Host and login of an FTP server.",
                    documentation_url="https://example.org/ftp",
                )
            ]

    manager = plugin_manager_with(FtpPlugin())
    block_type = manager.select("headrace_block_types", "ftp-server")
    assert isinstance(block_type, BlockType)
    assert block_type.documentation_url == "https://example.org/ftp"
    assert manager.collect_all()[0].provides == ["block type:ftp-server"]
    assert not implementation.imported(module)  # listing and selecting import nothing
    server = block_type.load()("ftp.example.org")
    assert server.host == "ftp.example.org"
    assert implementation.imported(module)


def test_headrace_storage_backends(tmp_path: Path) -> None:
    class MemoryPlugin:
        @hookimpl
        def headrace_storage_backends(self) -> Iterator[StorageBackend]:
            yield StorageBackend(
                name="scratch",
                implementation="fsspec.implementations.memory:MemoryFileSystem",
                credentials_block="scratch-credentials",
            )

    manager = plugin_manager_with(MemoryPlugin())
    backend = manager.select("headrace_storage_backends", "scratch")
    assert isinstance(backend, StorageBackend)
    assert backend.protocols == ("scratch",)  # defaults to the name
    assert backend.credentials_block == "scratch-credentials"
    filesystem = backend.load()()
    filesystem.pipe("/hooks-test/result.json", b'{"ok": true}')
    assert filesystem.cat("/hooks-test/result.json") == b'{"ok": true}'
    filesystem.rm("/hooks-test", recursive=True)


def test_headrace_infrastructure(implementation: ImplementationModules, tmp_path: Path) -> None:
    module = implementation.write(
        "hooks_nomad_jobs",
        """
        import pathlib

        class NomadJob:
            def run(self, target: str) -> str:
                pathlib.Path(target).write_text("launched")
                return "job-1"
        """,
    )

    class NomadPlugin:
        @hookimpl
        def headrace_infrastructure(self) -> list[Infrastructure]:
            return [Infrastructure(name="nomad", implementation=f"{module}:NomadJob", description="Nomad jobs.")]

    manager = plugin_manager_with(NomadPlugin())
    assert [r.name for r in manager.registrations("headrace_infrastructure")] == ["nomad"]
    assert not implementation.imported(module)
    target = tmp_path / "launched.txt"
    assert manager.select("headrace_infrastructure", "nomad").load()().run(str(target)) == "job-1"
    assert target.read_text() == "launched"


def test_headrace_notifiers(implementation: ImplementationModules, tmp_path: Path) -> None:
    module = implementation.write(
        "hooks_pager_blocks",
        """
        import pathlib

        class PagerNotification:
            def __init__(self, outbox: str) -> None:
                self.outbox = pathlib.Path(outbox)

            def notify(self, subject: str, body: str) -> None:
                self.outbox.write_text(f"{subject}: {body}")
        """,
    )

    class PagerPlugin:
        @hookimpl
        def headrace_notifiers(self) -> list[Notifier]:
            return [Notifier(name="pager", implementation=f"{module}:PagerNotification")]

    manager = plugin_manager_with(PagerPlugin())
    notifier = manager.select("headrace_notifiers", "pager")
    assert not implementation.imported(module)
    outbox = tmp_path / "outbox.txt"
    notifier.load()(str(outbox)).notify("flow failed", "nightly-etl crashed")
    assert outbox.read_text() == "flow failed: nightly-etl crashed"


def test_headrace_telemetry_exporters(implementation: ImplementationModules) -> None:
    module = implementation.write(
        "hooks_statsd_exporter",
        """
        class StatsdExporter:
            def __init__(self) -> None:
                self.calls: list[str] = []

            def setup(self, settings: object) -> None:
                self.calls.append("setup")

            def shutdown(self) -> None:
                self.calls.append("shutdown")
        """,
    )

    class StatsdPlugin:
        @hookimpl
        def headrace_telemetry_exporters(self) -> list[TelemetryExporter]:
            return [TelemetryExporter(name="statsd", implementation=f"{module}:StatsdExporter")]

    manager = plugin_manager_with(StatsdPlugin())
    exporter_type = manager.select("headrace_telemetry_exporters", "statsd")
    assert not implementation.imported(module)
    exporter = exporter_type.load()()
    exporter.setup(settings=None)
    exporter.shutdown()
    assert exporter.calls == ["setup", "shutdown"]


def test_headrace_task_runners(implementation: ImplementationModules) -> None:
    module = implementation.write(
        "hooks_serial_runner",
        """
        class SerialTaskRunner:
            def map(self, function, items):
                return [function(item) for item in items]
        """,
    )

    class SerialPlugin:
        @hookimpl
        def headrace_task_runners(self) -> list[TaskRunner]:
            return [TaskRunner(name="serial", implementation=f"{module}:SerialTaskRunner")]

    manager = plugin_manager_with(SerialPlugin())
    runner = manager.select("headrace_task_runners", "serial")
    assert not implementation.imported(module)
    assert runner.load()().map(lambda x: x * 2, [1, 2, 3]) == [2, 4, 6]


def test_headrace_cli() -> None:
    from headrace.cli.main import build_app

    class HelloPlugin:
        @hookimpl
        def headrace_cli(self, app: typer.Typer) -> None:
            @app.command("hello")
            def hello(name: str = "world") -> None:
                typer.echo(f"hello {name}")

    app = build_app()
    plugin_manager_with(HelloPlugin()).fire("headrace_cli", app=app)
    result = CliRunner().invoke(app, ["hello", "--name", "ops"])
    assert result.exit_code == 0, result.output
    assert result.output == "hello ops\n"
    # The core's own groups are still there next to the plugin's command.
    assert CliRunner().invoke(app, ["plugins", "--help"]).exit_code == 0


def test_headrace_on_flow_run_state_change() -> None:
    seen: list[tuple[object, ...]] = []

    class Audit:
        @hookimpl
        def headrace_on_flow_run_state_change(self, flow_run: object, old_state: object, new_state: object) -> None:
            seen.append((flow_run, old_state, new_state))

    class OnlyNewState:  # an implementation may take a subset of the arguments
        @hookimpl
        def headrace_on_flow_run_state_change(self, new_state: object) -> None:
            seen.append(("subset", new_state))

    manager = plugin_manager_with(Audit(), OnlyNewState())
    hook = "headrace_on_flow_run_state_change"
    manager.fire(hook, flow_run="nightly", old_state=None, new_state="Pending")
    manager.fire(hook, flow_run="nightly", old_state="Pending", new_state="Running")
    assert seen == [
        ("nightly", None, "Pending"),
        ("subset", "Pending"),
        ("nightly", "Pending", "Running"),
        ("subset", "Running"),
    ]


def test_headrace_on_task_run_state_change() -> None:
    failures: list[object] = []

    class FailureCounter:
        @hookimpl
        def headrace_on_task_run_state_change(self, task_run: object, old_state: object, new_state: object) -> None:
            if new_state == "Failed":
                failures.append(task_run)

    manager = plugin_manager_with(FailureCounter())
    hook = "headrace_on_task_run_state_change"
    manager.fire(hook, task_run="extract", old_state="Running", new_state="Completed")
    manager.fire(hook, task_run="load", old_state="Running", new_state="Failed")
    assert failures == ["load"]


def test_headrace_on_event() -> None:
    names: list[str] = []

    class EventTap:
        @hookimpl
        def headrace_on_event(self, event: dict[str, str]) -> None:
            names.append(event["event"])

    tap = EventTap()
    manager = plugin_manager_with(tap)
    manager.fire("headrace_on_event", event={"event": "flow-run.completed"})
    manager.unregister(tap)
    manager.fire("headrace_on_event", event={"event": "flow-run.failed"})
    assert names == ["flow-run.completed"]


def example_of(hook_name: str) -> str:
    """The ``Example::`` block of a hookspec's docstring, dedented."""
    doc = inspect.getdoc(getattr(HeadraceSpecs, hook_name)) or ""
    assert "Example::" in doc, f"{hook_name} has no 'Example::' block in its docstring"
    return textwrap.dedent(doc.split("Example::", 1)[1]).strip("\n") + "\n"


@pytest.mark.parametrize("hook_name", ALL_HOOKS)
def test_hookspec_docstring_example_runs(hook_name: str) -> None:
    code = example_of(hook_name)
    assert "assert " in code, "an example should check its own effect"
    exec(compile(code, f"<{hook_name} example>", "exec"), {"__name__": f"example_{hook_name}"})
