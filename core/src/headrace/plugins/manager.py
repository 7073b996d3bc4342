"""Plugin discovery and the plugin manager.

The manager is built once, lazily, by :func:`get_plugin_manager` (never at import time). It loads each
entry point of the ``headrace`` group on its own, so that one broken plugin is recorded, warned about
once and skipped while the host keeps working. Built-in implementations are registered through the
core's own entry points and therefore appear in listings like any other plugin.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import logging
import threading
from collections.abc import Iterable, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Any, NoReturn

import pluggy

from headrace.plugins.errors import PluginConflictError, PluginError, UnknownPluginName
from headrace.plugins.hookspecs import EVENT_HOOKS, PROJECT_NAME, PROVIDER_HOOKS, HeadraceSpecs
from headrace.plugins.records import NameConflict, PluginRecord, PluginStatus
from headrace.plugins.types import Registration

logger = logging.getLogger("headrace.plugins")

ENTRY_POINT_GROUP = "headrace"
HOOK_NAMES: tuple[str, ...] = (*PROVIDER_HOOKS, *EVENT_HOOKS)


class HeadracePluginManager(pluggy.PluginManager):
    """pluggy's manager plus per-plugin isolation, records, name selection and conflict detection."""

    def __init__(self, *, strict: bool = False, disabled: Iterable[str] = ()) -> None:
        super().__init__(PROJECT_NAME)
        self.add_hookspecs(HeadraceSpecs)
        self.strict = strict
        self.disabled = {_normalize(name) for name in disabled}
        self.records: dict[str, PluginRecord] = {}
        self._conflicts: dict[tuple[str, str], NameConflict] = {}
        self._collected: dict[str, list[tuple[PluginRecord, Registration]]] = {}
        self._lock = threading.RLock()

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "the headrace plugin manager cannot be pickled; in another process call "
            "headrace.plugins.get_plugin_manager(), which rebuilds it from the same settings"
        )

    # -- loading --------------------------------------------------------------------------------

    def load_entry_points(self, points: Iterable[EntryPoint]) -> None:
        """Load each entry point on its own; failures are recorded (or raised in strict mode)."""
        for point in points:
            self._load_entry_point(point)
        self.check_pending()

    def _load_entry_point(self, point: EntryPoint) -> None:
        dist = point.dist
        record = PluginRecord(
            name=point.name,
            distribution=dist.name if dist else None,
            version=dist.version if dist else None,
            reference=point.value,
        )
        if point.name in self.records:
            other = self.records[point.name]
            self.records[f"{point.name}@{record.distribution}"] = record
            self._fail(record, f"the plugin name {point.name!r} is already used by {other.label()}")
            return
        self.records[point.name] = record
        if _normalize(point.name) in self.disabled or (
            record.distribution and _normalize(record.distribution) in self.disabled
        ):
            record.status = PluginStatus.DISABLED
            return
        if dist is not None:
            problem = _incompatibility(dist.requires or [])
            if problem:
                record.status = PluginStatus.INCOMPATIBLE
                record.error = problem
                logger.warning("headrace plugin %s was not loaded: %s", record.label(), problem)
                self._raise_if_strict(record)
                return
        try:
            plugin = point.load()
        except Exception as exc:
            self._fail(record, f"import failed: {type(exc).__name__}: {exc}")
            return
        try:
            self.register(plugin, name=point.name)
        except PluginError as exc:
            self._fail(record, str(exc))

    def register(self, plugin: object, name: str | None = None) -> str | None:
        """Register a plugin object after checking that its hook implementations can ever run."""
        with self._lock:
            self._validate_hookimpls(plugin, name or self.get_canonical_name(plugin))
            try:
                plugin_name = super().register(plugin, name)
            except (ValueError, pluggy.PluginValidationError) as exc:
                raise PluginError(str(exc)) from exc
            if plugin_name is not None:
                self.records.setdefault(plugin_name, PluginRecord(name=plugin_name))
            self._collected.clear()
            self._conflicts.clear()
            return plugin_name

    def _validate_hookimpls(self, plugin: object, plugin_name: str) -> None:
        for attribute in dir(plugin):
            if self.parse_hookimpl_opts(plugin, attribute) is None:
                continue
            function = getattr(plugin, attribute)
            if attribute not in HOOK_NAMES:
                close = difflib.get_close_matches(attribute, HOOK_NAMES, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise PluginError(f"plugin {plugin_name!r} implements unknown hook {attribute!r}{hint}")
            if inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function):
                raise PluginError(
                    f"plugin {plugin_name!r}: hook {attribute!r} is 'async def', but headrace hooks are "
                    "synchronous (pluggy would never await it); make it a plain 'def' and do async work "
                    "in the implementation class it returns"
                )

    # -- failures -------------------------------------------------------------------------------

    def _fail(self, record: PluginRecord, error: str) -> None:
        record.status = PluginStatus.FAILED
        record.error = error
        if self.records.get(record.name) is record and self.has_plugin(record.name):
            self.unregister(name=record.name)
            self._collected.clear()
            self._conflicts.clear()
        logger.warning("headrace plugin %s failed and was skipped: %s", record.label(), error)
        self._raise_if_strict(record)

    def _raise_if_strict(self, record: PluginRecord) -> None:
        if self.strict:
            raise PluginError(
                f"plugin {record.label()} is {record.status.value}: {record.error} (HEADRACE_PLUGINS_STRICT is on)"
            )

    # -- provider hooks -------------------------------------------------------------------------

    def registrations(self, hook_name: str) -> list[Registration]:
        """Every registration object offered through a provider hook, in registration order."""
        return [registration for _, registration in self._collect(hook_name)]

    def select(self, hook_name: str, name: str) -> Registration:
        """The registration called ``name``; a clear error when it is unknown or ambiguous."""
        offers = [(record, reg) for record, reg in self._collect(hook_name) if reg.name == name]
        conflict = self._conflicts.get((hook_name, name))
        if conflict is not None:
            raise PluginConflictError(conflict.message())
        if not offers:
            kind = PROVIDER_HOOKS[hook_name].kind  # type: ignore[attr-defined]
            known = ", ".join(sorted(reg.name for _, reg in self._collect(hook_name))) or "(none installed)"
            raise UnknownPluginName(f"unknown {kind} {name!r}; choose one of: {known}")
        return offers[0][1]

    def conflicts(self) -> list[NameConflict]:
        """Name conflicts across every provider hook (collecting them all if needed)."""
        for hook_name in PROVIDER_HOOKS:
            self._collect(hook_name)
        return list(self._conflicts.values())

    def _collect(self, hook_name: str) -> list[tuple[PluginRecord, Registration]]:
        if hook_name not in PROVIDER_HOOKS:
            raise ValueError(f"{hook_name!r} is not a provider hook; choose one of: {', '.join(PROVIDER_HOOKS)}")
        with self._lock:
            while hook_name not in self._collected:
                self._collect_once(hook_name)
            return self._collected[hook_name]

    def _collect_once(self, hook_name: str) -> None:
        expected = PROVIDER_HOOKS[hook_name]
        collected: list[tuple[PluginRecord, Registration]] = []
        for impl in getattr(self.hook, hook_name).get_hookimpls():
            record = self.records[impl.plugin_name]
            try:
                result = impl.function()
                items = list(result or ())
                for item in items:
                    if not isinstance(item, expected):
                        raise TypeError(
                            f"{hook_name} must return {expected.__name__} objects, got {type(item).__name__}"
                        )
            except Exception as exc:
                self._fail(record, f"{hook_name} raised {type(exc).__name__}: {exc}")
                return  # the plugin is gone now; collect again without it
            collected.extend((record, item) for item in items)
        self._record_provides(hook_name, collected)
        self._record_conflicts(hook_name, collected)
        self._collected[hook_name] = collected

    def _record_provides(self, hook_name: str, collected: Sequence[tuple[PluginRecord, Registration]]) -> None:
        kind = PROVIDER_HOOKS[hook_name].kind  # type: ignore[attr-defined]
        for record in self.records.values():
            record.provides = [entry for entry in record.provides if not entry.startswith(f"{kind}:")]
        for record, registration in collected:
            record.provides.append(f"{kind}:{registration.name}")

    def _record_conflicts(self, hook_name: str, collected: Sequence[tuple[PluginRecord, Registration]]) -> None:
        owners: dict[str, list[PluginRecord]] = {}
        for record, registration in collected:
            plugins = owners.setdefault(registration.name, [])
            if record not in plugins:
                plugins.append(record)
        for name, plugins in owners.items():
            if len(plugins) > 1:
                conflict = NameConflict(hook=hook_name, name=name, plugins=tuple(plugins))
                if (hook_name, name) not in self._conflicts:
                    logger.warning("headrace plugin conflict: %s", conflict.message())
                self._conflicts[(hook_name, name)] = conflict
                if self.strict:
                    raise PluginConflictError(f"{conflict.message()} (HEADRACE_PLUGINS_STRICT is on)")

    # -- event hooks ----------------------------------------------------------------------------

    def fire(self, hook_name: str, **kwargs: Any) -> None:
        """Call every implementation of an event hook; one that raises is reported, never propagated."""
        if hook_name not in EVENT_HOOKS:
            raise ValueError(f"{hook_name!r} is not an event hook; choose one of: {', '.join(EVENT_HOOKS)}")
        for impl in getattr(self.hook, hook_name).get_hookimpls():
            try:
                impl.function(*[kwargs[arg] for arg in impl.argnames])
            except Exception:
                record = self.records[impl.plugin_name]
                record.event_errors += 1
                if record.event_errors == 1:
                    logger.warning("headrace plugin %s raised in %s", record.label(), hook_name, exc_info=True)
                if self.strict:
                    raise

    # -- listing --------------------------------------------------------------------------------

    def collect_all(self) -> list[PluginRecord]:
        """Run every provider hook so that each record says what it provides and what went wrong."""
        self.conflicts()
        return sorted(self.records.values(), key=lambda record: record.name)


