"""The root ``headrace`` command: assembles the command groups and the plugins' commands."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from headrace import __version__
from headrace.cli import config as config_commands
from headrace.cli import plugins as plugin_commands
from headrace.cli import profile as profile_commands
from headrace.cli.output import fail

# Commands that must keep working when plugins or settings are broken: they are how one repairs them.
DIAGNOSTIC_GROUPS = {"plugins", "config", "profile"}


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"headrace {__version__}")
        raise typer.Exit()


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="headrace",
        help="headrace: plugin-based workflow orchestration for Python.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",
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
    return app


def _add_plugin_commands(app: typer.Typer, argv: list[str]) -> None:
    from headrace.plugins import PluginError, get_plugin_manager
    from headrace.settings import SettingsError

    try:
        get_plugin_manager().fire("headrace_cli", app=app)
    except (PluginError, SettingsError) as exc:
        if argv[:1] and argv[0] in DIAGNOSTIC_GROUPS:
            return
        fail(str(exc))


def run(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    args = sys.argv[1:] if argv is None else argv
    app = build_app()
    try:
        _add_plugin_commands(app, args)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    app(args=args, prog_name="headrace")


if __name__ == "__main__":  # pragma: no cover
    run()
