"""``headrace profile``: named sets of settings in ``$HEADRACE_HOME/profiles.toml``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from headrace.cli.output import console, fail, note, print_json

if TYPE_CHECKING:
    from headrace.settings.bootstrap import ProfileSelection

app = typer.Typer(help="Manage settings profiles.", no_args_is_help=True)


def _load() -> ProfileSelection:
    from headrace.settings import ProfileError, select_profile

    try:
        return select_profile()
    except ProfileError as exc:
        fail(str(exc))


def _change(action: str, name: str, **kwargs: str | None) -> ProfileSelection:
    from headrace.settings import ProfileError

    selection = _load()
    try:
        getattr(selection.profiles, action)(name, **kwargs)
    except ProfileError as exc:
        fail(str(exc))
    selection.profiles.save()
    return selection


@app.command("ls")
def list_profiles(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List profiles; the one in force is marked with '*'."""
    selection = _load()
    names = sorted(selection.profiles.profiles)
    if as_json:
        print_json({"active": selection.name, "selected_by": selection.reason, "profiles": names})
        return
    for name in names:
        marker = "*" if name == selection.name else " "
        console.print(f"{marker} {name}", markup=False)
    if selection.name not in selection.profiles.profiles:
        note(f"{selection.reason} selects profile {selection.name!r}, which does not exist")


@app.command("create")
def create_profile(
    name: Annotated[str, typer.Argument(help="Letters, digits, '.', '_' and '-'.")],
    copy_from: Annotated[str | None, typer.Option("--from", help="Copy the values of this profile.")] = None,
) -> None:
    """Create a profile (empty, or a copy of another)."""
    _change("create", name, copy_from=copy_from)
    console.print(f"created profile {name}; switch to it with: headrace profile use {name}", markup=False)


@app.command("use")
def use_profile(name: str) -> None:
    """Make a profile the active one."""
    selection = _change("use", name)
    console.print(f"now using profile {name}", markup=False)
    if selection.name != name and not selection.reason.startswith("'active'"):
        note(f"{selection.reason} still selects profile {selection.name!r} in this shell")


@app.command("delete")
def delete_profile(name: str) -> None:
    """Delete a profile (not the active one)."""
    selection = _load()
    if name == selection.name != selection.profiles.active and name in selection.profiles.profiles:
        fail(f"profile {name!r} is in force (selected by {selection.reason}); switch to another one first")
    _change("delete", name)
    console.print(f"deleted profile {name}", markup=False)
