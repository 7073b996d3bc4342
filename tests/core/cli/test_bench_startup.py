"""The start-up benchmark keeps running: it is not a test of speed (budgets are never asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[3] / "benchmarks" / "bench_startup.py"


def test_the_startup_benchmark_prints_one_json_line_per_figure() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARK), "--repeat", "1", "--plugins", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    figures = [json.loads(line) for line in done.stdout.splitlines()]
    assert [figure["name"] for figure in figures] == ["import_headrace", "cli_help", "plugin_discovery"]
    for figure in figures:
        assert figure["unit"] == "ms"
        assert isinstance(figure["value"], float)
        assert figure["value"] > 0
        assert isinstance(figure["budget"], float)
        assert figure["within_budget"] is (figure["value"] < figure["budget"])
        assert figure["repeat"] == 1
    assert figures[2]["plugins"] == 2
