"""``headrace profile``: named sets of settings under HEADRACE_HOME."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from headrace.cli.output import console, fail, print_json

if TYPE_CHECKING:
    from headrace.settings import ProfilesFile

app = typer.Typer(help="Manage settings profiles.", no_args_is_help=True)


def _load() -> ProfilesFile:
    from headrace.settings import ProfileError, ProfilesFile
    from headrace.settings.sources import resolve_home

    try:
        return ProfilesFile.load(resolve_home({}))
    except ProfileError as exc:
        fail(str(exc))


def _change(action: str, name: str, **kwargs: str | None) -> None:
    from headrace.settings import ProfileError

    profiles = _load()
    try:
        getattr(profiles, action)(name, **kwargs)
    except ProfileError as exc:
        fail(str(exc))
    profiles.save()


@app.command("ls")
def list_profiles(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List profiles; the one in force is marked with '*'."""
    profiles = _load()
    selected = profiles.selected_name()
    if as_json:
        print_json({"active": selected, "profiles": sorted(profiles.profiles)})
        return
    for name in sorted(profiles.profiles):
        marker = "*" if name == selected else " "
        console.print(f"{marker} {name}")


@app.command("create")
def create_profile(
    name: str,
    copy_from: Annotated[str | None, typer.Option("--from", help="Copy the values of this profile.")] = None,
) -> None:
    """Create a profile (empty, or a copy of another)."""
    _change("create", name, copy_from=copy_from)
    console.print(f"created profile [bold]{name}[/]; switch to it with: headrace profile use {name}")


@app.command("use")
def use_profile(name: str) -> None:
    """Make a profile the active one."""
    _change("use", name)
    console.print(f"now using profile [bold]{name}[/]")


@app.command("delete")
def delete_profile(name: str) -> None:
    """Delete a profile (not the active one)."""
    _change("delete", name)
    console.print(f"deleted profile [bold]{name}[/]")
