"""docs/settings.md documents every setting, and its generated tables match the model."""

from __future__ import annotations

from pathlib import Path

from headrace.settings import Settings, env_name
from headrace.settings.reference import render

DOCS = Path(__file__).resolve().parents[3] / "docs" / "settings.md"


def test_every_setting_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    missing = [env_name(name) for name in Settings.model_fields if f"`{env_name(name)}`" not in text]
    assert not missing, f"docs/settings.md does not mention {missing}"


def test_the_generated_tables_are_current() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert render(text) == text, (
        "docs/settings.md is out of date: run `uv run python -m headrace.settings.reference --write docs/settings.md`"
    )
