"""The workspace builds into a wheelhouse that real pip installs from, exactly as from an index.

DESIGN.md: "a wheelhouse built from the workspace (``uv build --all-packages``) installs as
``pip install --find-links dist headrace[aws]`` exactly as from an index. A test proves that last sentence."
This is that test: one build, one fresh venv, real pip, and the installed ``headrace`` console script.
"""

from __future__ import annotations

import json
import re
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from headrace.plugins.scaffold import TEMPLATE_ROOT

# The first test to run pays for the session's build and pip install (a minute or two on a cold cache).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SAMPLE = "headrace-sample"


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _record_hashes(record: str, prefix: str) -> dict[str, str]:
    """``path -> hash`` for the hashed files under ``prefix`` in a RECORD file's text."""
    hashes = {}
    for line in record.splitlines():
        path, _, rest = line.partition(",")
        digest = rest.partition(",")[0]
        if path.startswith(prefix) and digest:
            hashes[path] = digest
    return hashes


def _template_files() -> list[str]:
    files = [
        path.relative_to(TEMPLATE_ROOT).as_posix()
        for path in TEMPLATE_ROOT.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    ]
    assert files, f"no template files under {TEMPLATE_ROOT}"
    return sorted(files)


def test_wheelhouse_holds_every_workspace_distribution_and_the_sample(wheelhouse: Any, workspace: Any) -> None:
    wheels = wheelhouse.wheels()
    assert "headrace" in workspace
    assert set(wheels) == {*workspace, SAMPLE}
    for name, folder in workspace.items():
        assert any(_normalize(sdist.name).startswith(f"{name}-") for sdist in wheelhouse.path.glob("*.tar.gz")), (
            f"no sdist for {name} ({folder})"
        )


def test_core_wheel_and_sdist_ship_the_plugin_template(wheelhouse: Any, core_version: str) -> None:
    version, wheel = wheelhouse.wheels()["headrace"]
    assert version == core_version
    with zipfile.ZipFile(wheel) as archive:
        in_wheel = set(archive.namelist())
    missing = [name for name in _template_files() if f"headrace/plugins/template/{name}" not in in_wheel]
    assert missing == [], f"template files missing from {wheel.name}"
    assert "headrace/plugins/template/src/{{ module }}/plugin.py.tmpl" in in_wheel

    sdist = wheelhouse.path / f"headrace-{core_version}.tar.gz"
    with tarfile.open(sdist) as archive:
        in_sdist = set(archive.getnames())
    prefix = f"headrace-{core_version}/src/headrace/plugins/template/"
    assert [name for name in _template_files() if prefix + name not in in_sdist] == []


def test_core_installed_by_pip_is_the_wheel_from_the_wheelhouse(packaging_venv: Any, core_version: str) -> None:
    installed = packaging_venv.distribution("headrace")
    wheel_version, wheel = packaging_venv.wheelhouse.wheels()["headrace"]
    assert installed["version"] == wheel_version == core_version
    assert Path(installed["location"]).resolve().is_relative_to(packaging_venv.root.resolve())
    # Byte for byte: every file pip installed under headrace/ has the hash the wheelhouse's wheel recorded.
    with zipfile.ZipFile(wheel) as archive:
        dist_info = f"headrace-{wheel_version}.dist-info/RECORD"
        in_wheel = _record_hashes(archive.read(dist_info).decode(), "headrace/")
    assert in_wheel, "the core wheel's RECORD lists no files under headrace/"
    assert _record_hashes(installed["record"], "headrace/") == in_wheel
    assert packaging_venv.headrace("--version").stdout.strip() == f"headrace {core_version}"


def test_sample_plugin_and_builtins_are_active(packaging_venv: Any, core_version: str) -> None:
    plugins = packaging_venv.plugins()

    sample = plugins["sample"]
    assert sample["status"] == "active", sample
    assert sample["error"] is None
    assert sample["distribution"] == SAMPLE
    assert sample["version"] == packaging_venv.distribution(SAMPLE)["version"] == "0.1.0"
    assert sample["reference"] == "headrace_sample.plugin"
    assert sample["provides"] == ["storage backend:sample"]

    builtin = plugins["builtin-storage"]
    assert builtin["status"] == "active", builtin
    assert builtin["distribution"] == "headrace"
    assert builtin["version"] == core_version
    assert {"storage backend:file", "storage backend:memory"} <= set(builtin["provides"])

    broken = {name: plugin["error"] for name, plugin in plugins.items() if plugin["status"] != "active"}
    assert broken == {}
    assert "ok:" in packaging_venv.headrace("plugins", "check").stdout


