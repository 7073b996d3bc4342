"""Where setting values come from, in order of precedence, and which source gave each value.

The order is: keyword arguments, environment variables, a ``.env`` file in the working directory,
the selected profile, and finally the defaults. The same ordered list serves both loading and
``headrace config view --show-sources``, so the explanation can never disagree with the behaviour.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
)

from headrace.settings.bootstrap import (
    ARGUMENT,
    DOTENV,
    DOTENV_FILE,
    ENV_PREFIX,
    ENVIRONMENT,
    HOME_VARIABLE,
    profile_label,
    resolve_home,
    select_profile,
)

__all__ = ["DOTENV_FILE", "ENV_PREFIX", "ProfileSettingsSource", "ordered_sources", "resolve_home"]


class ProfileSettingsSource(EnvSettingsSource):
    """Reads the selected profile's values with the exact parsing rules of environment variables.

    ``HEADRACE_HOME`` is ignored here: profiles live under it, so a profile cannot move it.
    """

    def __init__(self, settings_cls: type[BaseSettings], values: Mapping[str, str], profile: str) -> None:
        self._profile_values = {key.lower(): value for key, value in values.items() if key.upper() != HOME_VARIABLE}
        self.profile = profile
        super().__init__(settings_cls, case_sensitive=False, env_prefix=ENV_PREFIX)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return self._profile_values


def ordered_sources(
    settings_cls: type[BaseSettings], init_kwargs: Mapping[str, Any]
) -> list[tuple[str, PydanticBaseSettingsSource]]:
    """Every source with a label for people, highest precedence first."""
    selection = select_profile(init_kwargs)
    values = selection.values()  # an unknown HEADRACE_PROFILE is an error, not a silent default
    return [
        (ARGUMENT, InitSettingsSource(settings_cls, init_kwargs=dict(init_kwargs))),
        (ENVIRONMENT, EnvSettingsSource(settings_cls, case_sensitive=False, env_prefix=ENV_PREFIX)),
        (
            DOTENV,
            DotEnvSettingsSource(settings_cls, env_file=DOTENV_FILE, case_sensitive=False, env_prefix=ENV_PREFIX),
        ),
        (profile_label(selection.name), ProfileSettingsSource(settings_cls, values, selection.name)),
    ]
