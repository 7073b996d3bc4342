"""Profiles: named sets of settings kept in ``$HEADRACE_HOME/profiles.toml``.

The file is plain TOML so that people can read and edit it by hand::

    active = "default"

    [profiles.default]

    [profiles.prod]
    HEADRACE_API_URL = "https://headrace.example.com/api"

Values are stored as the strings one would put in the environment, and are parsed by the same
rules as environment variables. ``HEADRACE_PROFILE`` picks a profile for one process (see
:func:`headrace.settings.bootstrap.select_profile`). The file may hold API keys, so it is written
readable by its owner only.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

DEFAULT_PROFILE = "default"
PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ProfileError(ValueError):
    """A profile operation that cannot be carried out, with a message meant for the user."""


@dataclass
class ProfilesFile:
    """The parsed contents of ``profiles.toml``; write it back with :meth:`save`."""

    path: Path
    active: str = DEFAULT_PROFILE
    profiles: dict[str, dict[str, str]] = field(default_factory=lambda: {DEFAULT_PROFILE: {}})

    @classmethod
    def load(cls, home: Path) -> ProfilesFile:
        path = home / "profiles.toml"
        if not path.exists():
            return cls(path=path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ProfileError(f"cannot read {path}: {exc}") from exc
        profiles_table = data.get("profiles", {})
        if not isinstance(profiles_table, dict):
            raise ProfileError(f"{path}: [profiles] must be a table of tables")
        profiles = {
            str(name): {str(key): _as_text(value) for key, value in table.items()}
            for name, table in profiles_table.items()
            if isinstance(table, dict)
        }
        profiles.setdefault(DEFAULT_PROFILE, {})
        return cls(path=path, active=str(data.get("active", DEFAULT_PROFILE)), profiles=profiles)

    def save(self) -> None:
        """Write the file atomically (a temporary file renamed over it), readable by its owner only."""
        import tomli_w

        self.path.parent.mkdir(parents=True, exist_ok=True)
        document = {"active": self.active, "profiles": self.profiles}
        tmp = self.path.with_suffix(".toml.tmp")
        descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(tomli_w.dumps(document))
        tmp.replace(self.path)

    def selected_name(self, environ: Mapping[str, str] = os.environ) -> str:
        """The profile in force: ``HEADRACE_PROFILE`` if set in ``environ``, else the file's ``active`` entry.

        Prefer :func:`headrace.settings.bootstrap.select_profile`, which also reads ``.env``.
        """
        return environ.get("HEADRACE_PROFILE") or self.active

    def values(self, name: str) -> dict[str, str]:
        if name not in self.profiles:
            known = ", ".join(sorted(self.profiles))
            raise ProfileError(f"unknown profile {name!r}; known profiles: {known}")
        return self.profiles[name]

    def create(self, name: str, copy_from: str | None = None) -> None:
        if not PROFILE_NAME.match(name):
            raise ProfileError(f"invalid profile name {name!r}: use letters, digits, '.', '_' and '-'")
        if name in self.profiles:
            raise ProfileError(f"profile {name!r} already exists")
        self.profiles[name] = dict(self.values(copy_from)) if copy_from else {}

    def use(self, name: str) -> None:
        self.values(name)
        self.active = name

    def delete(self, name: str) -> None:
        self.values(name)
        if name == self.active:
            raise ProfileError(f"profile {name!r} is active; switch to another one first")
        del self.profiles[name]


def _as_text(value: object) -> str:
    """Profiles written by hand may hold TOML numbers, booleans, arrays or tables: keep them in the
    form an environment variable would have (arrays comma-separated, tables as JSON)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_as_text(item) for item in value)
    if isinstance(value, dict):
        import json

        return json.dumps(value)
    return str(value)