LAZY_CHECK = """
import json, sys
from headrace.plugins.manager import build_plugin_manager

manager = build_plugin_manager()
manager.collect_all()
imported_by_listing = "headrace_sample.storage" in sys.modules
filesystem = manager.select("headrace_storage_backends", "sample").load()()
filesystem.pipe("sample://results/answer.json", b"42")
print(json.dumps({
    "imported_by_listing": imported_by_listing,
    "imported_by_select": "headrace_sample.storage" in sys.modules,
    "content": filesystem.cat("sample://results/answer.json").decode(),
}))
"""


def test_listing_never_imports_the_implementation_and_selecting_loads_it(packaging_venv: Any) -> None:
    assert packaging_venv.python_json(LAZY_CHECK) == {
        "imported_by_listing": False,
        "imported_by_select": True,
        "content": "42",
    }


def test_pip_installs_each_extra_from_the_wheelhouse(packaging_venv: Any, install_target: Any) -> None:
    """``pip install --find-links <wheelhouse> headrace[<extra>]`` for each extra (the sample plugin until
    the core declares one): the distributions it names come from the wheelhouse and their plugins are active."""
    packaging_venv.pip_install(install_target.requirement)
    wheels = packaging_venv.wheelhouse.wheels()
    plugins = packaging_venv.plugins()
    for name in install_target.distributions:
        installed = packaging_venv.distribution(name)
        if _normalize(name) not in wheels:
            continue  # a third-party requirement of the extra: installed from the index, checked above
        assert installed["version"] == wheels[_normalize(name)][0]
        assert installed["entry_points"], f"{name} declares no entry point in the 'headrace' group"
        for entry_point, reference in installed["entry_points"].items():
            assert plugins[entry_point]["status"] == "active", plugins[entry_point]
            assert plugins[entry_point]["distribution"] == installed["name"]
            assert plugins[entry_point]["reference"] == reference


AWS_ISOLATION_CHECK = """
import json, sys
from headrace.blocks.registry import block_class_for
from headrace.plugins.manager import build_plugin_manager

def sdk():
    return sorted(m for m in sys.modules if m.split(".")[0] in {"boto3", "botocore", "s3fs"})

manager = build_plugin_manager()
manager.collect_all()
after_listing = sdk()
bucket_class = block_class_for("s3-bucket").__name__
after_lookup = sdk()
from headrace.results import resolve_storage
backend = resolve_storage("s3://any-bucket/results").backend
print(json.dumps({"after_listing": after_listing, "after_lookup": after_lookup, "class": bucket_class,
                  "backend": backend, "s3fs_loaded": "s3fs" in sys.modules}))
"""


def test_headrace_aws_extra_is_active_and_listing_it_imports_no_aws_sdk(packaging_venv: Any) -> None:
    """Issue 6: ``pip install --find-links <wheelhouse> "headrace[aws]"`` gives an active ``aws`` plugin whose
    block types and ``s3`` backend are listed, and listing them imports neither boto3, botocore nor s3fs."""
    packaging_venv.pip_install("headrace[aws]")
    aws = packaging_venv.plugins()["aws"]
    assert aws["status"] == "active", aws
    assert aws["distribution"] == "headrace-aws"
    assert set(aws["provides"]) == {
        "storage backend:s3",
        "block type:aws-credentials",
        "block type:s3-bucket",
        "block type:aws-secret",
        "block type:lambda-function",
    }
    listed = json.loads(packaging_venv.headrace("block", "types", "--json").stdout)
    block_types = {entry["slug"] for entry in listed}
    assert {"aws-credentials", "s3-bucket", "aws-secret", "lambda-function"} <= block_types
    assert packaging_venv.python_json(AWS_ISOLATION_CHECK) == {
        "after_listing": [],
        "after_lookup": [],
        "class": "S3Bucket",
        "backend": "s3",
        "s3fs_loaded": True,
    }
