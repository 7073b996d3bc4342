"""The server benchmark's start-up figures keep running, the stack floor beside them (budgets are never
asserted here; see benchmarks/bench_server.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[3] / "benchmarks" / "bench_server.py"


def test_the_existing_database_start_up_is_given_with_the_stack_floor_beside_it() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARK), "--backend", "sqlite", "--no-load", "--starts", "2", "--idle-seconds", "0"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    figures = {figure["name"]: figure for figure in map(json.loads, done.stdout.splitlines())}
    assert set(figures) == {"start_to_healthy_fresh_s", "start_to_healthy_existing_s", "idle_rss_mb"}
    existing = figures["start_to_healthy_existing_s"]
    assert len(existing["starts"]) == len(existing["stack_floor_starts"]) == 2
    assert all(seconds > 0 for seconds in existing["starts"] + existing["stack_floor_starts"])
    assert existing["stack_floor_s"] > 0
    # each of the three is rounded to the millisecond on its own
    assert abs(existing["headrace_own_s"] - (existing["value"] - existing["stack_floor_s"])) < 0.002
