"""Plugin discovery and the plugin manager.

The manager is built once, lazily, by :func:`get_plugin_manager` (never at import time). It loads each
entry point of the ``headrace`` group on its own, so that one broken plugin is recorded, warned about
once and skipped while the host keeps working. Built-in implementations are registered through the
core's own entry points and therefore appear in listings like any other plugin.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import re
import threading
import types
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

_warned: set[str] = set()
_warned_lock = threading.Lock()


def _warn_once(message: str) -> None:
    """Log ``message`` as a warning the first time this process sees it (managers may be rebuilt)."""
    with _warned_lock:
        if message in _warned:
            return
        _warned.add(message)
    logger.warning("%s", message)


class HeadracePluginManager(pluggy.PluginManager):
    """pluggy's manager plus per-plugin isolation, records, name selection and conflict detection."""

    def __init__(self, *, strict: bool = False, disabled: Iterable[str] = ()) -> None:
        super().__init__(PROJECT_NAME)
        self.add_hookspecs(HeadraceSpecs)
        self.strict = strict
        self.disabled = {_normalize(name) for name in disabled if name.strip()}
        self.records: dict[str, PluginRecord] = {}
        self._registered: dict[str, PluginRecord] = {}  # pluggy's plugin name -> its record
        self._conflicts: dict[tuple[str, str], NameConflict] = {}
        self._collected: dict[str, list[tuple[PluginRecord, Registration]]] = {}
        self._lock = threading.RLock()
        self._parsed_opts: tuple[object, dict[str, Any]] | None = None

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
        # Parse the METADATA file once: each of dist.name, .version and .requires would read it again.
        metadata = dist.metadata if dist is not None else None
        record = self._add_record(
            PluginRecord(
                name=point.name,
                distribution=metadata["Name"] if metadata is not None else None,
                version=metadata["Version"] if metadata is not None else None,
                reference=point.value,
            )
        )
        # Disabled plugins are never imported, not even to find out whether they would work.
        if _normalize(point.name) in self.disabled or (
            record.distribution and _normalize(record.distribution) in self.disabled
        ):
            record.status = PluginStatus.DISABLED
            return
        # Two entry points with one name: which one is found first depends on the file system, so
        # neither wins. Disabling one of them (by distribution) settles it.
        others = [
            other
            for other in self.records.values()
            if other.name == point.name and other is not record and other.status is not PluginStatus.DISABLED
        ]
        if others:
            owners = " and ".join(other.label() for other in [*others, record])
            error = f"the plugin name {point.name!r} is used by {owners}; uninstall or disable one of them"
            for other in others:
                if other.status is PluginStatus.ACTIVE:
                    self._fail(other, error)
            self._fail(record, error)
            return
        if metadata is not None:
            problem = _incompatibility(metadata.get_all("Requires-Dist") or [])
            if problem:
                record.status = PluginStatus.INCOMPATIBLE
                record.error = problem
                _warn_once(f"headrace plugin {record.label()} was not loaded: {problem}")
                self._raise_if_strict(record)
                return
        try:
            plugin = point.load()
        except Exception as exc:
            self._fail(record, f"import failed: {type(exc).__name__}: {exc}")
            return
        try:
            self._register(plugin, point.name, record)
        except PluginError as exc:
            self._fail(record, str(exc))
        except Exception as exc:  # anything odd about the object itself, such as a raising __getattr__
            self._fail(record, f"could not be registered: {type(exc).__name__}: {exc}")

    def _add_record(self, record: PluginRecord) -> PluginRecord:
        """Keep ``record`` under a key of its own: its name, or name@distribution when that is taken."""
        key = record.name if record.name not in self.records else f"{record.name}@{record.distribution}"
        while key in self.records:
            key += "'"
        self.records[key] = record
        return record

    def register(self, plugin: object, name: str | None = None) -> str | None:
        """Register a plugin object after checking that its hook implementations can ever run.

        Objects registered directly (tests, embedding applications) are listed like entry points,
        without a distribution. Problems raise :class:`PluginError` here instead of being recorded.
        """
        with self._lock:
            plugin_name = name or self.get_canonical_name(plugin)
            record = PluginRecord(name=plugin_name)
            registered = self._register(plugin, name, record)
            if registered is not None:
                self._add_record(record)
            return registered

    def get_canonical_name(self, plugin: object) -> str:
        """A module's or class's ``__name__``; for other objects their type and id (pluggy: only the id)."""
        name = getattr(plugin, "__name__", None)
        if isinstance(name, str) and name:
            return name
        return f"{type(plugin).__name__}-{id(plugin):x}"

    def _register(self, plugin: object, name: str | None, record: PluginRecord) -> str | None:
        with self._lock:
            label = name or self.get_canonical_name(plugin)
            hooks = self._validate_hookimpls(plugin, label)
            try:
                plugin_name = super().register(plugin, name)
            except (ValueError, pluggy.PluginValidationError) as exc:
                raise PluginError(f"plugin {label!r} could not be registered: {exc}") from exc
            finally:
                self._parsed_opts = None
            if plugin_name is not None:
                record.hooks = hooks
                self._registered[plugin_name] = record
            self._forget_collected()
            return plugin_name

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any | None:
        """Remove a plugin; a directly registered one (not from an entry point) also leaves the listing."""
        with self._lock:
            plugin_name = name if name is not None else self.get_name(plugin)
            removed = super().unregister(plugin, name)
            record = self._registered.pop(plugin_name, None) if plugin_name is not None else None
            if record is not None and record.reference is None and record.status is PluginStatus.ACTIVE:
                self.records = {key: value for key, value in self.records.items() if value is not record}
            self._forget_collected()
            return removed

    def _record_for(self, plugin_name: str) -> PluginRecord:
        """The record of a registered plugin (one registered behind headrace's back gets one now)."""
        record = self._registered.get(plugin_name)
        if record is None:
            record = self._registered[plugin_name] = self._add_record(PluginRecord(name=plugin_name))
        return record

    def check_pending(self) -> None:
        """Fail loudly on any hook implementation that no specification will ever call."""
        try:
            super().check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(str(exc)) from exc

    def parse_hookimpl_opts(self, plugin: object, name: str) -> Any:
        """pluggy's parsing, answered from what ``_validate_hookimpls`` already parsed for this plugin.

        Parsing is static attribute inspection and is the largest cost of discovery; pluggy's ``register``
        would repeat it for every attribute of every plugin.
        """
        parsed = self._parsed_opts
        if parsed is not None and parsed[0] is plugin:
            return parsed[1].get(name)
        return super().parse_hookimpl_opts(plugin, name)

    def _validate_hookimpls(self, plugin: object, label: str) -> list[str]:
        hooks: list[str] = []
        self._parsed_opts = None
        found: dict[str, Any] = {}
        for attribute in _candidate_attributes(plugin):
            options = self.parse_hookimpl_opts(plugin, attribute)
            if options is None:
                continue
            found[attribute] = options
            hook_name = options.get("specname") or attribute
            if hook_name not in HOOK_NAMES:
                close = difflib.get_close_matches(hook_name, HOOK_NAMES, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; headrace hooks are: {', '.join(HOOK_NAMES)}"
                raise PluginError(f"plugin {label!r} implements unknown hook {hook_name!r}{hint}")
            function = getattr(plugin, attribute)
            if inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function):
                raise PluginError(
                    f"plugin {label!r}: hook {hook_name!r} is 'async def', but headrace hooks are "
                    "synchronous (pluggy would never await it); make it a plain 'def' and do async work "
                    "in the implementation class it returns"
                )
            if options.get("wrapper") or options.get("hookwrapper"):
                raise PluginError(
                    f"plugin {label!r}: hook {hook_name!r} is declared as a wrapper, but headrace calls "
                    "each implementation on its own; drop wrapper=True/hookwrapper=True"
                )
            hooks.append(hook_name)
        self._parsed_opts = (plugin, found)
        return sorted(hooks)

    # -- failures -------------------------------------------------------------------------------

    def _fail(self, record: PluginRecord, error: str) -> None:
        record.status = PluginStatus.FAILED
        record.error = error
        record.provides = []
        registered = [name for name, other in self._registered.items() if other is record]
        for name in registered:
            self.unregister(name=name)
        self._forget_collected()
        _warn_once(f"headrace plugin {record.label()} failed and was skipped: {error}")
        self._raise_if_strict(record)

    def _raise_if_strict(self, record: PluginRecord) -> None:
        if self.strict:
            raise PluginError(
                f"plugin {record.label()} is {record.status.value}: {record.error} (HEADRACE_PLUGINS_STRICT is on)"
            )

    def _forget_collected(self) -> None:
        self._collected.clear()
        self._conflicts.clear()

    # -- provider hooks -------------------------------------------------------------------------

    def registrations(self, hook_name: str) -> list[Registration]:
        """Every registration object offered through a provider hook, in registration order."""
        return [registration for _, registration in self._collect(hook_name)]

    def select(self, hook_name: str, name: str) -> Registration:
        """The registration called ``name``; a clear error when it is unknown or ambiguous."""
        collected = self._collect(hook_name)
        with self._lock:
            conflict = self._conflicts.get((hook_name, name))
        if conflict is not None:
            raise PluginConflictError(conflict.message())
        for _, registration in collected:
            if registration.name == name:
                return registration
        kind = PROVIDER_HOOKS[hook_name].kind
        known = ", ".join(sorted({registration.name for _, registration in collected})) or "(none installed)"
        raise UnknownPluginName(f"unknown {kind} {name!r}; choose one of: {known}")

    def conflicts(self) -> list[NameConflict]:
        """Name conflicts across every provider hook (collecting them all if needed)."""
        with self._lock:
            # A plugin failing in one hook forgets what the others collected: go round until stable.
            while not all(hook_name in self._collected for hook_name in PROVIDER_HOOKS):
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
            record = self._record_for(impl.plugin_name)
            try:
                items = _registrations_from(hook_name, expected, impl.function())
            except Exception as exc:
                self._fail(record, f"{hook_name} raised {type(exc).__name__}: {exc}")
                return  # the plugin is gone now; collect again without it
            collected.extend((record, item) for item in items)
        self._record_provides(hook_name, collected)
        self._record_conflicts(hook_name, collected)
        self._collected[hook_name] = collected

    def _record_provides(self, hook_name: str, collected: Sequence[tuple[PluginRecord, Registration]]) -> None:
        kind = PROVIDER_HOOKS[hook_name].kind
        for record in self.records.values():
            record.provides = [entry for entry in record.provides if not entry.startswith(f"{kind}:")]
        for record, registration in collected:
            entry = f"{kind}:{registration.name}"
            if entry not in record.provides:
                record.provides.append(entry)

    def _record_conflicts(self, hook_name: str, collected: Sequence[tuple[PluginRecord, Registration]]) -> None:
        owners: dict[str, list[PluginRecord]] = {}
        for record, registration in collected:
            plugins = owners.setdefault(registration.name, [])
            if record not in plugins:
                plugins.append(record)
        for name, plugins in owners.items():
            if len(plugins) > 1:
                conflict = NameConflict(hook=hook_name, name=name, plugins=tuple(plugins))
                _warn_once(f"headrace plugin conflict: {conflict.message()}")
                self._conflicts[(hook_name, name)] = conflict
                if self.strict:
                    raise PluginConflictError(f"{conflict.message()} (HEADRACE_PLUGINS_STRICT is on)")

    # -- event hooks ----------------------------------------------------------------------------

    def fire(self, hook_name: str, **kwargs: Any) -> None:
        """Call every implementation of an event hook; one that raises is reported, never propagated.

        In strict mode the first exception is raised as a :class:`PluginError` instead.
        """
        if hook_name not in EVENT_HOOKS:
            raise ValueError(f"{hook_name!r} is not an event hook; choose one of: {', '.join(EVENT_HOOKS)}")
        caller = getattr(self.hook, hook_name)
        expected = set(caller.spec.argnames)
        if set(kwargs) != expected:
            raise TypeError(
                f"{hook_name} takes the keyword arguments {', '.join(sorted(expected)) or '(none)'}; "
                f"got {', '.join(sorted(kwargs)) or '(none)'}"
            )
        for impl in caller.get_hookimpls():
            try:
                result = impl.function(*[kwargs[arg] for arg in impl.argnames])
                if inspect.isawaitable(result):
                    if inspect.iscoroutine(result):
                        result.close()  # never awaited; closing it avoids a second, confusing warning
                    raise TypeError(f"{hook_name} returned an awaitable, but hooks are synchronous")
            except Exception as exc:
                record = self._record_for(impl.plugin_name)
                record.event_errors += 1
                if record.event_errors == 1:
                    logger.warning("headrace plugin %s raised in %s", record.label(), hook_name, exc_info=True)
                if self.strict:
                    raise PluginError(
                        f"plugin {record.label()} raised in {hook_name}: {type(exc).__name__}: {exc} "
                        "(HEADRACE_PLUGINS_STRICT is on)"
                    ) from exc

    # -- listing --------------------------------------------------------------------------------

    def collect_all(self) -> list[PluginRecord]:
        """Run every provider hook so that each record says what it provides and what went wrong."""
        self.conflicts()
        return sorted(self.records.values(), key=lambda record: (record.name, record.distribution or ""))


