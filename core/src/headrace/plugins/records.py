"""What the plugin manager knows about each plugin: the rows of ``headrace plugins list``."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class PluginStatus(str, enum.Enum):
    ACTIVE = "active"
    DISABLED = "disabled"
    FAILED = "failed"
    INCOMPATIBLE = "incompatible"


@dataclass
class PluginRecord:
    """One plugin: an entry point in the ``headrace`` group, or an object registered directly.

    ``provides`` lists ``"kind:name"`` for each registration object its provider hooks returned;
    ``hooks`` the hooks it implements; ``event_errors`` how often one of its event hooks raised.
    ``error`` says why a plugin is failed or incompatible.
    """

    name: str
    distribution: str | None = None
    version: str | None = None
    reference: str | None = None
    status: PluginStatus = PluginStatus.ACTIVE
    error: str | None = None
    provides: list[str] = field(default_factory=list)
    hooks: list[str] = field(default_factory=list)
    event_errors: int = 0

    def label(self) -> str:
        """How messages name the plugin: entry point, distribution and version."""
        if self.distribution:
            return f"{self.name!r} (distribution {self.distribution} {self.version or '?'})"
        return f"{self.name!r}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "reference": self.reference,
            "status": self.status.value,
            "error": self.error,
            "provides": list(self.provides),
            "hooks": list(self.hooks),
            "event_errors": self.event_errors,
        }


@dataclass(frozen=True)
class NameConflict:
    """Two or more plugins offering the same name for one hook: selecting that name is an error."""

    hook: str
    name: str
    plugins: tuple[PluginRecord, ...]

    def message(self) -> str:
        owners = " and ".join(record.label() for record in self.plugins)
        return f"{self.hook}: the name {self.name!r} is offered by {owners}; disable one of them"

    def as_dict(self) -> dict[str, Any]:
        return {
            "hook": self.hook,
            "name": self.name,
            "plugins": [record.name for record in self.plugins],
            "distributions": [record.distribution for record in self.plugins],
            "message": self.message(),
        }
