"""The Dask benchmark keeps running: it is not a test of speed (its budget is never asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[3] / "benchmarks" / "bench_dask.py"


def test_the_dask_benchmark_prints_one_json_line_per_figure(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARK), "--repeat", "1", "--tasks", "20"],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    figures = [json.loads(line) for line in done.stdout.splitlines()]
    assert [figure["name"] for figure in figures] == [
        "dask_raw",
        "dask_flow",
        "dask_overhead_ratio",
        "dask_raw_cpu",
        "dask_flow_cpu",
        "dask_cpu_ratio",
    ]
    for figure in figures:
        assert isinstance(figure["value"], float)
        assert figure["value"] > 0
        assert figure["tasks"] == 20
    ratio = figures[2]
    assert ratio["budget"] == 1.5
    assert ratio["within_budget"] is (ratio["value"] <= 1.5)
    assert abs(ratio["value"] - figures[1]["value"] / figures[0]["value"]) < 0.01
    assert "budget" not in figures[5]  # the CPU ratio informs; the budget is on wall time
    assert abs(figures[5]["value"] - figures[4]["value"] / figures[3]["value"]) < 0.01
