"""The SDK benchmark keeps running: it is not a test of speed (budgets are never asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[3] / "benchmarks" / "bench_sdk.py"
NAMES = ["empty_flow_run", "empty_flow_run_api", "sequential_tasks", "submitted_tasks", "records_readable", "peak_rss"]


def test_the_sdk_benchmark_prints_one_json_line_per_figure_and_mode() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARK), "--repeat", "1", "--tasks", "20"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    figures = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(figure["mode"], figure["name"]) for figure in figures] == [
        (mode, name) for mode in ("server", "embedded") for name in NAMES
    ]
    for figure in figures:
        assert isinstance(figure["value"], float)
        assert figure["value"] > 0
        if "budget" in figure:
            assert figure["within_budget"] is (figure["value"] <= figure["budget"])
    assert {figure["tasks"] for figure in figures if "tasks" in figure} == {20}
