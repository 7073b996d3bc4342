"""The root command: version, help, plugin commands at start-up, and errors without tracebacks."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from headrace import __version__
from headrace.testing.plugins import write_plugin_distribution

HELLO_PLUGIN = """
    from headrace.plugins import hookimpl

    @hookimpl
    def headrace_cli(app):
        @app.command("hello")
        def hello(name: str = "world") -> None:
            print(f"hello {name}")
"""


def test_version(headrace: Callable[..., Any]) -> None:
    ran = headrace("--version")
    assert (ran.code, ran.stdout, ran.stderr) == (0, f"headrace {__version__}\n", "")


def test_help_lists_the_command_groups(headrace: Callable[..., Any]) -> None:
    ran = headrace("--help")
    assert ran.code == 0, ran.stderr
    for group in ("plugins", "config", "profile", "--version"):
        assert group in ran.stdout


def test_no_arguments_shows_help(headrace: Callable[..., Any]) -> None:
    ran = headrace()
    assert "Usage: headrace" in ran.stdout + ran.stderr


@pytest.fixture
def hello_site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    write_plugin_distribution(site, "headrace-hello", module="headrace_hello", source=textwrap.dedent(HELLO_PLUGIN))
    return site


def test_plugin_commands_are_added(headrace: Callable[..., Any], hello_site: Path) -> None:
    env = {"PYTHONPATH": str(hello_site)}
    assert "hello" in headrace("--help", env=env).stdout
    ran = headrace("hello", "--name", "ops", env=env)
    assert (ran.code, ran.stdout) == (0, "hello ops\n")


def test_plugins_disabled_in_a_profile_applies_at_start_up(
    headrace: Callable[..., Any], hello_site: Path, write_profiles: Callable[[str], Path]
) -> None:
    write_profiles('[profiles.default]\nHEADRACE_PLUGINS_DISABLED = "other, headrace-hello"\n')
    ran = headrace("hello", env={"PYTHONPATH": str(hello_site)})
    assert ran.code != 0
    assert "hello" not in headrace("--help", env={"PYTHONPATH": str(hello_site)}).stdout


def test_plugins_disabled_in_dotenv_applies_at_start_up(
    headrace: Callable[..., Any], hello_site: Path, write_dotenv: Callable[[str], Path]
) -> None:
    write_dotenv("HEADRACE_PLUGINS_DISABLED=headrace_hello\n")
    assert "hello" not in headrace("--help", env={"PYTHONPATH": str(hello_site)}).stdout


def test_invalid_strict_flag_is_reported_without_a_traceback(headrace: Callable[..., Any], hello_site: Path) -> None:
    ran = headrace("hello", env={"PYTHONPATH": str(hello_site), "HEADRACE_PLUGINS_STRICT": "maybe"})
    assert ran.code == 1
    assert ran.stderr.startswith(
        "error: invalid setting HEADRACE_PLUGINS_STRICT='maybe' (from environment): Input should be a valid boolean"
    )
    assert "Traceback" not in ran.stderr


def test_invalid_setting_in_a_command_exits_1_with_one_line(headrace: Callable[..., Any]) -> None:
    ran = headrace("config", "view", env={"HEADRACE_LOGGING_LEVEL": "LOUD"})
    assert ran.code == 1
    assert ran.stdout == ""
    assert ran.stderr == (
        "error: invalid setting HEADRACE_LOGGING_LEVEL='LOUD' (from environment): "
        "Input should be 'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL'\n"
    )


def test_unknown_profile_exits_1_without_a_traceback(headrace: Callable[..., Any]) -> None:
    ran = headrace("config", "view", env={"HEADRACE_PROFILE": "nope"})
    assert ran.code == 1
    assert ran.stderr == (
        "error: unknown profile 'nope' (selected by HEADRACE_PROFILE in the environment); known profiles: default\n"
    )


def test_version_and_help_work_with_broken_settings(headrace: Callable[..., Any]) -> None:
    env = {"HEADRACE_PROFILE": "nope", "HEADRACE_PLUGINS_STRICT": "maybe"}
    assert headrace("--version", env=env).code == 0
    assert headrace("--help", env=env).code == 0


@pytest.fixture
def broken_site(tmp_path: Path) -> Path:
    site = tmp_path / "broken-site"
    write_plugin_distribution(site, "headrace-broken", module="headrace_broken", source="raise ImportError('no sdk')\n")
    return site


def test_a_broken_plugin_is_a_warning_by_default(headrace: Callable[..., Any], broken_site: Path) -> None:
    ran = headrace("profile", "ls", env={"PYTHONPATH": str(broken_site)})
    assert ran.code == 0
    assert "headrace-broken" in ran.stderr


@pytest.mark.parametrize("where", ["environment", "profile"])
def test_strict_plugins_stop_other_commands(
    headrace: Callable[..., Any], broken_site: Path, write_profiles: Callable[[str], Path], where: str
) -> None:
    env = {"PYTHONPATH": str(broken_site)}
    if where == "environment":
        env["HEADRACE_PLUGINS_STRICT"] = "TRUE"
    else:
        write_profiles('[profiles.default]\nHEADRACE_PLUGINS_STRICT = "yes"\n')
    ran = headrace("server", "--help", env=env)
    assert ran.code == 1
    assert "error: plugin 'headrace-broken'" in ran.stderr
    assert "HEADRACE_PLUGINS_STRICT is on" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert headrace("profile", "ls", env=env).code == 0  # the commands that repair things still work
