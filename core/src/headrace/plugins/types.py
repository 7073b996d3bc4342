"""Registration objects: what provider hooks return.

Each is a frozen, keyword-only dataclass with a validated lower-case ``name`` (what configuration
selects it by), a ``description`` (what ``headrace plugins list`` shows), and ``implementation``: a
lazy ``"package.module:attribute"`` reference that is imported only when the object is chosen.
Listing plugins therefore never imports a plugin's cloud SDK.

This module is a leaf: it imports nothing else from headrace, so plugins can import it cheaply.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = [
    "BlockType",
    "Infrastructure",
    "Notifier",
    "Registration",
    "StorageBackend",
    "TaskRunner",
    "TelemetryExporter",
    "load_reference",
]

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")
REFERENCE_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def load_reference(reference: str) -> Any:
    """Import ``"package.module:attr.sub"`` and return the attribute."""
    module_name, _, qualname = reference.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


@dataclass(frozen=True, kw_only=True)
class Registration:
    """Base of every registration object. Subclasses name their ``kind`` for messages and listings."""

    kind: ClassVar[str] = "registration"

    name: str
    implementation: str
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME_PATTERN.match(self.name):
            raise ValueError(
                f"invalid {self.kind} name {self.name!r}: use lower-case letters and digits, "
                "separated by single '-' or '_', starting with a letter (for example 'my-storage')"
            )
        if not isinstance(self.implementation, str) or not REFERENCE_PATTERN.match(self.implementation):
            raise ValueError(
                f"invalid implementation {self.implementation!r} for {self.kind} {self.name!r}: "
                "expected a lazy reference 'package.module:attribute'"
            )

    def load(self) -> Any:
        """Import and return the implementation. Only call this once the object has been chosen."""
        return load_reference(self.implementation)


@dataclass(frozen=True, kw_only=True)
class BlockType(Registration):
    """A block type: ``implementation`` names a ``headrace.blocks.Block`` subclass; ``name`` is its slug."""

    kind: ClassVar[str] = "block type"

    documentation_url: str | None = None
    code_example: str | None = None
    logo_url: str | None = None


@dataclass(frozen=True, kw_only=True)
class StorageBackend(Registration):
    """A result-storage backend for URLs with one of ``protocols`` (fsspec protocol names).

    ``implementation`` names a factory ``(url: str, **options) -> fsspec.AbstractFileSystem``;
    ``credentials_block`` is the slug of the block type holding credentials for it, if any.
    """

    kind: ClassVar[str] = "storage backend"

    protocols: tuple[str, ...] = field(default=())
    credentials_block: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "protocols", tuple(self.protocols) or (self.name,))


@dataclass(frozen=True, kw_only=True)
class Infrastructure(Registration):
    """Where flow runs are launched: ``implementation`` names a class with a job-config model, run and kill."""

    kind: ClassVar[str] = "infrastructure"


@dataclass(frozen=True, kw_only=True)
class Notifier(Registration):
    """A notification channel: ``implementation`` names a block type with ``notify(subject, body)``."""

    kind: ClassVar[str] = "notifier"


@dataclass(frozen=True, kw_only=True)
class TelemetryExporter(Registration):
    """Telemetry output: ``implementation`` names a class with ``setup(settings)`` and ``shutdown()``."""

    kind: ClassVar[str] = "telemetry exporter"


@dataclass(frozen=True, kw_only=True)
class TaskRunner(Registration):
    """How submitted tasks run: ``implementation`` names a ``TaskRunner`` subclass."""

    kind: ClassVar[str] = "task runner"
