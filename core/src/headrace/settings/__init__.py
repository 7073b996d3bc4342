"""headrace's settings: pydantic-settings with the prefix ``HEADRACE_``, profiles and ``.env`` support.

Read settings at the edge of a program (``get_settings()``) and pass the object down; nothing deep in
headrace reads environment variables on its own. Invalid values raise :class:`SettingsError`, whose
message is one line per bad setting naming the variable, where the value came from, and what was
expected.

Importing this package is cheap: the model and the loading functions (which need pydantic-settings)
are imported on first use of :class:`Settings`, :func:`get_settings` and the other names from
:mod:`headrace.settings.loader`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headrace.settings.bootstrap import ENV_PREFIX, env_name, resolve_home, select_profile
from headrace.settings.errors import SettingProblem, SettingsError
from headrace.settings.profiles import ProfileError, ProfilesFile

if TYPE_CHECKING:
    from headrace.settings.loader import Settings, field_for_env_name, get_settings, is_secret, setting_origins

__all__ = [
    "ENV_PREFIX",
    "ProfileError",
    "ProfilesFile",
    "SettingProblem",
    "Settings",
    "SettingsError",
    "env_name",
    "field_for_env_name",
    "get_settings",
    "is_secret",
    "resolve_home",
    "select_profile",
    "setting_origins",
]

_LAZY = frozenset({"Settings", "field_for_env_name", "get_settings", "is_secret", "setting_origins"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from headrace.settings import loader

        value = getattr(loader, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY)
