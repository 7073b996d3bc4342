"""``headrace config``: view settings with their sources, and set or unset them in the active profile."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from headrace.cli.output import console, fail, print_json

app = typer.Typer(help="View and change settings.", no_args_is_help=True)


def _display(name: str, value: Any) -> str:
    """How a value is shown: secrets masked, collections in the form one would set them in."""
    from pydantic import SecretStr

    from headrace.settings import is_secret

    if value is None:
        return ""
    if is_secret(name):
        raw = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        return _mask_url_password(raw) if "://" in raw else "********"
    if isinstance(value, (set, list, tuple)):
        return ",".join(str(item) for item in sorted(value, key=str))
    if isinstance(value, dict):
        import json

        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _mask_url_password(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:********@{host}{port}"))


@app.command("view")
def view(
    show_sources: Annotated[bool, typer.Option("--show-sources", help="Say where each value comes from.")] = False,
    show_defaults: Annotated[bool, typer.Option("--show-defaults", help="Include settings left at default.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the settings in force (secrets masked)."""
    from headrace.settings import ProfilesFile, SettingsError, env_name, get_settings, setting_origins

    try:
        settings = get_settings()
        origins = setting_origins()
    except SettingsError as exc:
        fail(str(exc))
    rows = [
        (env_name(name), _display(name, getattr(settings, name)), origins[name])
        for name in type(settings).model_fields
        if show_defaults or origins[name] != "default"
    ]
    profile = ProfilesFile.load(settings.home).selected_name()
    if as_json:
        print_json({"profile": profile, "settings": [{"name": n, "value": v, "source": s} for n, v, s in rows]})
        return
    console.print(f"profile: [bold]{profile}[/]  (HEADRACE_HOME={settings.home})")
    if not rows:
        console.print("every setting is at its default; --show-defaults lists them")
    for name, value, source in rows:
        suffix = f"  [dim](from {source})[/]" if show_sources else ""
        console.print(f"{name}={value}{suffix}", markup=True)


@app.command("set")
def set_values(
    assignments: Annotated[list[str], typer.Argument(help="One or more NAME=VALUE, e.g. HEADRACE_API_URL=...")],
) -> None:
    """Set values in the active profile, after checking that they are valid."""
    from headrace.settings import SettingsError, env_name, field_for_env_name, get_settings
    from headrace.settings.sources import ProfileSettingsSource

    pairs: dict[str, str] = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep:
            fail(f"expected NAME=VALUE, got {assignment!r}")
        try:
            pairs[env_name(field_for_env_name(key))] = value
        except SettingsError as exc:
            fail(str(exc))
    profiles, profile = _active_profile()
    try:
        decoded = ProfileSettingsSource(_settings_cls(), pairs, profile)()
        get_settings(**decoded)
    except SettingsError as exc:
        fail(str(exc).replace("(from argument)", f"(given to 'config set' for profile {profile!r})"))
    except ValueError as exc:  # JSON that does not decode, for example
        fail(f"invalid value: {exc}")
    profiles.values(profile).update(pairs)
    profiles.save()
    for key in pairs:
        console.print(f"set {key} in profile [bold]{profile}[/]")
        _warn_if_overridden(key)


@app.command("unset")
def unset_values(
    names: Annotated[list[str], typer.Argument(help="Settings to remove from the active profile.")],
) -> None:
    """Remove values from the active profile, so that they fall back to their defaults."""
    from headrace.settings import SettingsError, env_name, field_for_env_name

    profiles, profile = _active_profile()
    values = profiles.values(profile)
    for name in names:
        try:
            key = env_name(field_for_env_name(name))
        except SettingsError as exc:
            fail(str(exc))
        if key not in values:
            fail(f"{key} is not set in profile {profile!r}")
        del values[key]
    profiles.save()
    for name in names:
        console.print(f"unset {env_name(field_for_env_name(name))} in profile [bold]{profile}[/]")


def _settings_cls() -> type:
    from headrace.settings import Settings

    return Settings


def _active_profile() -> tuple[Any, str]:
    from headrace.settings import ProfileError, ProfilesFile
    from headrace.settings.sources import resolve_home

    try:
        profiles = ProfilesFile.load(resolve_home({}))
        profile = profiles.selected_name()
        profiles.values(profile)
    except ProfileError as exc:
        fail(str(exc))
    return profiles, profile


def _warn_if_overridden(key: str) -> None:
    import os

    if key in os.environ:
        console.print(f"[yellow]note:[/] {key} is also set in the environment, which takes precedence")
