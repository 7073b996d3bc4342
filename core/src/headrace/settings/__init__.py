"""headrace's settings: pydantic-settings with the prefix ``HEADRACE_``, profiles and ``.env`` support.

Read settings at the edge of a program (``get_settings()``) and pass the object down; nothing deep in
headrace reads environment variables on its own. Invalid values raise :class:`SettingsError`, whose
message is one line per bad setting naming the variable, where the value came from, and what was
expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from headrace.settings.models import (
    ApiSettings,
    ClientSettings,
    DatabaseSettings,
    HomeSettings,
    LoggingSettings,
    PluginSettings,
    RetentionSettings,
    ServerSettings,
)
from headrace.settings.profiles import ProfileError, ProfilesFile
from headrace.settings.sources import ENV_PREFIX, ordered_sources

__all__ = [
    "ProfileError",
    "ProfilesFile",
    "Settings",
    "SettingsError",
    "env_name",
    "field_for_env_name",
    "get_settings",
    "is_secret",
    "setting_origins",
]


class SettingsError(ValueError):
    """One or more settings have values that cannot be used; the message says which and why."""


class Settings(  # bases in reverse: pydantic lists the fields of the last base first
    PluginSettings,
    RetentionSettings,
    DatabaseSettings,
    ServerSettings,
    LoggingSettings,
    ClientSettings,
    ApiSettings,
    HomeSettings,
    BaseSettings,
):
    """All of headrace's settings. Field ``foo_bar`` is the environment variable ``HEADRACE_FOO_BAR``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", validate_default=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        init_kwargs = getattr(init_settings, "init_kwargs", {})
        return tuple(source for _, source in ordered_sources(settings_cls, init_kwargs))


def env_name(field_name: str) -> str:
    return f"{ENV_PREFIX}{field_name.upper()}"


def field_for_env_name(name: str) -> str:
    """Map ``HEADRACE_API_URL`` (or ``api_url``) to the field name, or raise a helpful SettingsError."""
    key = name.strip()
    if key.upper().startswith(ENV_PREFIX):
        key = key[len(ENV_PREFIX) :]
    key = key.lower()
    if key not in Settings.model_fields:
        import difflib

        close = difflib.get_close_matches(env_name(key), [env_name(f) for f in Settings.model_fields], n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise SettingsError(f"unknown setting {name!r}{hint}")
    return key


def is_secret(field_name: str) -> bool:
    """Whether a field holds a secret, which is never shown in clear."""
    field = Settings.model_fields.get(field_name)
    return field is not None and "SecretStr" in repr(field.annotation)


def get_settings(**overrides: Any) -> Settings:
    """Load the settings now, from every source. Cheap enough to call at each program edge."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, overrides)) from None
    except ProfileError as exc:
        raise SettingsError(str(exc)) from None


def setting_origins(**overrides: Any) -> dict[str, str]:
    """For each field, the label of the source its value comes from (``default`` when none sets it)."""
    layers = [(label, source()) for label, source in ordered_sources(Settings, overrides)]
    origins: dict[str, str] = {}
    for name in Settings.model_fields:
        origins[name] = next((label for label, values in layers if name in values), "default")
    return origins


def _describe(exc: ValidationError, overrides: Mapping[str, Any]) -> str:
    try:
        origins = setting_origins(**overrides)
    except Exception:  # the sources themselves failed; the pydantic message still says enough
        origins = {}
    lines = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "?"
        message = error["msg"].removeprefix("Value error, ")
        value = "'********'" if is_secret(field) else repr(error.get("input"))
        origin = origins.get(field, "unknown source")
        lines.append(f"invalid setting {env_name(field)}={value} (from {origin}): {message}")
    return "\n".join(lines)
