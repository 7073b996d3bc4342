"""``headrace block …``: against the embedded database and a live server; listing types imports no block class."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from headrace.settings import get_settings
from headrace.testing.server import RunningServer, running_server

Invoke = Callable[..., Any]  # the ``invoke`` fixture of tests/core/cli/conftest.py


@pytest.fixture(scope="module")
def cli_blocks_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    saved = {name: os.environ.pop(name) for name in list(os.environ) if name.upper().startswith("HEADRACE_")}
    try:
        settings = get_settings(home=tmp_path_factory.mktemp("cli-blocks-server"), server_retention_enabled=False)
    finally:
        os.environ.update(saved)
    with running_server(settings) as server:
        yield server


@pytest.fixture(params=["embedded", "server"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "server":
        server: RunningServer = request.getfixturevalue("cli_blocks_server")
        monkeypatch.setenv("HEADRACE_API_URL", server.api_url)
    return str(request.param)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_create_ls_inspect_delete(mode: str, invoke: Invoke, workdir: Path) -> None:
    fields = write(workdir / "secret.json", json.dumps({"value": "cli-top-secret"}))
    created = invoke("block", "create", "secret", "db-password", "--from-json", str(fields))
    assert created.code == 0, created.stderr
    assert "saved block secret/db-password" in created.stdout

    listed = invoke("block", "ls")
    assert listed.code == 0
    assert "secret  db-password" in listed.stdout
    as_json = json.loads(invoke("block", "ls", "--type", "secret", "--json").stdout)
    assert [(d["block_type_slug"], d["name"]) for d in as_json] == [("secret", "db-password")]
    assert invoke("block", "ls", "--type", "string").stdout.strip() == "no saved blocks of type 'string'"

    shown = invoke("block", "inspect", "secret/db-password")
    assert shown.code == 0
    assert '"value": "********"' in shown.stdout
    whole = invoke("block", "inspect", "secret/db-password", "--json")
    assert json.loads(whole.stdout)["data"] == {"value": "********"}
    for output in (created, listed, shown, whole):
        assert "cli-top-secret" not in output.stdout + output.stderr

    taken = invoke("block", "create", "secret", "db-password", "--from-json", str(fields))
    assert taken.code == 1
    assert "already exists; pass --overwrite" in taken.stderr
    replaced = write(workdir / "new.json", json.dumps({"value": "newer"}))
    assert invoke("block", "create", "secret", "db-password", "--from-json", str(replaced), "--overwrite").code == 0

    from headrace.blocks import Secret

    assert Secret.load("db-password").get() == "newer"

    deleted = invoke("block", "delete", "secret/db-password", "--yes")
    assert deleted.code == 0
    assert "deleted block secret/db-password" in deleted.stdout
    gone = invoke("block", "inspect", "secret/db-password")
    assert gone.code == 1
    assert "there is no block 'db-password' of type 'secret'" in gone.stderr


def test_delete_asks_first(invoke: Invoke, workdir: Path) -> None:
    from typer.testing import CliRunner

    from headrace.cli.main import build_app

    fields = write(workdir / "s.json", json.dumps({"value": "keep me"}))
    assert invoke("block", "create", "string", "keep", "--from-json", str(fields)).code == 0
    answered = CliRunner().invoke(build_app(), ["block", "delete", "string/keep"], input="n\n")
    assert answered.exit_code == 1
    assert "not deleted" in answered.stderr
    assert invoke("block", "inspect", "string/keep").code == 0


@pytest.mark.parametrize(
    ("arguments", "content", "expected"),
    [
        (["secret", "x"], "{not json", "is not valid JSON"),
        (["secret", "x"], "[1, 2]", "must hold a JSON object"),
        (["no-such-type", "x"], '{"value": 1}', "unknown block type 'no-such-type'; choose one of:"),
        (["string", "x"], '{"value": [1]}', "string field value: Input should be a valid string"),
        (["string", "x"], '{"value": "a", "vaule": "b"}', "string has no field 'vaule'"),
        (["string", "Bad Name"], '{"value": "a"}', "lower-case letters"),
    ],
)
def test_create_mistakes_are_one_line(
    invoke: Invoke, workdir: Path, arguments: list[str], content: str, expected: str
) -> None:
    fields = write(workdir / "fields.json", content)
    ran = invoke("block", "create", *arguments, "--from-json", str(fields))
    assert ran.code == 1
    assert expected in ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1
    assert "Traceback" not in ran.stderr


def test_missing_file_and_bad_reference(invoke: Invoke, workdir: Path) -> None:
    missing = invoke("block", "create", "string", "x", "--from-json", str(workdir / "absent.json"))
    assert missing.code == 1
    assert "cannot read" in missing.stderr
    bad = invoke("block", "inspect", "no-slash")
    assert bad.code == 1
    assert "TYPE/NAME" in bad.stderr


def test_types_lists_the_builtins(headrace: Callable[..., Any]) -> None:
    ran = headrace("block", "types", "--json")
    listed = {item["slug"]: item for item in json.loads(ran.stdout)}
    for slug in ("secret", "json", "string", "date-time", "local-file-system", "webhook", "apprise-notification"):
        assert slug in listed
    assert listed["secret"]["implementation"] == "headrace.blocks.system:Secret"
    table = headrace("block", "types")
    assert "secret" in table.stdout


LISTING = """
import json, sys
from headrace.cli.blocks import list_block_types
types = list_block_types()
print(json.dumps({"types": types, "modules": sorted(sys.modules)}))
"""


def test_listing_block_types_imports_no_block_class_nor_cloud_sdk() -> None:
    done = subprocess.run(
        [sys.executable, "-c", LISTING], capture_output=True, text=True, env=dict(os.environ), timeout=120, check=True
    )
    report = json.loads(done.stdout.splitlines()[-1])
    modules = set(report["modules"])
    implementations = {item["implementation"].partition(":")[0] for item in report["types"]}
    assert "headrace.blocks.system" in implementations  # the listing did find the built-ins
    assert not implementations & modules, implementations & modules
    assert not {"headrace.blocks.core", "boto3", "botocore", "apprise", "fsspec", "httpx", "s3fs"} & modules
