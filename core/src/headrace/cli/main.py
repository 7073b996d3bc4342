"""The root ``headrace`` command: assembles the command groups and the plugins' commands.

Start-up is kept short (``headrace --help`` has a budget; see ``benchmarks/bench_startup.py``):
command modules import their heavy dependencies inside the commands, the plugin manager built here
reads only the two plugin settings, without pydantic (:mod:`headrace.settings.bootstrap`), and rich
is imported only when something is printed through it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from headrace import __version__
from headrace.cli import blocks as block_commands
from headrace.cli import config as config_commands
from headrace.cli import plugins as plugin_commands
from headrace.cli import profile as profile_commands
from headrace.cli import server as server_commands
from headrace.cli import spool as spool_commands
from headrace.cli.output import fail

if TYPE_CHECKING:
    from headrace.plugins.manager import HeadracePluginManager

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


def startup_plugin_manager() -> HeadracePluginManager:
    """The plugin manager for the ``headrace_cli`` hook, built from HEADRACE_PLUGINS_STRICT/_DISABLED.

    Those two are read by the same precedence as every setting, but without loading the whole model;
    a value that the cheap reader cannot parse is left to ``get_settings()``, which explains it.
    """
    from headrace.plugins.manager import build_plugin_manager
    from headrace.settings.bootstrap import peek_bool, raw_setting, split_commas

    def validated_strict() -> bool:
        from headrace.settings import get_settings

        return get_settings().plugins_strict

    strict = peek_bool("plugins_strict", False, fallback=validated_strict)
    disabled, _ = raw_setting("plugins_disabled")
    return build_plugin_manager(strict=strict, disabled=split_commas(disabled or ""))


def _add_plugin_commands(app: typer.Typer, argv: list[str]) -> None:
    from headrace.plugins import PluginError
    from headrace.settings import SettingsError

    try:
        startup_plugin_manager().fire("headrace_cli", app=app)
    except (PluginError, SettingsError) as exc:
        if not argv or argv[0] in DIAGNOSTIC_GROUPS:
            return
        fail(str(exc))


def run(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    args = sys.argv[1:] if argv is None else argv
    app = build_app()
    if args[:1] != ["--version"]:  # the version needs no plugins; every other command may be one
        try:
            _add_plugin_commands(app, args)
        except typer.Exit as exit_:
            sys.exit(exit_.exit_code)
    app(args=args, prog_name="headrace")


if __name__ == "__main__":  # pragma: no cover
    run()