def _normalize(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def _incompatibility(requirements: Sequence[str]) -> str | None:
    """Why a distribution's ``headrace`` requirement excludes the installed core, if it does."""
    from packaging.requirements import InvalidRequirement, Requirement

    from headrace import __version__

    for line in requirements:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if _normalize(requirement.name) != PROJECT_NAME:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        if not requirement.specifier.contains(__version__, prereleases=True):
            return f"requires headrace{requirement.specifier}, but headrace {__version__} is installed"
    return None


def build_plugin_manager(
    *, strict: bool = False, disabled: Iterable[str] = (), points: Iterable[EntryPoint] | None = None
) -> HeadracePluginManager:
    """A new manager loaded from ``points`` (default: every installed ``headrace`` entry point)."""
    manager = HeadracePluginManager(strict=strict, disabled=disabled)
    manager.load_entry_points(entry_points(group=ENTRY_POINT_GROUP) if points is None else points)
    return manager


@functools.cache
def get_plugin_manager() -> HeadracePluginManager:
    """The process-wide manager, built on first use from the current settings."""
    from headrace.settings import get_settings

    settings = get_settings()
    return build_plugin_manager(strict=settings.plugins_strict, disabled=settings.plugins_disabled)


def reset_plugin_manager() -> None:
    """Forget the process-wide manager, so that the next use rebuilds it (tests, changed settings)."""
    get_plugin_manager.cache_clear()
