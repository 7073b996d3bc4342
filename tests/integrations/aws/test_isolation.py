"""Listing plugins and block types, and looking up an AWS block class, import neither boto3, botocore nor s3fs.

DESIGN.md: "Listing plugins and looking up a block type never imports an integration's cloud SDK." Each
check runs in a fresh interpreter (this one has imported the SDK long ago) and reports ``sys.modules``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

SDK_MODULES = """
def sdk_modules():
    return sorted(m for m in sys.modules if m.split(".")[0] in {"boto3", "botocore", "s3fs", "aiobotocore"})
"""

AWS_BLOCK_TYPES = {"aws-credentials", "s3-bucket", "aws-secret", "lambda-function"}


def run_python(code: str, home: Path) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter with a private HEADRACE_HOME; parse its last line as JSON."""
    env = {key: value for key, value in os.environ.items() if not key.upper().startswith("HEADRACE_")}
    env["HEADRACE_HOME"] = str(home)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SDK_MODULES) + textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_plugins_list_and_block_types_import_no_aws_sdk(tmp_path: Path) -> None:
    result = run_python(
        """
        import contextlib, io, json, sys
        from headrace.cli.main import run

        def headrace(*args):
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                try:
                    run(list(args))
                except SystemExit as exit_:
                    assert exit_.code in (0, None), exit_.code
            return json.loads(printed.getvalue())

        plugins = headrace("plugins", "list", "--json")["plugins"]
        after_plugins_list = sdk_modules()
        block_types = headrace("block", "types", "--json")
        table = io.StringIO()
        with contextlib.redirect_stdout(table):
            try:
                run(["block", "types"])
            except SystemExit as exit_:
                assert exit_.code in (0, None), exit_.code
        print(json.dumps({
            "plugins": plugins,
            "block_types": [block_type["slug"] for block_type in block_types],
            "table_mentions_s3_bucket": "s3-bucket" in table.getvalue(),
            "after_plugins_list": after_plugins_list,
            "after_block_types": sdk_modules(),
        }))
        """,
        tmp_path,
    )
    aws = next(plugin for plugin in result["plugins"] if plugin["name"] == "aws")
    assert aws["status"] == "active", aws
    assert aws["distribution"] == "headrace-aws"
    assert set(aws["provides"]) == {
        "storage backend:s3",
        *(f"block type:{slug}" for slug in AWS_BLOCK_TYPES),
    }
    assert set(result["block_types"]) >= AWS_BLOCK_TYPES
    assert result["table_mentions_s3_bucket"]
    assert result["after_plugins_list"] == []
    assert result["after_block_types"] == []


def test_looking_up_aws_block_classes_imports_no_aws_sdk(tmp_path: Path) -> None:
    result = run_python(
        f"""
        import json, sys
        from headrace.blocks.registry import block_class_for

        classes = {{slug: block_class_for(slug).__name__ for slug in {sorted(AWS_BLOCK_TYPES)!r}}}
        import headrace_aws
        exported = [getattr(headrace_aws, name).__name__ for name in ("S3Bucket", "AwsSecret", "LambdaFunction")]
        print(json.dumps({{"classes": classes, "exported": exported, "modules": sdk_modules()}}))
        """,
        tmp_path,
    )
    assert result["classes"] == {
        "aws-credentials": "AwsCredentials",
        "aws-secret": "AwsSecret",
        "lambda-function": "LambdaFunction",
        "s3-bucket": "S3Bucket",
    }
    assert result["exported"] == ["S3Bucket", "AwsSecret", "LambdaFunction"]
    assert result["modules"] == []


def test_resolving_an_s3_url_is_what_imports_s3fs(tmp_path: Path) -> None:
    """The control: the same interpreter does import s3fs once a flow needs it, so the checks above can fail."""
    result = run_python(
        """
        import json, sys
        from headrace.results import resolve_storage

        before = sdk_modules()
        storage = resolve_storage("s3://some-bucket/results")
        print(json.dumps({"before": before, "after": sdk_modules(), "backend": storage.backend}))
        """,
        tmp_path,
    )
    assert result["before"] == []
    assert result["backend"] == "s3"
    assert "s3fs" in result["after"]
    assert "botocore" in result["after"]
