"""headrace's plugin system: hook specifications, registration objects and the plugin manager.

Plugin authors need only :data:`hookimpl` and :mod:`headrace.plugins.types`. The manager is imported
on first use, so ``from headrace.plugins import hookimpl`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from headrace.plugins.errors import PluginConflictError, PluginError, UnknownPluginName
from headrace.plugins.hookspecs import hookimpl

if TYPE_CHECKING:
    from headrace.plugins.manager import HeadracePluginManager

__all__ = [
    "PluginConflictError",
    "PluginError",
    "UnknownPluginName",
    "get_plugin_manager",
    "hookimpl",
    "reset_plugin_manager",
]


def get_plugin_manager() -> HeadracePluginManager:
    """The process-wide plugin manager, built on first use."""
    from headrace.plugins.manager import get_plugin_manager as build

    return build()


def reset_plugin_manager() -> None:
    """Forget the process-wide plugin manager; the next use rebuilds it from the current settings."""
    from headrace.plugins.manager import reset_plugin_manager as reset

    reset()
