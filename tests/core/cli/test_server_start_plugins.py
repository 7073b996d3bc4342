"""``headrace server start`` neither imports the plugins for their commands (unless HEADRACE_PLUGINS_STRICT
asks for their check) nor collects garbage while it parses its command line. No timing here; see
benchmarks/bench_server.py."""

from __future__ import annotations

import gc
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from headrace.cli import main
from headrace.cli import server as server_commands
from headrace.testing.plugins import write_plugin_distribution

# A plugin that says when it is imported, and adds a command.
LOUD_PLUGIN = """
    import sys

    from headrace.plugins import hookimpl

    print("loud plugin imported", file=sys.stderr)

    @hookimpl
    def headrace_cli(app):
        @app.command("loud")
        def loud() -> None:
            print("loud")
"""


@pytest.fixture
def loud_site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    write_plugin_distribution(site, "headrace-loud", module="headrace_loud", source=textwrap.dedent(LOUD_PLUGIN))
    return site


@pytest.fixture
def broken_site(tmp_path: Path) -> Path:
    site = tmp_path / "broken-site"
    write_plugin_distribution(site, "headrace-broken", module="headrace_broken", source="raise ImportError('no sdk')\n")
    return site


# An invalid port stops ``server start`` right after the command line is handled, before it serves.
STOPS_BEFORE_SERVING = {"HEADRACE_SERVER_API_PORT": "not-a-port"}


def test_server_start_does_not_import_plugins(headrace: Callable[..., Any], loud_site: Path) -> None:
    ran = headrace("server", "start", env={"PYTHONPATH": str(loud_site), **STOPS_BEFORE_SERVING})
    assert ran.code == 1
    assert "HEADRACE_SERVER_API_PORT" in ran.stderr  # it got as far as the command itself
    assert "loud plugin imported" not in ran.stderr


def test_other_commands_still_have_the_plugin_commands(headrace: Callable[..., Any], loud_site: Path) -> None:
    env = {"PYTHONPATH": str(loud_site)}
    assert "loud plugin imported" in headrace("server", "--help", env=env).stderr
    assert "loud" in headrace("--help", env=env).stdout
    ran = headrace("loud", env=env)
    assert (ran.code, ran.stdout) == (0, "loud\n")


def test_strict_plugins_still_stop_server_start(headrace: Callable[..., Any], broken_site: Path) -> None:
    ran = headrace("server", "start", env={"PYTHONPATH": str(broken_site), "HEADRACE_PLUGINS_STRICT": "true"})
    assert ran.code == 1
    assert "error: plugin 'headrace-broken'" in ran.stderr
    assert "Traceback" not in ran.stderr


def test_an_invalid_strict_flag_still_stops_server_start(headrace: Callable[..., Any]) -> None:
    ran = headrace("server", "start", env={"HEADRACE_PLUGINS_STRICT": "maybe"})
    assert ran.code == 1
    assert ran.stderr.startswith("error: invalid setting HEADRACE_PLUGINS_STRICT='maybe'")


@pytest.mark.parametrize(
    ("argv", "strict", "needed"),
    [
        (["server", "start", "--port", "4200"], False, False),
        (["server", "start"], True, True),
        (["server", "--help"], False, True),
        (["server", "database", "upgrade"], False, True),
        (["loud"], False, True),
        ([], False, True),
    ],
)
def test_which_command_lines_need_the_plugins(argv: list[str], strict: bool, needed: bool) -> None:
    assert main._needs_plugins(argv, strict) is needed


@pytest.fixture
def gc_enabled_afterwards() -> Any:
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.usefixtures("gc_enabled_afterwards")
def test_server_start_parses_its_command_line_with_the_collector_paused(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, bool] = {}

    def add_plugin_commands(app: Any, argv: list[str]) -> None:
        seen["plugins"] = gc.isenabled()

    def start(host: str | None, port: int | None) -> None:
        seen["start"] = gc.isenabled()

    monkeypatch.setattr(main, "_add_plugin_commands", add_plugin_commands)
    monkeypatch.setattr(server_commands, "_start", start)
    gc.enable()
    with pytest.raises(SystemExit) as exited:
        main.run(["server", "start", "--port", "4200"])
    assert exited.value.code == 0
    assert seen == {"plugins": False, "start": False}
    assert gc.isenabled()


@pytest.mark.usefixtures("gc_enabled_afterwards")
def test_other_commands_run_with_the_collector_on(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, bool] = {}

    def add_plugin_commands(app: Any, argv: list[str]) -> None:
        seen["plugins"] = gc.isenabled()

    monkeypatch.setattr(main, "_add_plugin_commands", add_plugin_commands)
    gc.enable()
    with pytest.raises(SystemExit):
        main.run(["server", "--help"])
    assert seen == {"plugins": True}
