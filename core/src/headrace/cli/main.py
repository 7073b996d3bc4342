"""The root ``headrace`` command: assembles the command groups and the plugins' commands.

Start-up is kept short (``headrace --help`` has a budget; see ``benchmarks/bench_startup.py``):
command modules import their heavy dependencies inside the commands, the plugin manager built here
reads only the two plugin settings, without pydantic (:mod:`headrace.settings.bootstrap`), and rich
is imported only when something is printed through it. ``server start`` (which has a budget of its own,
see ``benchmarks/bench_server.py``) builds no plugin manager unless HEADRACE_PLUGINS_STRICT is on, and
parses its command line with the garbage collector paused.
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from typing import Annotated

import typer

from headrace import __version__
from headrace.cli import blocks as block_commands
from headrace.cli import config as config_commands
from headrace.cli import plugins as plugin_commands
from headrace.cli import profile as profile_commands
from headrace.cli import server as server_commands
from headrace.cli import spool as spool_commands
from headrace.cli.output import fail

# Commands that must keep working when plugins or settings are broken: they are how one repairs them.
DIAGNOSTIC_GROUPS = {"plugins", "config", "profile", "--help", "--version"}


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"headrace {__version__}")
        raise typer.Exit()


def build_app() -> typer.Typer:
    """The command tree without the plugins' commands (``run`` adds those)."""
    app = typer.Typer(
        name="headrace",
        help="headrace: plugin-based workflow orchestration for Python.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,  # plain help: rich's help renderer alone would exceed the start-up budget
    )

    @app.callback()
    def root(
        version: Annotated[
            bool,
            typer.Option("--version", callback=_show_version, is_eager=True, help="Show the version and exit."),
        ] = False,
    ) -> None:
        """headrace: plugin-based workflow orchestration for Python."""

    app.add_typer(plugin_commands.app, name="plugins")
    app.add_typer(config_commands.app, name="config")
    app.add_typer(profile_commands.app, name="profile")
    app.add_typer(server_commands.app, name="server")
    app.add_typer(spool_commands.app, name="spool")
    app.add_typer(block_commands.app, name="block")
    return app


# Commands that never use a plugin's command-line additions, and whose start-up has a budget: ``server start``
# must answer within half a second, and building the plugin manager (entry points, every plugin's module,
# packaging's requirement parser) was ~25 ms of its CPU. The server builds its own manager when it first
# needs one (block types, storage), so nothing is lost by not building this one; with HEADRACE_PLUGINS_STRICT
# on, the manager is still built, so that a broken plugin still stops the command.
SERVER_START = ("server", "start")
PLUGIN_FREE_COMMANDS: frozenset[tuple[str, ...]] = frozenset({SERVER_START})


def _plugin_settings() -> tuple[bool, list[str]]:
    """HEADRACE_PLUGINS_STRICT and HEADRACE_PLUGINS_DISABLED, read without loading the settings model.

    Those two are read by the same precedence as every setting, but without loading the whole model;
    a value that the cheap reader cannot parse is left to ``get_settings()``, which explains it
    (by raising :class:`~headrace.settings.SettingsError`).
    """
    from headrace.settings.bootstrap import peek_bool, raw_setting, split_commas

    def validated_strict() -> bool:
        from headrace.settings import get_settings

        return get_settings().plugins_strict

    strict = peek_bool("plugins_strict", False, fallback=validated_strict)
    disabled, _ = raw_setting("plugins_disabled")
    return strict, split_commas(disabled or "")


def _needs_plugins(argv: list[str], strict: bool) -> bool:
    """Whether the command line may need the plugins' commands (or, in strict mode, their check)."""
    return strict or tuple(argv[:2]) not in PLUGIN_FREE_COMMANDS


def _add_plugin_commands(app: typer.Typer, argv: list[str]) -> None:
    from headrace.settings import SettingsError

    try:
        strict, disabled = _plugin_settings()
    except SettingsError as exc:
        _plugins_failed(argv, exc)
        return
    if not _needs_plugins(argv, strict):
        return  # not even headrace.plugins is imported (pluggy, the hook specifications)
    from headrace.plugins import PluginError
    from headrace.plugins.manager import build_plugin_manager

    try:
        build_plugin_manager(strict=strict, disabled=disabled).fire("headrace_cli", app=app)
    except (PluginError, SettingsError) as exc:
        _plugins_failed(argv, exc)


def _plugins_failed(argv: list[str], exc: Exception) -> None:
    """Stop with ``exc``'s message, except for the commands one repairs plugins and settings with."""
    if not argv or argv[0] in DIAGNOSTIC_GROUPS:
        return
    fail(str(exc))


def run(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    args = sys.argv[1:] if argv is None else argv
    # ``server start`` runs its start-up with the garbage collector paused (see ``cli.server``); pausing it
    # here already, the command line's parsing (which imports pydantic) runs without collections too.
    paused = server_commands._gc_paused_until_started() if tuple(args[:2]) == SERVER_START else nullcontext()
    with paused:
        app = build_app()
        if args[:1] != ["--version"]:  # the version needs no plugins; every other command may be one
            try:
                _add_plugin_commands(app, args)
            except typer.Exit as exit_:
                sys.exit(exit_.exit_code)
        app(args=args, prog_name="headrace")


if __name__ == "__main__":  # pragma: no cover
    run()
