"""``headrace plugins new``: write a plugin distribution from the template shipped inside core.

The template lives in ``headrace/plugins/template/`` as ordinary files whose names and contents use
``{{ name }}``-style placeholders; files ending in ``.tmpl`` lose that suffix when written (it keeps
the template's Python files from being imported, linted or collected as tests where they lie).
"""

from __future__ import annotations

import re
from pathlib import Path

from headrace import __version__

TEMPLATE_ROOT = Path(__file__).parent / "template"
PLUGIN_NAME = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")


class ScaffoldError(ValueError):
    """The plugin cannot be created; the message says why."""


def placeholders(name: str) -> dict[str, str]:
    major, minor, *_ = __version__.split(".")
    return {
        "name": name,
        "distribution": f"headrace-{name}",
        "module": f"headrace_{name.replace('-', '_')}",
        "protocol": name.replace("-", ""),
        "class_prefix": "".join(part.capitalize() for part in name.split("-")),
        "headrace_requirement": f"headrace>={major}.{minor},<{int(major) + 1}",
    }


def render(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{{ " + key + " }}", value)
    return text


def reserved_names() -> set[str]:
    """Names the core's own plugins use: a generated plugin taking one would conflict with the built-ins."""
    from headrace.plugins.builtin.storage import headrace_storage_backends

    names: set[str] = set()
    for backend in headrace_storage_backends():
        names.add(backend.name)
        names.update(backend.protocols)
    return names


def validate_name(name: str) -> dict[str, str]:
    """Check ``name`` and return the template's placeholder values for it."""
    if not PLUGIN_NAME.match(name):
        raise ScaffoldError(
            f"invalid plugin name {name!r}: use lower-case letters and digits separated by '-', "
            "starting with a letter (for example 'sftp' or 'team-alerts')"
        )
    if name.startswith("builtin"):
        raise ScaffoldError(f"invalid plugin name {name!r}: names starting with 'builtin' belong to headrace itself")
    values = placeholders(name)
    taken = reserved_names() & {name, values["protocol"]}
    if taken:
        raise ScaffoldError(
            f"invalid plugin name {name!r}: the storage backend {sorted(taken)[0]!r} is built into headrace; "
            "choose another name"
        )
    return values


def create_plugin(name: str, directory: Path | None = None) -> Path:
    """Write the plugin ``name`` into ``directory`` (default ``./headrace-NAME``) and return it."""
    values = validate_name(name)
    target = (directory or Path.cwd() / values["distribution"]).resolve()
    if target.exists() and not target.is_dir():
        raise ScaffoldError(f"{target} exists and is not a directory; choose another --dir")
    if target.exists() and any(target.iterdir()):
        raise ScaffoldError(f"{target} already exists and is not empty; choose another --dir")
    for source in sorted(TEMPLATE_ROOT.rglob("*")):
        if source.is_dir() or "__pycache__" in source.parts:
            continue
        relative = render(str(source.relative_to(TEMPLATE_ROOT)), values).removesuffix(".tmpl")
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(render(source.read_text(encoding="utf-8"), values), encoding="utf-8")
    return target
