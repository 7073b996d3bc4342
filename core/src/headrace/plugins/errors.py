"""Errors the plugin system raises; each message says what to do about it."""

from __future__ import annotations


class PluginError(Exception):
    """A plugin could not be used (and, in strict mode, any plugin failure)."""


class UnknownPluginName(PluginError, LookupError):
    """Configuration names something no active plugin offers."""


class PluginConflictError(PluginError):
    """Configuration names something that two plugins offer."""
