"""Fixtures for the plugin-system tests: real plugin distributions in a temporary folder.

``plugin_site`` writes dist-info plugins with :func:`headrace.testing.plugins.write_plugin_distribution`.
In-process tests load them with ``plugin_site.entry_points()`` (the folder is put on ``sys.path``);
``run_headrace`` and ``run_python`` run a real subprocess with ``PYTHONPATH`` at that folder and
``HEADRACE_HOME`` at a temporary directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, distributions, entry_points
from pathlib import Path
from typing import Any

import pytest

from headrace.plugins.manager import ENTRY_POINT_GROUP, HeadracePluginManager, build_plugin_manager
from headrace.testing.plugins import write_plugin_distribution

# Written into plugin modules that must never be imported: importing them leaves a marker file.
IMPORT_MARKER = "import pathlib\npathlib.Path(__file__).with_name(__name__ + '.imported').touch()\n"

GOOD_PLUGIN = """
from headrace.plugins import hookimpl
from headrace.plugins.types import StorageBackend

@hookimpl
def headrace_storage_backends():
    return [StorageBackend(name="good-store", implementation="good_store_impl:make_filesystem")]
"""


def builtin_entry_points() -> list[EntryPoint]:
    """The core's own entry points (the built-ins), without any other installed plugin."""
    return [point for point in entry_points(group=ENTRY_POINT_GROUP) if point.dist and point.dist.name == "headrace"]


def foreign_distributions(site: Path) -> list[str]:
    """Installed plugin distributions other than the core (workspace members), disabled in subprocesses.

    The tests here are about the plugins they write themselves (in ``site``, left out here); disabling
    the others (which are then never imported) keeps a half-finished sibling plugin from changing the
    outcome.
    """
    path = [entry for entry in sys.path if Path(entry or ".").resolve() != site.resolve()]
    return sorted(
        {
            dist.metadata["Name"]
            for dist in distributions(path=path)
            if dist.entry_points.select(group=ENTRY_POINT_GROUP) and dist.metadata["Name"] != "headrace"
        }
    )


@dataclass
class PluginSite:
    """A folder of real plugin distributions, discoverable by importlib.metadata."""

    path: Path
    modules: list[str] = field(default_factory=list)

    def add(
        self,
        distribution: str,
        source: str,
        *,
        entry_point: str | None = None,
        version: str = "1.0.0",
        requires: Sequence[str] = (),
    ) -> str:
        """Write a plugin distribution; returns its (unique) module name."""
        module = f"hr_{distribution.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
        write_plugin_distribution(
            self.path,
            distribution,
            module=module,
            source=textwrap.dedent(source),
            entry_point=entry_point,
            version=version,
            requires=requires,
        )
        self.modules.append(module)
        return module

    def imported(self, module: str) -> bool:
        """Whether a module written with IMPORT_MARKER was ever imported, by any process."""
        return (self.path / f"{module}.imported").exists()

    def entry_points(self) -> list[EntryPoint]:
        """The ``headrace`` entry points of this folder's distributions, each bound to its distribution."""
        points: list[EntryPoint] = []
        for dist in sorted(distributions(path=[str(self.path)]), key=lambda d: d.metadata["Name"]):
            points.extend(dist.entry_points.select(group=ENTRY_POINT_GROUP))
        return points

    def manager(self, *, strict: bool = False, disabled: Sequence[str] = ()) -> HeadracePluginManager:
        """A manager loaded from the built-ins plus this folder's plugins, in-process."""
        return build_plugin_manager(
            strict=strict, disabled=disabled, points=[*builtin_entry_points(), *self.entry_points()]
        )


@pytest.fixture
def plugin_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PluginSite]:
    site = PluginSite(tmp_path / "site")
    site.path.mkdir()
    monkeypatch.syspath_prepend(str(site.path))
    yield site
    for module in site.modules:
        sys.modules.pop(module, None)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class Runner:
    """Runs real subprocesses that discover ``site``'s plugins, with a private ``HEADRACE_HOME``."""

    site: Path
    home: Path
    cwd: Path

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("HEADRACE_")}
        env["PYTHONPATH"] = str(self.site)
        env["HEADRACE_HOME"] = str(self.home)
        env["NO_COLOR"] = "1"
        env["COLUMNS"] = "200"
        extra = dict(extra or {})
        disabled = [
            *foreign_distributions(self.site),
            *filter(None, extra.pop("HEADRACE_PLUGINS_DISABLED", "").split(",")),
        ]
        if disabled:
            env["HEADRACE_PLUGINS_DISABLED"] = ",".join(disabled)
        env.update(extra)
        return env

    def run(self, argv: Sequence[str], env: dict[str, str] | None = None) -> Result:
        completed = subprocess.run(
            [sys.executable, *argv],
            env=self.env(env),
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return Result(completed.returncode, completed.stdout, completed.stderr)

    def headrace(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return self.run(["-m", "headrace.cli.main", *args], env)

    def python(self, code: str, env: dict[str, str] | None = None) -> Result:
        return self.run(["-c", textwrap.dedent(code)], env)

    def listing(self, env: dict[str, str] | None = None) -> dict[str, Any]:
        """``headrace plugins list --json``, asserting it exits 0; plugins keyed by distribution and by name.

        The core has several built-in plugins, so ``by_distribution["headrace"]`` is only one of them:
        look the built-ins up in ``by_name``.
        """
        result = self.headrace("plugins", "list", "--json", env=env)
        assert result.returncode == 0, result.stderr
        data: dict[str, Any] = result.json()
        data["by_distribution"] = {plugin["distribution"]: plugin for plugin in data["plugins"]}
        data["by_name"] = {plugin["name"]: plugin for plugin in data["plugins"]}
        return data


@pytest.fixture
def runner(plugin_site: PluginSite, tmp_path: Path) -> Runner:
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    return Runner(site=plugin_site.path, home=home, cwd=work)
