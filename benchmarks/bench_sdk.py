"""SDK hot-path benchmarks: flow runs and task runs against a live SQLite server and in embedded mode.

Run with ``uv run python benchmarks/bench_sdk.py [--repeat N] [--tasks N] [--mode both|server|embedded]``.
Each figure is printed as one JSON line::

    {"name": "empty_flow_run", "mode": "server", "value": 8.1, "unit": "ms", "budget": 10.0, "within_budget": true, ...}

=============================  =====================================================================  =======
figure                         what is timed                                                          budget
=============================  =====================================================================  =======
``empty_flow_run``             wall time of calling a flow that does nothing (median)                 10 ms
``empty_flow_run_api``         the part of it spent waiting for the two API calls (median)            —
``sequential_tasks``           a flow calling a no-op task ``--tasks`` times, one after the other     0.3 s
``submitted_tasks``            a flow submitting ``--tasks`` no-op tasks and waiting for them         0.5 s
``records_readable``           from the end of the submitting flow until all its task runs are         1 s
                               readable through the API (with their final states)
``peak_rss``                   the client process's peak resident memory at the end                   —
=============================  =====================================================================  =======

The two task-run figures also carry ``cpu_s``: the client process's CPU time during the flow, a steadier
number than wall time when other work shares the machine.

Every mode runs in a fresh client process (so ``peak_rss`` is that mode's alone) with an empty
``HEADRACE_HOME``. In ``server`` mode the server is a separate process (``serve`` on a free loopback port,
SQLite under its own home), as in production: the client process only runs flows. One untimed flow run
warms each mode up first (the first run opens the database or the connection). A figure over its budget
is reported, never fatal: the exit status is 0 unless a measurement itself fails (then 2).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BUDGETS = {
    "empty_flow_run": 10.0,  # ms
    "sequential_tasks": 0.3,  # s
    "submitted_tasks": 0.5,  # s
    "records_readable": 1.0,  # s
}

SERVE = """
import sys
from headrace.server.serve import serve
from headrace.settings import get_settings
serve(get_settings(), host="127.0.0.1", port=int(sys.argv[1]), announce=lambda text: print(text, flush=True))
"""


class MeasurementError(RuntimeError):
    """A measured run failed: a bug to fix, not a slow figure."""


# -- the client process: runs the flows and prints the figures ----------------------------------------


def _figure(name: str, mode: str, value: float, unit: str, **extra: Any) -> None:
    budget = BUDGETS.get(name)
    line: dict[str, Any] = {"name": name, "mode": mode, "value": round(value, 4), "unit": unit}
    if budget is not None:
        line.update(budget=budget, within_budget=value <= budget)
    line.update(extra)
    print(json.dumps(line), flush=True)


def measure(mode: str, repeat: int, tasks: int) -> None:  # noqa: PLR0915 - one scenario, top to bottom
    import resource

    from headrace import flow, records, task
    from headrace.client.sync import run_sync
    from headrace.engine.api import current_settings, engine_api
    from headrace.schemas.runs import TaskRunFilter
    from headrace.schemas.states import StateType

    @task
    def noop() -> None:
        pass

    @flow
    def empty() -> None:
        pass

    @flow
    def sequential() -> None:
        for _ in range(tasks):
            noop()

    @flow
    def submitted() -> None:
        for _ in range(tasks):
            noop.submit()

    empty()  # warm up: open the database or the connection, start the record shipper
    api = engine_api(current_settings())
    waited = [0.0]
    original = api.create_flow_run, api.set_flow_run_state

    def timed(call: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                waited[0] += time.perf_counter() - start

        return wrapper

    api.create_flow_run, api.set_flow_run_state = timed(original[0]), timed(original[1])  # type: ignore[method-assign]
    totals, api_parts = [], []
    for _ in range(max(5, repeat * 5)):
        waited[0] = 0.0
        start = time.perf_counter()
        empty()
        totals.append(time.perf_counter() - start)
        api_parts.append(waited[0])
    api.create_flow_run, api.set_flow_run_state = original  # type: ignore[method-assign]
    _figure("empty_flow_run", mode, statistics.median(totals) * 1000, "ms", repeat=len(totals))
    _figure("empty_flow_run_api", mode, statistics.median(api_parts) * 1000, "ms", repeat=len(totals))

    def readable_after(flow_run_id: Any) -> float:
        """Seconds until every task run of the flow run is readable through the API, in a final state."""
        start = time.perf_counter()
        deadline = start + 120
        query = TaskRunFilter(flow_run_ids=[flow_run_id], state_types=[StateType.COMPLETED], limit=1)
        while time.perf_counter() < deadline:
            if run_sync(api.client.read_task_runs(query)).total >= tasks:
                return time.perf_counter() - start
            time.sleep(0.005)
        raise MeasurementError(f"the task runs of flow run {flow_run_id} were not all readable within 120 s")

    sequential_times, submitted_times, readable = [], [], []
    sequential_cpu, submitted_cpu = [], []
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        state = sequential(return_state=True)
        sequential_times.append(time.perf_counter() - start)
        sequential_cpu.append(time.process_time() - cpu)
        readable_after(state.state_details.flow_run_id)
        start, cpu = time.perf_counter(), time.process_time()
        state = submitted(return_state=True)
        submitted_times.append(time.perf_counter() - start)
        submitted_cpu.append(time.process_time() - cpu)
        readable.append(readable_after(state.state_details.flow_run_id))
    # cpu_s: the client process's CPU time during the flow (all its threads), steadier than wall time
    # on a busy machine; in embedded mode it includes the in-process database work.
    _figure(
        "sequential_tasks",
        mode,
        statistics.median(sequential_times),
        "s",
        repeat=repeat,
        tasks=tasks,
        cpu_s=round(statistics.median(sequential_cpu), 4),
    )
    _figure(
        "submitted_tasks",
        mode,
        statistics.median(submitted_times),
        "s",
        repeat=repeat,
        tasks=tasks,
        cpu_s=round(statistics.median(submitted_cpu), 4),
    )
    _figure("records_readable", mode, statistics.median(readable), "s", repeat=repeat, tasks=tasks)
    records.flush(timeout=30)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    _figure("peak_rss", mode, peak_kib / 1024, "MiB")


# -- the driver: one client process per mode, a server process for the server mode -----------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _environment(home: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.upper().startswith("HEADRACE_")}
    env["HEADRACE_HOME"] = str(home)
    env["HEADRACE_SERVER_RETENTION_ENABLED"] = "false"
    env.update(extra)
    return env


def _start_server(home: Path) -> tuple[subprocess.Popen[str], str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(port)],
        env=_environment(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if "ready" in line:
            return process, f"http://127.0.0.1:{port}/api"
    process.wait(timeout=10)
    raise MeasurementError(f"the server did not start: {process.stderr.read() if process.stderr else ''}")


def _run_client(mode: str, env: dict[str, str], args: argparse.Namespace, cwd: Path) -> None:
    command = [sys.executable, __file__, "--child", mode, "--repeat", str(args.repeat), "--tasks", str(args.tasks)]
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        raise MeasurementError(f"the {mode} measurement exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions of each task-run figure")
    parser.add_argument("--tasks", type=int, default=1000, help="task runs per flow in the task-run figures")
    parser.add_argument("--mode", choices=["both", "server", "embedded"], default="both")
    parser.add_argument("--child", choices=["server", "embedded"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        measure(args.child, args.repeat, args.tasks)
        return 0
    modes = ["server", "embedded"] if args.mode == "both" else [args.mode]
    try:
        with tempfile.TemporaryDirectory(prefix="headrace-bench-") as scratch:
            root = Path(scratch)
            for mode in modes:
                client_home = root / mode / "client"
                if mode == "embedded":
                    _run_client(mode, _environment(client_home), args, root)
                    continue
                server, api_url = _start_server(root / mode / "server")
                try:
                    _run_client(mode, _environment(client_home, HEADRACE_API_URL=api_url), args, root)
                finally:
                    server.terminate()
                    server.wait(timeout=60)
    except MeasurementError as exc:
        print(json.dumps({"name": "error", "message": str(exc)}), flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
