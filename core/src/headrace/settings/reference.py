"""The settings reference in ``docs/settings.md``, generated from the model so that it cannot drift.

``python -m headrace.settings.reference`` prints the tables; with ``--write docs/settings.md`` it
replaces the part of that file between the two marker comments. A test checks that the file matches.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from headrace.settings.bootstrap import env_name
from headrace.settings.loader import Settings, is_secret
from headrace.settings.models import (
    ApiSettings,
    ClientSettings,
    DatabaseSettings,
    HomeSettings,
    LoggingSettings,
    PluginSettings,
    RetentionSettings,
    ServerSettings,
)

BEGIN = "<!-- BEGIN GENERATED SETTINGS TABLES: python -m headrace.settings.reference --write docs/settings.md -->"
END = "<!-- END GENERATED SETTINGS TABLES -->"

GROUPS: list[tuple[str, type[BaseModel]]] = [
    ("General", HomeSettings),
    ("API client", ApiSettings),
    ("Client behaviour", ClientSettings),
    ("Logging", LoggingSettings),
    ("Server", ServerSettings),
    ("Server database", DatabaseSettings),
    ("Retention", RetentionSettings),
    ("Plugins", PluginSettings),
]


def default_text(name: str, field: FieldInfo) -> str:
    """The default as one would write it in the environment."""
    if name == "home":
        return "`~/.headrace`"
    if field.default_factory is not None:
        value: Any = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "(required)"
    else:
        value = field.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{'true' if value else 'false'}`"
    if isinstance(value, (set, list, tuple, dict)) and not value:
        return "empty"
    return f"`{value}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def tables() -> str:
    """One Markdown table per group of settings."""
    covered = {name for _, group in GROUPS for name in group.model_fields}
    missing = sorted(set(Settings.model_fields) - covered)
    if missing:  # a new group must be listed in GROUPS to appear in the reference
        raise RuntimeError(f"settings missing from the reference groups: {', '.join(missing)}")
    parts = []
    for title, group in GROUPS:
        rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
        for name, field in group.model_fields.items():
            meaning = field.description or ""
            if is_secret(name):
                meaning += " Secret: never shown in clear."
            rows.append(f"| `{env_name(name)}` | {default_text(name, field)} | {_cell(meaning)} |")
        parts.append(f"### {title}\n\n" + "\n".join(rows))
    return "\n\n".join(parts) + "\n"


def render(document: str) -> str:
    """``document`` with the part between the markers replaced by the current tables."""
    head, begin, rest = document.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"the document lacks the markers {BEGIN!r} and {END!r}")
    return f"{head}{BEGIN}\n\n{tables()}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print or update the settings reference.")
    parser.add_argument("--write", type=Path, help="update the tables in this Markdown file")
    args = parser.parse_args(argv)
    if args.write is None:
        sys.stdout.write(tables())
        return 0
    args.write.write_text(render(args.write.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
