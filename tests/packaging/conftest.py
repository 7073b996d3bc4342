"""Fixtures for the packaging tests: a wheelhouse built from the workspace, and one venv installed from it.

``wheelhouse`` runs ``uv build --all-packages`` (every workspace distribution: the core, each plugin and
each integration) and ``uv build tests/fixtures/sample-plugin`` into one folder. ``packaging_venv`` makes
a fresh ``python -m venv``, upgrades its pip and runs ``pip install --find-links <wheelhouse>
headrace-sample``: real pip resolves the sample plugin, the ``headrace`` core it requires (only the
wheelhouse has it) and the core's third-party dependencies (from the index). Both are session-scoped, so
the whole package takes one build and one install; the tests add to that venv, never remove from it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REPO_ROOT = Path(__file__).resolve().parents[2]
CORE = REPO_ROOT / "core"
SAMPLE_PLUGIN = REPO_ROOT / "tests" / "fixtures" / "sample-plugin"
SAMPLE_DISTRIBUTION = "headrace-sample"
WHEEL_NAME = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")


def read_core_version() -> str:
    """The version the core declares, read from the file hatch reads it from (not from an import)."""
    text = (CORE / "src" / "headrace" / "__about__.py").read_text(encoding="utf-8")
    match = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", text, re.MULTILINE)
    assert match, "core/src/headrace/__about__.py does not set __version__"
    return match.group(1)


def read_toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        return tomllib.load(handle)


def normalize(name: str) -> str:
    """PEP 503 normalization, so that wheel file names and requirement names compare equal."""
    return re.sub(r"[-_.]+", "-", name).lower()


def uv_command() -> list[str]:
    """How to run uv: the one ``uv run`` was started with, else uv on PATH, else ``python -m uv``."""
    if os.environ.get("UV"):
        return [os.environ["UV"]]
    found = shutil.which("uv")
    if found:
        return [found]
    probe = subprocess.run([sys.executable, "-m", "uv", "--version"], capture_output=True, check=False)
    if probe.returncode == 0:
        return [sys.executable, "-m", "uv"]
    pytest.fail("the packaging tests need uv (https://docs.astral.sh/uv/); install it with 'pip install uv'")


def clean_environment(home: Path, bin_dir: Path | None = None) -> dict[str, str]:
    """os.environ without anything that would leak the development environment into a subprocess."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HEADRACE_", "PYTEST_"))
        and key not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "UV_PROJECT_ENVIRONMENT"}
    }
    env["HEADRACE_HOME"] = str(home)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if bin_dir is not None:
        env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
    return env


