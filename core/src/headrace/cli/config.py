"""``headrace config``: view settings with their sources, and set or unset them in the active profile."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from headrace.cli.output import console, fail, note, print_json

if TYPE_CHECKING:
    from headrace.settings.bootstrap import ProfileSelection

app = typer.Typer(help="View and change settings.", no_args_is_help=True)

MASK = "********"
# Variables that are read before the settings (they say where settings come from), not settings themselves.
BOOTSTRAP_VARIABLES = {"HEADRACE_PROFILE"}


def mask_secret(raw: str) -> str:
    """A secret as it may be shown: a URL keeps everything but its password, anything else is masked."""
    if "://" not in raw:
        return MASK
    scheme, _, rest = raw.partition("://")
    netloc, slash, path = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    if at and ":" in userinfo:
        user = userinfo.partition(":")[0]
        netloc = f"{user}:{MASK}@{host}"
    path = _mask_query_secrets(path)
    return f"{scheme}://{netloc}{slash}{path}"


def _mask_query_secrets(path: str) -> str:
    """``?password=x`` and similar parameters of a database URL are secrets too."""
    base, question, query = path.partition("?")
    if not question:
        return path
    hidden = ("password", "secret", "token", "key")
    pairs = []
    for pair in query.split("&"):
        name, equals, value = pair.partition("=")
        if equals and any(word in name.lower() for word in hidden):
            value = MASK
        pairs.append(f"{name}{equals}{value}")
    return f"{base}?{'&'.join(pairs)}"


def display_value(name: str, value: Any) -> str:
    """How a value is shown: secrets masked, collections in the form one would set them in."""
    from pydantic import SecretStr

    from headrace.settings import is_secret

    if value is None:
        return ""
    if is_secret(name):
        return mask_secret(value.get_secret_value() if isinstance(value, SecretStr) else str(value))
    if isinstance(value, (set, frozenset, list, tuple)):
        return ",".join(str(item) for item in sorted(value, key=_sort_key))
    if isinstance(value, dict):
        import json

        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json_value(name: str, value: Any) -> Any:
    """The value for ``--json``: native JSON types, secrets masked."""
    from pathlib import PurePath

    from headrace.settings import is_secret

    if is_secret(name):
        return display_value(name, value) if value is not None else None
    if value is None or isinstance(value, (bool, int, float, str, dict)):
        return value
    if isinstance(value, (set, frozenset, list, tuple)):
        return sorted(value, key=_sort_key)
    if isinstance(value, PurePath):
        return str(value)
    return display_value(name, value)


def _sort_key(item: Any) -> tuple[int, Any]:
    return (0, item) if isinstance(item, (int, float)) else (1, str(item))


@app.command("view")
def view(
    show_sources: Annotated[bool, typer.Option("--show-sources", help="Say where each value comes from.")] = False,
    show_defaults: Annotated[bool, typer.Option("--show-defaults", help="Include settings left at default.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the settings in force (secrets masked).

    By default only the settings that are set somewhere are listed; --show-defaults lists every one.
    """
    from headrace.settings import ProfileError, SettingsError, env_name, get_settings, select_profile, setting_origins

    try:
        settings = get_settings()
        origins = setting_origins()
        selection = select_profile()
    except (SettingsError, ProfileError) as exc:
        fail(str(exc))
    rows = [
        (env_name(name), name, getattr(settings, name), origins[name])
        for name in type(settings).model_fields
        if show_defaults or origins[name] != "default"
    ]
    if as_json:
        print_json(
            {
                "profile": selection.name,
                "home": str(settings.home),
                "settings": [
                    {"name": env, "value": _json_value(field, value), "source": source}
                    for env, field, value, source in rows
                ],
            }
        )
    else:
        from rich.text import Text

        console.print(f"profile: {selection.name}  (HEADRACE_HOME={settings.home})", markup=False)
        if show_sources:
            console.print(f"profile selected by {selection.reason}", markup=False, style="dim")
        if not rows:
            console.print("every setting is at its default; --show-defaults lists them", markup=False)
        for env, field, value, source in rows:
            line = Text(f"{env}={display_value(field, value)}")
            if show_sources:
                line.append(f"  ({'default' if source == 'default' else 'from ' + source})", style="dim")
            console.print(line)
    for warning in _unknown_variables(selection):
        note(warning)


