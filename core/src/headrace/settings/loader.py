"""The :class:`Settings` model assembled from its groups, and the functions that load and explain it.

This is the part of :mod:`headrace.settings` that needs pydantic-settings; the package imports it on
first use of one of these names.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Mapping
from typing import Any, Union, get_args, get_origin

from pydantic import ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from headrace.settings.bootstrap import DEFAULT, ENV_PREFIX, env_name
from headrace.settings.errors import SettingProblem, SettingsError
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
from headrace.settings.profiles import ProfileError
from headrace.settings.sources import ordered_sources

MASK = "********"


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

    # defer_build off again (the groups defer theirs): the model is validated as soon as it is imported.
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", validate_default=True, defer_build=False)

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

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any, info: ValidationInfo) -> Any:
        """``HEADRACE_API_URL=`` unsets an optional setting, even one that a profile sets."""
        if isinstance(value, str) and not value.strip() and info.field_name in _OPTIONAL_FIELDS:
            return None
        return value


def _accepts_none(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType) and type(None) in get_args(annotation)


_OPTIONAL_FIELDS = frozenset(name for name, field in Settings.model_fields.items() if _accepts_none(field.annotation))


def field_for_env_name(name: str) -> str:
    """Map ``HEADRACE_API_URL`` (or ``api_url``) to the field name, or raise a helpful SettingsError."""
    key = name.strip()
    if key.upper().startswith(ENV_PREFIX):
        key = key[len(ENV_PREFIX) :]
    key = key.lower()
    if key not in Settings.model_fields:
        close = [env_name(field) for field in _close_fields(key)]
        hint = f"; did you mean {_one_of(close)}?" if close else "; see 'headrace config view --show-defaults'"
        raise SettingsError(f"unknown setting {name.strip()!r}{hint}")
    return key


def _close_fields(key: str) -> list[str]:
    """Fields spelled like ``key``, then fields that contain all of its words (``database_url``)."""
    fields = list(Settings.model_fields)
    close = difflib.get_close_matches(key, fields, n=3, cutoff=0.7)
    words = set(key.split("_")) - {""}
    if words:
        close += sorted((f for f in fields if words <= set(f.split("_")) and f not in close), key=len)
    return close[:3]


def _one_of(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def is_secret(field_name: str) -> bool:
    """Whether a field holds a secret, which is never shown in clear."""
    field = Settings.model_fields.get(field_name)
    return field is not None and "SecretStr" in repr(field.annotation)


def get_settings(**overrides: Any) -> Settings:
    """Load the settings now, from every source. Cheap enough to call at each program edge.

    Keyword arguments take precedence over every other source. Raises :class:`SettingsError`, with
    one line per invalid setting, when a value cannot be used.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise _describe(exc, overrides) from None
    except ProfileError as exc:
        raise SettingsError(str(exc)) from None
    except SourceError as exc:  # a source could not decode a value; the models avoid this, but be safe
        raise SettingsError(f"invalid settings: {exc}") from None


def setting_origins(**overrides: Any) -> dict[str, str]:
    """For each field, the label of the source its value comes from (``default`` when none sets it)."""
    layers = _layers(overrides)
    return {
        name: next((label for label, values in layers if name in values), DEFAULT) for name in Settings.model_fields
    }


def _layers(overrides: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Each source's values, highest precedence first."""
    try:
        return [(label, dict(source())) for label, source in ordered_sources(Settings, overrides)]
    except ProfileError as exc:
        raise SettingsError(str(exc)) from None


def _describe(exc: ValidationError, overrides: Mapping[str, Any]) -> SettingsError:
    """One line per invalid setting: the variable, its value as given, its source, and what was expected."""
    try:
        layers = _layers(overrides)
    except Exception:  # the sources themselves failed; the pydantic message still says enough
        layers = []
    messages: dict[str, dict[str, list[str]]] = {}  # field -> message -> offending items
    items: dict[str, Any] = {}
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "?"
        offending = messages.setdefault(field, {}).setdefault(error["msg"].removeprefix("Value error, "), [])
        if len(error["loc"]) > 1:  # an item of a list, set or dict
            offending.append(repr(error.get("input")))
        items.setdefault(field, error.get("input"))
    problems = []
    for field, by_message in messages.items():
        text = "; ".join(
            f"{message} (item{'s' if len(bad) > 1 else ''} {', '.join(bad)})" if bad else message
            for message, bad in by_message.items()
        )
        origin, value = next(
            ((label, values[field]) for label, values in layers if field in values), (DEFAULT, items[field])
        )
        shown = repr(MASK) if is_secret(field) else repr(value)
        problems.append(SettingProblem(_name(field), shown, origin, text))
    return SettingsError.from_problems(problems)


def _name(field: str) -> str:
    return env_name(field) if field in Settings.model_fields else field


__all__ = [
    "MASK",
    "Settings",
    "field_for_env_name",
    "get_settings",
    "is_secret",
    "setting_origins",
]