def _registrations_from(hook_name: str, expected: type[Registration], result: object) -> list[Registration]:
    """Check what a provider hookimpl returned: an iterable of ``expected`` objects (or ``None``)."""
    if result is None:
        return []
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()
        raise TypeError(f"{hook_name} returned an awaitable, but hooks are synchronous")
    if isinstance(result, Registration):
        raise TypeError(f"{hook_name} must return a list of {expected.__name__} objects, not a single one")
    if isinstance(result, (str, bytes)) or not isinstance(result, Iterable):
        raise TypeError(f"{hook_name} must return a list of {expected.__name__} objects, got {type(result).__name__}")
    items = list(result)
    for item in items:
        if not isinstance(item, expected):
            raise TypeError(f"{hook_name} must return {expected.__name__} objects, got {type(item).__name__}")
    return items


def _candidate_attributes(plugin: object) -> list[str]:
    """Names that could hold a hook implementation. Of a module only its routines: pluggy accepts
    nothing else there, and a plugin module's namespace is mostly imports."""
    if isinstance(plugin, types.ModuleType):
        return [name for name, value in vars(plugin).items() if inspect.isroutine(value)]
    return dir(plugin)


def _normalize(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


_NAMES_HEADRACE = re.compile(r"^\s*headrace(?![\w.-])", re.IGNORECASE)
"""A requirement line about the core itself (not ``headrace-aws``): only those need parsing."""


def _incompatibility(requirements: Sequence[str]) -> str | None:
    """Why a distribution's ``headrace`` requirement excludes the installed core, if it does."""
    relevant = [line for line in requirements if _NAMES_HEADRACE.match(line)]
    if not relevant:
        return None  # packaging's parser costs tens of milliseconds to import: skip it when we can
    from packaging.requirements import InvalidRequirement, Requirement

    from headrace import __version__

    for line in relevant:
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


_manager: HeadracePluginManager | None = None
_manager_lock = threading.Lock()


def get_plugin_manager() -> HeadracePluginManager:
    """The process-wide manager, built on first use from the current settings."""
    global _manager  # noqa: PLW0603 - the one process-wide instance, built lazily
    with _manager_lock:
        if _manager is None:
            from headrace.settings import get_settings

            settings = get_settings()
            _manager = build_plugin_manager(strict=settings.plugins_strict, disabled=settings.plugins_disabled)
        return _manager


def reset_plugin_manager() -> None:
    """Forget the process-wide manager, so that the next use rebuilds it (tests, changed settings)."""
    global _manager  # noqa: PLW0603
    with _manager_lock:
        _manager = None
