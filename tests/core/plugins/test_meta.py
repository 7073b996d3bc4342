"""Meta-tests: the hook contract cannot drift from its documentation or its tests."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from headrace.plugins.hookspecs import EVENT_HOOKS, PROVIDER_HOOKS, HeadraceSpecs

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs" / "plugins.md"
HOOK_TESTS = Path(__file__).with_name("test_hooks.py")


def hook_names() -> list[str]:
    """Every hook specification, read from the class rather than from the lists next to it."""
    return [name for name, member in vars(HeadraceSpecs).items() if callable(member) and name.startswith("headrace_")]


def full_signature(hook_name: str) -> str:
    """``headrace_cli(app: typer.Typer) -> None``: the spec's signature without ``self``, as written."""
    signature = inspect.signature(getattr(HeadraceSpecs, hook_name))
    parameters = [parameter for parameter in signature.parameters.values() if parameter.name != "self"]
    # The specs use postponed annotations, so inspect quotes them; the documentation does not.
    return f"{hook_name}{signature.replace(parameters=parameters)}".replace("'", "")


def test_hook_lists_match_the_specification() -> None:
    assert sorted(hook_names()) == sorted([*PROVIDER_HOOKS, *EVENT_HOOKS])


def test_full_signature_is_derived_from_the_spec() -> None:
    assert full_signature("headrace_cli") == "headrace_cli(app: typer.Typer) -> None"
    assert full_signature("headrace_block_types") == "headrace_block_types() -> Iterable[BlockType]"


@pytest.mark.parametrize("hook_name", hook_names())
def test_every_hook_is_documented_with_its_full_signature(hook_name: str) -> None:
    headings = [line for line in DOCS.read_text(encoding="utf-8").splitlines() if line.startswith("#")]
    signature = full_signature(hook_name)
    assert any(signature in heading for heading in headings), f"docs/plugins.md needs a heading with {signature!r}"


@pytest.mark.parametrize("hook_name", hook_names())
def test_every_hook_has_a_test(hook_name: str) -> None:
    tree = ast.parse(HOOK_TESTS.read_text(encoding="utf-8"))
    tests = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert f"test_{hook_name}" in tests, f"tests/core/plugins/test_hooks.py needs a test_{hook_name} function"