def run(command: list[str], *, env: Mapping[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``command``; on a non-zero exit fail the test with everything it printed."""
    result = subprocess.run(command, cwd=cwd, env=dict(env), capture_output=True, text=True, check=False, timeout=600)
    if result.returncode != 0:
        pytest.fail(
            f"command failed with exit code {result.returncode}: {' '.join(command)}\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}",
            pytrace=False,
        )
    return result


def workspace_distributions() -> dict[str, Path]:
    """Normalized project name -> folder, for every member the root ``[tool.uv.workspace]`` declares."""
    workspace = read_toml(REPO_ROOT / "pyproject.toml")["tool"]["uv"]["workspace"]
    excluded = {path.resolve() for pattern in workspace.get("exclude", []) for path in REPO_ROOT.glob(pattern)}
    members: dict[str, Path] = {}
    for pattern in workspace["members"]:
        for folder in sorted(REPO_ROOT.glob(pattern)):
            if folder.resolve() in excluded or not (folder / "pyproject.toml").is_file():
                continue
            members[normalize(read_toml(folder / "pyproject.toml")["project"]["name"])] = folder
    return members


@dataclass(frozen=True)
class InstallTarget:
    """What one packaging test installs with pip, and the distributions that must come with it."""

    requirement: str
    distributions: tuple[str, ...]


def install_targets() -> list[InstallTarget]:
    """``headrace[<extra>]`` for each non-empty extra of the core except ``all``; else the sample plugin."""
    from packaging.requirements import Requirement

    extras = read_toml(CORE / "pyproject.toml")["project"].get("optional-dependencies", {})
    targets = [
        InstallTarget(
            requirement=f"headrace[{extra}]",
            distributions=tuple(Requirement(line).name for line in requirements),
        )
        for extra, requirements in sorted(extras.items())
        if extra != "all" and requirements
    ]
    return targets or [InstallTarget(requirement=SAMPLE_DISTRIBUTION, distributions=(SAMPLE_DISTRIBUTION,))]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "install_target" in metafunc.fixturenames:
        targets = install_targets()
        metafunc.parametrize("install_target", targets, ids=[target.requirement for target in targets])


@dataclass(frozen=True)
class Wheelhouse:
    """A folder of wheels and sdists built from this checkout."""

    path: Path

    def wheels(self) -> dict[str, tuple[str, Path]]:
        """Normalized distribution name -> (version, wheel file)."""
        found: dict[str, tuple[str, Path]] = {}
        for wheel in sorted(self.path.glob("*.whl")):
            match = WHEEL_NAME.match(wheel.name)
            assert match, f"unexpected wheel file name {wheel.name}"
            found[normalize(match["name"])] = (match["version"], wheel)
        return found


@dataclass
class PackagingVenv:
    """A virtual environment made with ``python -m venv`` and filled by pip from the wheelhouse."""

    root: Path
    wheelhouse: Wheelhouse
    home: Path
    env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.env = clean_environment(self.home, self.bin)

    @property
    def bin(self) -> Path:
        return self.root / ("Scripts" if os.name == "nt" else "bin")

    @property
    def python(self) -> Path:
        return self.bin / ("python.exe" if os.name == "nt" else "python")

    def run(self, *args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return run([str(arg) for arg in args], env=self.env, cwd=cwd)

    def pip_install(self, *requirements: str | Path) -> subprocess.CompletedProcess[str]:
        """``pip install --find-links <wheelhouse> ...``: the wheelhouse plus the configured index."""
        return self.run(
            self.python, "-m", "pip", "install", "--quiet", "--find-links", self.wheelhouse.path, *requirements
        )

    def headrace(self, *args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """The ``headrace`` console script that pip installed into this venv."""
        return self.run(self.bin / "headrace", *args, cwd=cwd)

    def plugins(self) -> dict[str, dict[str, Any]]:
        """``headrace plugins list --json`` as a dict by plugin name; asserts there are no conflicts."""
        listing = json.loads(self.headrace("plugins", "list", "--json").stdout)
        assert listing["conflicts"] == [], listing["conflicts"]
        return {plugin["name"]: plugin for plugin in listing["plugins"]}

    def python_json(self, source: str, *args: str) -> Any:
        """Run ``source`` with this venv's python and parse the JSON it prints."""
        return json.loads(self.run(self.python, "-c", source, *args).stdout)

    def distribution(self, name: str) -> dict[str, Any]:
        """Version, files and ``headrace`` entry points of an installed distribution, seen from the venv."""
        return self.python_json(DISTRIBUTION_INFO, name)  # type: ignore[no-any-return]


DISTRIBUTION_INFO = """
import json, sys
from importlib.metadata import distribution
dist = distribution(sys.argv[1])
print(json.dumps({
    "name": dist.metadata["Name"],
    "version": dist.version,
    "location": str(dist.locate_file("")),
    "record": dist.read_text("RECORD") or "",
    "entry_points": {ep.name: ep.value for ep in dist.entry_points if ep.group == "headrace"},
}))
"""


@pytest.fixture(scope="session")
def core_version() -> str:
    """The version in core/src/headrace/__about__.py."""
    return read_core_version()


@pytest.fixture(scope="session")
def workspace() -> dict[str, Path]:
    """Every workspace distribution: normalized name -> folder."""
    return workspace_distributions()


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Wheelhouse:
    """Every workspace distribution plus the sample plugin, built by uv into one folder."""
    path = tmp_path_factory.mktemp("wheelhouse")
    env = clean_environment(tmp_path_factory.mktemp("build-home"))
    uv = uv_command()
    run([*uv, "build", "--all-packages", "--out-dir", str(path)], env=env, cwd=REPO_ROOT)
    run([*uv, "build", str(SAMPLE_PLUGIN), "--out-dir", str(path)], env=env, cwd=REPO_ROOT)
    return Wheelhouse(path)


@pytest.fixture(scope="session")
def packaging_venv(wheelhouse: Wheelhouse, tmp_path_factory: pytest.TempPathFactory) -> PackagingVenv:
    """A fresh venv with ``headrace-sample`` (and so ``headrace``) installed by pip from the wheelhouse."""
    root = tmp_path_factory.mktemp("venv")
    home = tmp_path_factory.mktemp("headrace-home")
    run([sys.executable, "-m", "venv", str(root)], env=clean_environment(home))
    venv = PackagingVenv(root=root, wheelhouse=wheelhouse, home=home)
    # The venv's bundled pip can be too old for current packages; upgrade it before anything else.
    venv.run(venv.python, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    venv.pip_install(SAMPLE_DISTRIBUTION)
    return venv