def _unknown_variables(selection: ProfileSelection) -> list[str]:
    """``HEADRACE_*`` names in the environment, ``.env`` or the profile that are no setting (typos)."""
    import os

    from headrace.settings import SettingsError, field_for_env_name
    from headrace.settings.bootstrap import ENV_PREFIX, dotenv_values, profile_label

    places: list[tuple[str, list[str]]] = [
        ("the environment", list(os.environ)),
        (".env", list(dotenv_values())),
        (profile_label(selection.name), list(selection.profiles.profiles.get(selection.name, {}))),
    ]
    warnings = []
    for place, names in places:
        for name in names:
            if not name.upper().startswith(ENV_PREFIX) or name.upper() in BOOTSTRAP_VARIABLES:
                continue
            try:
                field_for_env_name(name)
            except SettingsError as exc:
                warnings.append(f"{str(exc).replace('unknown setting', 'ignoring unknown setting', 1)} (in {place})")
    return warnings


@app.command("set")
def set_values(
    assignments: Annotated[
        list[str], typer.Argument(help="One or more NAME=VALUE, e.g. HEADRACE_API_URL=... or api_url=...")
    ],
) -> None:
    """Set values in the active profile.

    Every value is checked first; if one is invalid, nothing is written.
    """
    from headrace.settings import SettingsError, env_name, field_for_env_name, get_settings
    from headrace.settings.bootstrap import ARGUMENT, HOME_VARIABLE
    from headrace.settings.errors import SettingProblem
    from headrace.settings.loader import Settings
    from headrace.settings.sources import ProfileSettingsSource

    pairs: dict[str, str] = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep:
            fail(f"expected NAME=VALUE, got {key!r}; for example: headrace config set HEADRACE_API_URL=http://...")
        try:
            name = env_name(field_for_env_name(key))
        except SettingsError as exc:
            fail(str(exc))
        if name == HOME_VARIABLE:
            fail(f"{HOME_VARIABLE} cannot be set in a profile, as profiles live under it; set it in the environment")
        pairs[name] = value
    selection = _selection()
    where = f"'config set' for profile {selection.name!r}"
    try:
        decoded = ProfileSettingsSource(Settings, pairs, selection.name)()
        get_settings(**decoded)
    except SettingsError as exc:
        ours = [problem for problem in exc.problems if problem.origin == ARGUMENT]
        if ours:
            fail(str(SettingsError.from_problems([SettingProblem(p.name, p.value, where, p.message) for p in ours])))
        if not exc.problems:
            fail(str(exc))
        # Only values from other sources are invalid; the new ones are fine, so write them.
    except ValueError as exc:  # a source could not decode a value
        fail(f"invalid value given to {where}: {exc}")
    values = selection.values()
    for name in pairs:
        for existing in [key for key in values if key.upper() == name and key != name]:
            del values[existing]  # a hand-written key in another case would shadow the new value
    values.update(pairs)
    selection.profiles.save()
    for name in pairs:
        console.print(f"set {name} in profile {selection.name}", markup=False)
    _note_overrides(list(pairs))


def _note_overrides(names: list[str]) -> None:
    """Say so when a value just written to the profile is hidden by the environment or ``.env``."""
    from headrace.settings import SettingsError, field_for_env_name, setting_origins

    try:
        origins = setting_origins()
    except SettingsError:
        return
    for name in names:
        origin = origins.get(field_for_env_name(name), "default")
        if not origin.startswith("profile"):
            place = "the environment" if origin == "environment" else origin
            note(f"{name} is also set in {place}, which takes precedence over the profile")


@app.command("unset")
def unset_values(
    names: Annotated[list[str], typer.Argument(help="Settings to remove from the active profile.")],
) -> None:
    """Remove values from the active profile.

    Unless the environment or .env sets them, they take their default values again.
    """
    from headrace.settings import SettingsError, env_name, field_for_env_name

    selection = _selection()
    values = selection.values()
    removed = []
    for given in names:
        present = [key for key in values if key.upper() == given.strip().upper()]
        if not present:  # not written literally: accept any form of a known setting's name
            try:
                name = env_name(field_for_env_name(given))
            except SettingsError as exc:
                fail(str(exc))
            present = [key for key in values if key.upper() == name]
            if not present:
                fail(f"{name} is not set in profile {selection.name!r}; nothing was changed")
        for key in present:
            del values[key]
        removed.append(present[0].upper())
    selection.profiles.save()
    for name in removed:
        console.print(f"unset {name} in profile {selection.name}", markup=False)


def _selection() -> ProfileSelection:
    from headrace.settings import ProfileError, select_profile

    try:
        selection = select_profile()
        selection.values()
    except ProfileError as exc:
        fail(str(exc))
    return selection
