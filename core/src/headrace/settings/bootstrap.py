"""The cheap part of settings: names, the two variables that say where settings live, and raw look-ups.

``HEADRACE_HOME`` (where ``profiles.toml`` is) and ``HEADRACE_PROFILE`` (which profile is in force)
decide where the other settings come from, so they are read first, from the environment and then
from ``.env`` in the working directory. This module imports neither pydantic nor pydantic-settings:
the command line uses :func:`raw_setting` to read the few settings it needs at start-up without
paying for the full model (see ``benchmarks/bench_startup.py``). Everything else should call
:func:`headrace.settings.get_settings`, which validates every value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headrace.settings.errors import SettingsError
from headrace.settings.profiles import ProfileError, ProfilesFile

if TYPE_CHECKING:
    from collections.abc import Callable

ENV_PREFIX = "HEADRACE_"
DOTENV_FILE = ".env"
HOME_VARIABLE = "HEADRACE_HOME"
PROFILE_VARIABLE = "HEADRACE_PROFILE"

# The labels of the sources, as `headrace config view --show-sources` prints them ("from ...").
ARGUMENT = "argument"
ENVIRONMENT = "environment"
DOTENV = DOTENV_FILE
DEFAULT = "default"


def env_name(field_name: str) -> str:
    """``api_url`` -> ``HEADRACE_API_URL``."""
    return f"{ENV_PREFIX}{field_name.upper()}"


def profile_label(name: str) -> str:
    return f"profile {name!r}"


def _lookup(values: Mapping[str, str | None], name: str) -> str | None:
    """Case-insensitive look-up, as pydantic-settings does for environment variables and ``.env``."""
    if name in values:
        return values[name]
    upper = name.upper()
    return next((value for key, value in values.items() if key.upper() == upper), None)


def dotenv_values(cwd: Path | None = None) -> dict[str, str | None]:
    """The ``.env`` file of the working directory (python-dotenv's parsing, as pydantic-settings uses)."""
    path = (cwd or Path.cwd()) / DOTENV_FILE
    if not path.is_file():
        return {}
    from dotenv import dotenv_values as read

    return dict(read(path))


def environment_value(name: str, environ: Mapping[str, str] | None = None) -> tuple[str | None, str]:
    """A variable from the environment, else from ``.env``; with the label of where it was found."""
    value = _lookup(os.environ if environ is None else environ, name)
    if value is not None:
        return value, ENVIRONMENT
    value = _lookup(dotenv_values(), name)
    if value is not None:
        return value, DOTENV
    return None, DEFAULT


def resolve_home(init_kwargs: Mapping[str, Any] | None = None) -> Path:
    """Where profiles live: an explicit ``home=`` argument, else HEADRACE_HOME, else ``~/.headrace``."""
    if init_kwargs and init_kwargs.get("home"):
        return Path(init_kwargs["home"]).expanduser()
    raw, _ = environment_value(HOME_VARIABLE)
    return Path(raw).expanduser() if raw else Path.home() / ".headrace"


@dataclass(frozen=True)
class ProfileSelection:
    """The profiles file, the name of the profile in force, and why that one."""

    profiles: ProfilesFile
    name: str
    reason: str

    def values(self) -> dict[str, str]:
        """The selected profile's values; an unknown profile is an error, never a silent default."""
        if self.name not in self.profiles.profiles:
            known = ", ".join(sorted(self.profiles.profiles))
            raise ProfileError(f"unknown profile {self.name!r} (selected by {self.reason}); known profiles: {known}")
        return self.profiles.profiles[self.name]


def select_profile(init_kwargs: Mapping[str, Any] | None = None) -> ProfileSelection:
    """Load ``profiles.toml`` and pick the profile: HEADRACE_PROFILE (environment, then ``.env``), else ``active``."""
    profiles = ProfilesFile.load(resolve_home(init_kwargs))
    chosen, origin = environment_value(PROFILE_VARIABLE)
    if chosen:
        return ProfileSelection(profiles, chosen, f"{PROFILE_VARIABLE} in the {origin}")
    return ProfileSelection(profiles, profiles.active, f"'active' in {profiles.path}")


def raw_setting(field_name: str) -> tuple[str | None, str]:
    """The unvalidated string for one setting and the label of its source, by the usual precedence.

    Environment, then ``.env``, then the selected profile; ``(None, "default")`` when none sets it.
    Profile errors become :class:`SettingsError`, as they do in ``get_settings()``.
    """
    name = env_name(field_name)
    value, origin = environment_value(name)
    if value is not None:
        return value, origin
    try:
        selection = select_profile()
        values = selection.values()
    except ProfileError as exc:
        raise SettingsError(str(exc)) from None
    value = _lookup(values, name)
    if value is not None:
        return value, profile_label(selection.name)
    return None, DEFAULT


_TRUE = {"1", "on", "t", "true", "y", "yes"}
_FALSE = {"0", "off", "f", "false", "n", "no"}


def peek_bool(field_name: str, default: bool, *, fallback: Callable[[], bool]) -> bool:
    """A boolean setting read cheaply; any value pydantic might parse differently goes to ``fallback``."""
    raw, _ = raw_setting(field_name)
    if raw is None:
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    return fallback()


def split_commas(raw: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``: how list settings are written in the environment."""
    return [item.strip() for item in raw.split(",") if item.strip()]
