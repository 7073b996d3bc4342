"""The migrations ship inside the core wheel, and migrating works from the wheel's files alone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from headrace.server.db.migrate import MIGRATIONS_DIR, head_revision

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CORE = Path(__file__).resolve().parents[4] / "core"
PACKAGE_MIGRATIONS = "headrace/server/db/migrations"


def _uv() -> list[str]:
    if os.environ.get("UV"):
        return [os.environ["UV"]]
    found = shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


@pytest.fixture(scope="module")
def core_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [*_uv(), "build", "--wheel", "--out-dir", str(out), str(CORE)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = out.glob("headrace-*.whl")
    return wheel


def test_the_wheel_holds_every_migration_file(core_wheel: Path) -> None:
    shipped = set(zipfile.ZipFile(core_wheel).namelist())
    in_source = {
        f"{PACKAGE_MIGRATIONS}/{path.relative_to(MIGRATIONS_DIR).as_posix()}"
        for path in MIGRATIONS_DIR.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert {f"{PACKAGE_MIGRATIONS}/env.py", f"{PACKAGE_MIGRATIONS}/script.py.mako"} <= in_source
    assert any(name.startswith(f"{PACKAGE_MIGRATIONS}/versions/") for name in in_source)
    assert in_source <= shipped


def test_migrating_from_the_unpacked_wheel(core_wheel: Path, tmp_path: Path, clean_environ: dict[str, str]) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(core_wheel).extractall(site)
    home = tmp_path / "home"
    env = {**clean_environ, "PYTHONPATH": str(site), "HEADRACE_HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1"}
    script = (
        "import headrace.server.db.migrate as m, sys; "
        f"assert m.MIGRATIONS_DIR.is_relative_to({str(site)!r}), m.MIGRATIONS_DIR; "
        "from headrace.cli.main import run; run(['server', 'database', 'upgrade'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    assert f"revision {head_revision()} (head)" in result.stdout
    assert (home / "headrace.db").is_file()
