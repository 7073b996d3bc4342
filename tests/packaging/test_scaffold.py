"""``headrace plugins new``: the generated distribution is complete, installs, and passes its own tests."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from typer.testing import CliRunner

from headrace import __version__
from headrace.cli.main import build_app
from headrace.plugins.scaffold import TEMPLATE_ROOT, ScaffoldError, create_plugin, placeholders

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def invoke(*args: str) -> Any:
    return CliRunner().invoke(build_app(), list(args))


def generated_files(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


# -- in process -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Sftp", "1password", "my_plugin", "team--alerts", "alerts-", "", "sftp plugin"])
def test_invalid_name_is_a_clear_error_without_traceback(name: str, tmp_path: Path) -> None:
    target = tmp_path / "out"
    result = invoke("plugins", "new", name, "--dir", str(target))
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert f"error: invalid plugin name {name!r}" in result.stderr
    assert "lower-case letters and digits" in result.stderr
    assert "Traceback" not in result.output
    assert not target.exists()


@pytest.mark.parametrize(("name", "clash"), [("memory", "memory"), ("file", "file"), ("lo-cal", "local")])
def test_names_of_builtin_storage_backends_are_refused(name: str, clash: str, tmp_path: Path) -> None:
    with pytest.raises(ScaffoldError, match=f"storage backend '{clash}' is built into headrace"):
        create_plugin(name, tmp_path / "out")
    with pytest.raises(ScaffoldError, match="belong to headrace itself"):
        create_plugin("builtin-extra", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_non_empty_target_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me", encoding="utf-8")
    result = invoke("plugins", "new", "sftp", "--dir", str(tmp_path))
    assert result.exit_code == 1, result.output
    assert "already exists and is not empty" in result.stderr
    assert "Traceback" not in result.output
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "keep me"


def test_target_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "headrace-sftp"
    target.write_text("", encoding="utf-8")
    result = invoke("plugins", "new", "sftp", "--dir", str(target))
    assert result.exit_code == 1, result.output
    assert "is not a directory" in result.stderr


def test_empty_target_directory_is_used(tmp_path: Path) -> None:
    result = invoke("plugins", "new", "sftp", "--dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert f"created plugin sftp in {tmp_path.resolve()}" in result.stdout
    assert (tmp_path / "src" / "headrace_sftp" / "plugin.py").is_file()


def test_default_directory_is_headrace_name_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert create_plugin("sftp") == (tmp_path / "headrace-sftp").resolve()
    assert (tmp_path / "headrace-sftp" / "pyproject.toml").is_file()


@pytest.mark.parametrize("name", ["sftp", "team-alerts", "s3x-2"])
def test_every_placeholder_is_substituted(name: str, tmp_path: Path) -> None:
    values = placeholders(name)
    root = create_plugin(name, tmp_path / "out")
    files = generated_files(root)

    template = sorted(
        path.relative_to(TEMPLATE_ROOT).as_posix()
        for path in TEMPLATE_ROOT.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    )
    used = {key for path in template for key in PLACEHOLDER.findall(path + (TEMPLATE_ROOT / path).read_text())}
    assert used <= set(values), f"the template uses placeholders scaffold does not define: {used - set(values)}"

    expected = sorted(PLACEHOLDER.sub(lambda m: values[m[1]], path).removesuffix(".tmpl") for path in template)
    assert sorted(files) == expected
    for path, text in files.items():
        assert not re.search(r"\{\{|\}\}", path), path
        assert not re.search(r"\{\{|\}\}", text), f"{path} still holds a placeholder"
        if path.endswith(".py"):
            ast.parse(text, filename=path)
    assert f"src/{values['module']}/plugin.py" in files


@pytest.mark.parametrize("name", ["sftp", "team-alerts"])
def test_generated_pyproject_declares_the_distribution_and_entry_point(name: str, tmp_path: Path) -> None:
    root = create_plugin(name, tmp_path / "out")
    with (root / "pyproject.toml").open("rb") as handle:
        pyproject = tomllib.load(handle)
    module = "headrace_" + name.replace("-", "_")
    project = pyproject["project"]
    assert project["name"] == f"headrace-{name}"
    assert project["entry-points"]["headrace"] == {name: f"{module}.plugin"}
    requirements = [Requirement(line) for line in project["dependencies"]]
    core = [requirement for requirement in requirements if requirement.name == "headrace"]
    assert len(core) == 1
    assert core[0].specifier.contains(__version__), f"{core[0]} excludes the headrace that generated it"
    assert pyproject["build-system"]["build-backend"] == "hatchling.build"
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert packages == [f"src/{module}"]
    assert (root / packages[0] / "plugin.py").is_file()
    assert (root / project["readme"]).is_file()


@pytest.mark.parametrize("name", ["sftp", "a-rather-long-plugin-name-with-many-words-in-it"])
def test_generated_code_passes_ruff_with_default_settings(name: str, tmp_path: Path) -> None:
    root = create_plugin(name, tmp_path / "out")
    for command in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--isolated", "--no-cache", "."],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


# -- in a venv installed from the wheelhouse ------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_generated_plugin_installs_and_passes_its_own_tests(packaging_venv: Any, tmp_path: Path) -> None:
    """The installed core (a wheel, so the template must be inside it) writes a plugin that pip installs
    and whose own test suite passes with that venv's pytest; then ``headrace plugins list`` shows it."""
    target = tmp_path / "headrace-acme-alerts"
    created = packaging_venv.headrace("plugins", "new", "acme-alerts", "--dir", target, cwd=tmp_path)
    assert "created plugin acme-alerts" in created.stdout

    packaging_venv.pip_install(target, "pytest")
    expected = len(re.findall(r"^def test_", (target / "tests" / "test_plugin.py").read_text(), re.MULTILINE))
    assert expected >= 3
    result = packaging_venv.run(
        packaging_venv.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", cwd=target
    )
    assert f"{expected} passed" in result.stdout, result.stdout

    plugin = packaging_venv.plugins()["acme-alerts"]
    assert plugin["status"] == "active", plugin
    assert plugin["distribution"] == "headrace-acme-alerts"
    assert plugin["reference"] == "headrace_acme_alerts.plugin"
    assert plugin["provides"] == ["storage backend:acmealerts"]
