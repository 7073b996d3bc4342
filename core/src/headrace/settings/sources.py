"""Where setting values come from, in order of precedence, and which source gave each value.

The order is: keyword arguments, environment variables, a ``.env`` file in the working directory,
the selected profile, and finally the defaults. The same ordered list serves both loading and
``headrace config view --show-sources``, so the explanation can never disagree with the behaviour.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
)

from headrace.settings.profiles import ProfilesFile

ENV_PREFIX = "HEADRACE_"
DOTENV_FILE = ".env"


class ProfileSettingsSource(EnvSettingsSource):
    """Reads the selected profile's values with the exact parsing rules of environment variables."""

    def __init__(self, settings_cls: type[BaseSettings], values: Mapping[str, str], profile: str) -> None:
        self._profile_values = {key.lower(): value for key, value in values.items()}
        self.profile = profile
        super().__init__(settings_cls, case_sensitive=False, env_prefix=ENV_PREFIX)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return self._profile_values


def resolve_home(init_kwargs: Mapping[str, Any]) -> Path:
    """HEADRACE_HOME decides where profiles live, so it is read before any profile is."""
    if init_kwargs.get("home"):
        return Path(init_kwargs["home"]).expanduser()
    raw = os.environ.get("HEADRACE_HOME")
    if raw is None and Path(DOTENV_FILE).is_file():
        from dotenv import dotenv_values

        raw = dotenv_values(DOTENV_FILE).get("HEADRACE_HOME")
    return Path(raw).expanduser() if raw else Path.home() / ".headrace"


def ordered_sources(
    settings_cls: type[BaseSettings], init_kwargs: Mapping[str, Any]
) -> list[tuple[str, PydanticBaseSettingsSource]]:
    """Every source with a label for people, highest precedence first."""
    profiles = ProfilesFile.load(resolve_home(init_kwargs))
    profile = profiles.selected_name()
    values = profiles.values(profile)  # an unknown HEADRACE_PROFILE is an error, not a silent default
    return [
        ("argument", InitSettingsSource(settings_cls, init_kwargs=dict(init_kwargs))),
        ("environment", EnvSettingsSource(settings_cls, case_sensitive=False, env_prefix=ENV_PREFIX)),
        (
            DOTENV_FILE,
            DotEnvSettingsSource(settings_cls, env_file=DOTENV_FILE, case_sensitive=False, env_prefix=ENV_PREFIX),
        ),
        (f"profile {profile!r}", ProfileSettingsSource(settings_cls, values, profile)),
    ]
