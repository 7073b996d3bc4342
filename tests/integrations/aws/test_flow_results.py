"""A flow persists its results to S3, and a second run (another process) reads them back as cache hits."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from headrace.testing.contracts import HeadraceEnvironment

from .conftest import MotoServer

FLOW_SCRIPT = """
import json, sys
from pathlib import Path

from headrace import flow, task
from headrace.cache_policies import INPUTS
from headrace.testing.contracts import read_task_runs

calls, storage = Path(sys.argv[1]), sys.argv[2]


@task(cache_policy=INPUTS, result_storage=storage)
def slow_square(x: int) -> int:
    with calls.open("a") as log:
        log.write(f"{x}\\n")
    return x * x


@flow
def squares(n: int) -> list[int]:
    return [slow_square(i) for i in range(n)]


state = squares(3, return_state=True)
runs = read_task_runs(state.state_details.flow_run_id)
print(json.dumps({"result": state.result(), "states": sorted(run.state.name for run in runs)}))
"""


class TestResultsInS3(HeadraceEnvironment):
    def run_flow(self, script: Path, calls: Path, storage: str) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, str(script), str(calls), storage],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result

    def test_a_second_run_reads_the_results_back_as_cache_hits(
        self, moto: MotoServer, bucket: str, tmp_path: Path
    ) -> None:
        script = tmp_path / "squares.py"
        script.write_text(textwrap.dedent(FLOW_SCRIPT), encoding="utf-8")
        calls = tmp_path / "calls.txt"
        storage = f"s3://{bucket}/cache"

        first = self.run_flow(script, calls, storage)
        assert first == {"result": [0, 1, 4], "states": ["Completed"] * 3}
        listing = moto.client("s3").list_objects_v2(Bucket=bucket, Prefix="cache/")
        assert len(listing.get("Contents", [])) == 3, "each task's result is one object under the prefix"

        second = self.run_flow(script, calls, storage)
        assert second == {"result": [0, 1, 4], "states": ["Cached"] * 3}
        assert calls.read_text().split() == ["0", "1", "2"], "the second run called no task function"

    def test_without_the_objects_the_second_run_computes_again(
        self, moto: MotoServer, bucket: str, tmp_path: Path
    ) -> None:
        """The control: the cache hits above come from S3, not from anything this machine kept."""
        script = tmp_path / "squares.py"
        script.write_text(textwrap.dedent(FLOW_SCRIPT), encoding="utf-8")
        calls = tmp_path / "calls.txt"
        storage = f"s3://{bucket}/cache"

        self.run_flow(script, calls, storage)
        client = moto.client("s3")
        for item in client.list_objects_v2(Bucket=bucket, Prefix="cache/")["Contents"]:
            client.delete_object(Bucket=bucket, Key=item["Key"])

        second = self.run_flow(script, calls, storage)
        assert second["states"] == ["Completed"] * 3
        assert calls.read_text().split() == ["0", "1", "2", "0", "1", "2"]
