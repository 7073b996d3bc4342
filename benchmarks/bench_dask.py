"""DaskTaskRunner overhead: no-op tasks through a flow on Dask, against raw ``client.submit`` + ``gather``.

Run with ``uv run python benchmarks/bench_dask.py [--tasks N] [--repeat N] [--workers N]``. Each figure is
printed as one JSON line::

    {"name": "dask_overhead_ratio", "value": 1.3, "unit": "x", "budget": 1.5, "within_budget": true, ...}

==========================  ==========================================================================  ======
figure                      what is timed                                                               budget
==========================  ==========================================================================  ======
``dask_raw``                ``client.submit`` of ``--tasks`` no-op functions, then ``client.gather``      —
``dask_flow``               a flow on ``DaskTaskRunner(address=...)`` mapping a no-op task over             —
                            ``--tasks`` items and taking the results, the whole flow call: connecting
                            to the scheduler, every task run's records and the workers' record flush
``dask_overhead_ratio``     ``dask_flow / dask_raw`` (medians)                                          1.5 x
``dask_raw_cpu``            CPU seconds of the same raw phase: this process (the scheduler and the          —
                            client), the Dask workers and the headrace server, added up
``dask_flow_cpu``           the same for the flow phase                                                    —
``dask_cpu_ratio``          ``dask_flow_cpu / dask_raw_cpu`` (medians): the overhead in work done,          —
                            which other load on a shared machine disturbs less than it does wall time
==========================  ==========================================================================  ======

Both run on the same ``LocalCluster`` (``--workers`` processes, one thread each), which is started once and
warmed up first. Runs are recorded on a live headrace server in its own process (SQLite, free loopback
port), as in production. A figure over its budget is reported, never fatal: the exit status is 0 unless a
measurement itself fails (then 2). Dask's worker processes re-import this script, hence the ``__main__``
guard.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BUDGET_RATIO = 1.5


def noop(x: int) -> None:
    """The raw Dask work item."""


def _figure(name: str, value: float, unit: str, **extra: Any) -> None:
    line: dict[str, Any] = {"name": name, "value": round(value, 4), "unit": unit, **extra}
    print(json.dumps(line), flush=True)


def _cpu_seconds() -> float:
    """CPU seconds used so far by this process and every process it started (workers, the server)."""
    import psutil  # a dependency of distributed

    total = 0.0
    me = psutil.Process()
    for process in [me, *me.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.Error:  # ended meanwhile
            continue
        total += times.user + times.system
    return total


def measure(tasks: int, repeat: int, workers: int) -> None:
    from distributed import Client, LocalCluster

    from headrace import flow, records, task
    from headrace_dask import DaskTaskRunner

    @task
    def noop_task(x: int) -> None:
        """The same work item, as a headrace task."""

    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0")
    client = Client(cluster, set_as_default=False)
    runner = DaskTaskRunner(address=cluster.scheduler_address)

    @flow(task_runner=runner)
    def mapped(count: int) -> int:
        return len(noop_task.map(range(count)).result())

    def raw(count: int) -> None:
        client.gather([client.submit(noop, i, pure=False) for i in range(count)])

    def through_headrace(count: int) -> None:
        assert mapped(count) == count

    def timed(phase: Callable[[int], None], count: int) -> tuple[float, float]:
        cpu, started = _cpu_seconds(), time.perf_counter()
        phase(count)
        return time.perf_counter() - started, _cpu_seconds() - cpu

    try:
        raw(min(tasks, 100))  # warm-up: workers import what the work needs
        through_headrace(min(tasks, 100))
        raw_runs, flow_runs = [], []
        for _ in range(repeat):  # interleaved, so that load from elsewhere hits both alike
            raw_runs.append(timed(raw, tasks))
            flow_runs.append(timed(through_headrace, tasks))
        records.flush(timeout=60)
    finally:
        client.close()
        cluster.close()
    raw_median = statistics.median(wall for wall, _ in raw_runs)
    flow_median = statistics.median(wall for wall, _ in flow_runs)
    common = {"tasks": tasks, "repeat": repeat, "workers": workers}
    _figure("dask_raw", raw_median, "s", **common)
    _figure("dask_flow", flow_median, "s", **common)
    ratio = flow_median / raw_median
    _figure("dask_overhead_ratio", ratio, "x", budget=BUDGET_RATIO, within_budget=ratio <= BUDGET_RATIO, **common)
    raw_cpu = statistics.median(cpu for _, cpu in raw_runs)
    flow_cpu = statistics.median(cpu for _, cpu in flow_runs)
    _figure("dask_raw_cpu", raw_cpu, "s", **common)
    _figure("dask_flow_cpu", flow_cpu, "s", **common)
    _figure("dask_cpu_ratio", flow_cpu / raw_cpu, "x", **common)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_sdk import _start_server  # the same live server as the SDK benchmark

    with tempfile.TemporaryDirectory(prefix="headrace-bench-dask-") as scratch:
        root = Path(scratch)
        for name in [name for name in os.environ if name.upper().startswith("HEADRACE_")]:
            del os.environ[name]
        server, api_url = _start_server(root / "server")
        try:
            os.environ["HEADRACE_HOME"] = str(root / "client")
            os.environ["HEADRACE_API_URL"] = api_url
            os.chdir(root)
            measure(args.tasks, args.repeat, args.workers)
        except Exception as exc:
            print(json.dumps({"name": "error", "message": f"{type(exc).__name__}: {exc}"}), flush=True)
            return 2
        finally:
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
