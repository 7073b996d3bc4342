"""Build plugin managers and throwaway plugin distributions for tests.

``plugin_manager_with(obj, ...)`` gives a manager holding only the objects passed, without any
installed entry point, so a test sees exactly the plugins it registered.

``write_plugin_distribution(...)`` writes a real, importable distribution (module plus ``.dist-info``
with entry points and requirements) into a folder. Put that folder on ``sys.path`` or ``PYTHONPATH``
and ``importlib.metadata`` discovers it exactly as if pip had installed it.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from pathlib import Path

from headrace.plugins.manager import HeadracePluginManager

__all__ = ["plugin_manager_with", "write_plugin_distribution"]


def plugin_manager_with(*plugins: object, strict: bool = False) -> HeadracePluginManager:
    """A fresh manager holding only ``plugins`` (no entry points, so no built-ins either)."""
    manager = HeadracePluginManager(strict=strict)
    for plugin in plugins:
        manager.register(plugin)
    return manager


def write_plugin_distribution(
    site: Path,
    distribution: str,
    *,
    module: str,
    source: str,
    entry_point: str | None = None,
    version: str = "1.0.0",
    requires: Sequence[str] = (),
) -> Path:
    """Write ``module.py`` with ``source`` and a dist-info declaring the ``headrace`` entry point.

    ``entry_point`` defaults to the distribution name; ``requires`` are ``Requires-Dist`` lines, such
    as ``"headrace>=0.1"``. Returns the dist-info folder.
    """
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    dist_info = site / f"{re.sub(r'[-_.]+', '_', distribution)}-{version}.dist-info"
    dist_info.mkdir(exist_ok=True)
    metadata = ["Metadata-Version: 2.1", f"Name: {distribution}", f"Version: {version}"]
    metadata += [f"Requires-Dist: {line}" for line in requires]
    (dist_info / "METADATA").write_text("\n".join(metadata) + "\n", encoding="utf-8")
    (dist_info / "entry_points.txt").write_text(
        f"[headrace]\n{entry_point or distribution} = {module}\n", encoding="utf-8"
    )
    (dist_info / "RECORD").write_text("", encoding="utf-8")
    return dist_info
