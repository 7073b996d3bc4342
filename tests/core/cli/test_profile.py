"""``headrace profile ls/create/use/delete``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from headrace.settings import ProfilesFile


def test_ls_without_a_file(invoke: Callable[..., Any], home: Path) -> None:
    ran = invoke("profile", "ls")
    assert (ran.code, ran.stdout) == (0, "* default\n")
    assert not (home / "profiles.toml").exists()


def test_create_use_delete(headrace: Callable[..., Any], home: Path) -> None:
    ran = headrace("profile", "create", "prod")
    assert ran.code == 0, ran.stderr
    assert ran.stdout == "created profile prod; switch to it with: headrace profile use prod\n"
    assert headrace("profile", "ls").stdout == "* default\n  prod\n"

    assert headrace("profile", "use", "prod").stdout == "now using profile prod\n"
    assert ProfilesFile.load(home).active == "prod"
    assert headrace("profile", "ls").stdout == "  default\n* prod\n"

    assert headrace("config", "set", "HEADRACE_API_URL=https://prod.example.com/api").code == 0
    assert (
        "HEADRACE_API_URL=https://prod.example.com/api  (from profile 'prod')"
        in headrace("config", "view", "--show-sources").stdout.splitlines()
    )

    assert headrace("profile", "use", "default").code == 0
    assert headrace("profile", "delete", "prod").stdout == "deleted profile prod\n"
    assert ProfilesFile.load(home).profiles == {"default": {}}


def test_create_from_copies_values(invoke: Callable[..., Any], home: Path) -> None:
    invoke("config", "set", "HEADRACE_DEBUG=true")
    assert invoke("profile", "create", "copy", "--from", "default").code == 0
    assert ProfilesFile.load(home).profiles["copy"] == {"HEADRACE_DEBUG": "true"}


def test_ls_json(invoke: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    invoke("profile", "create", "prod")
    monkeypatch.setenv("HEADRACE_PROFILE", "prod")
    data = json.loads(invoke("profile", "ls", "--json").stdout)
    assert data == {
        "active": "prod",
        "selected_by": "HEADRACE_PROFILE in the environment",
        "profiles": ["default", "prod"],
    }


def test_ls_marks_the_profile_selected_by_the_environment(
    invoke: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    invoke("profile", "create", "prod")
    monkeypatch.setenv("HEADRACE_PROFILE", "prod")
    assert invoke("profile", "ls").stdout == "  default\n* prod\n"


def test_ls_notes_an_unknown_selected_profile(invoke: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADRACE_PROFILE", "nope")
    ran = invoke("profile", "ls")
    assert ran.code == 0
    assert ran.stdout == "  default\n"
    assert "HEADRACE_PROFILE in the environment selects profile 'nope', which does not exist" in ran.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("profile", "create", "default"), "error: profile 'default' already exists\n"),
        (
            ("profile", "create", "no spaces"),
            "error: invalid profile name 'no spaces': use letters, digits, '.', '_' and '-'\n",
        ),
        (("profile", "use", "nope"), "error: unknown profile 'nope'; known profiles: default\n"),
        (("profile", "delete", "nope"), "error: unknown profile 'nope'; known profiles: default\n"),
        (("profile", "delete", "default"), "error: profile 'default' is active; switch to another one first\n"),
    ],
)
def test_profile_errors(headrace: Callable[..., Any], home: Path, args: tuple[str, ...], message: str) -> None:
    ran = headrace(*args)
    assert (ran.code, ran.stdout, ran.stderr) == (1, "", message)
    assert not (home / "profiles.toml").exists()


def test_delete_refuses_the_profile_selected_by_the_environment(
    invoke: Callable[..., Any], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoke("profile", "create", "prod")
    monkeypatch.setenv("HEADRACE_PROFILE", "prod")
    ran = invoke("profile", "delete", "prod")
    assert ran.code == 1
    assert ran.stderr == (
        "error: profile 'prod' is in force (selected by HEADRACE_PROFILE in the environment); "
        "switch to another one first\n"
    )
    assert "prod" in ProfilesFile.load(home).profiles


def test_use_notes_that_the_environment_still_selects_another(
    invoke: Callable[..., Any], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoke("profile", "create", "prod")
    monkeypatch.setenv("HEADRACE_PROFILE", "default")
    ran = invoke("profile", "use", "prod")
    assert ran.code == 0
    assert ProfilesFile.load(home).active == "prod"
    assert ran.stderr == "note: HEADRACE_PROFILE in the environment still selects profile 'default' in this shell\n"
