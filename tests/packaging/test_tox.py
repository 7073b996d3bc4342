"""tox.ini keeps up with the workspace: one environment per distribution, plus lint, types and packaging."""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _tox() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    assert parser.read(REPO_ROOT / "tox.ini", encoding="utf-8"), "tox.ini is missing"
    return parser


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


def test_every_environment_is_listed_and_defined() -> None:
    tox = _tox()
    env_list = _lines(tox["tox"]["env_list"])
    assert {"core", "lint", "types", "packaging"} <= set(env_list)
    for env in env_list:
        assert tox.has_section(f"testenv:{env}"), f"env_list names {env} but tox.ini has no [testenv:{env}]"
        assert "commands" in tox[f"testenv:{env}"]
    assert tox["testenv"]["runner"] == "uv-venv-lock-runner"
    assert "tox-uv" in tox["tox"]["requires"]


def test_every_workspace_distribution_has_its_own_environment(workspace: dict[str, Path]) -> None:
    tox = _tox()
    env_list = _lines(tox["tox"]["env_list"])
    environments = {}
    for env in env_list:
        section = tox[f"testenv:{env}"]
        match = re.search(r"--package[= ](\S+)", section.get("uv_sync_flags", ""))
        if match:
            environments[re.sub(r"[-_.]+", "-", match[1]).lower()] = section
    assert set(environments) == set(workspace), "tox.ini needs one environment (in env_list) per distribution"
    for name, folder in workspace.items():
        tests = Path("tests") / folder.relative_to(REPO_ROOT)  # tests mirror the layout: tests/plugins/slack
        command = shlex.split(environments[name]["commands"])
        assert command[0] == "pytest", f"{name}: {command}"
        assert tests.as_posix() in command, f"the tox environment of {name} should run pytest {tests.as_posix()}"
        assert (REPO_ROOT / tests).is_dir(), f"{name} has no tests in {tests}"


def test_packaging_environment_runs_these_tests() -> None:
    section = _tox()["testenv:packaging"]
    assert shlex.split(section["commands"])[:2] == ["pytest", "tests/packaging"]
    assert "--all-packages" in section["uv_sync_flags"]
