"""Server benchmarks: throughput with concurrent clients, start-up time and idle memory.

Run with ``uv run python benchmarks/bench_server.py [--backend sqlite|postgresql|all] [--clients 20]``.
Each figure is one JSON line, for example::

    {"name": "flow_runs_created_per_s", "backend": "sqlite", "value": 1520.3, "unit": "1/s",
     "budget": 1000, "budget_kind": "min", "within_budget": true}

The server is a real ``headrace server start`` process on a loopback port, as a user runs it. The load
comes from ``--clients`` concurrent HTTP clients (asyncio tasks sharing one httpx connection pool per
client, spread over ``--client-processes`` processes so that the load generator is not the bottleneck
on a small machine). PostgreSQL figures use a fresh database on the server at
``HEADRACE_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``) and are skipped,
with the reason printed, when it cannot be reached. A figure over its budget is reported, never fatal.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

POSTGRES_URL = os.environ.get("HEADRACE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

BUDGETS: dict[str, tuple[float, str, str]] = {
    # name: (budget, "min" or "max", unit)
    "flow_runs_created_per_s": (1000.0, "min", "1/s"),
    "flow_run_create_p99_ms": (100.0, "max", "ms"),
    "flow_run_transitions_per_s": (2000.0, "min", "1/s"),
    "task_run_records_ingested_per_s": (20000.0, "min", "1/s"),
    "start_to_healthy_fresh_s": (1.5, "max", "s"),
    "start_to_healthy_existing_s": (0.5, "max", "s"),
    "idle_rss_mb": (150.0, "max", "MB"),
}


def report(name: str, backend: str, value: float, **extra: Any) -> None:
    budget, kind, unit = BUDGETS[name]
    within = value >= budget if kind == "min" else value <= budget
    figure = {
        "name": name,
        "backend": backend,
        "value": round(value, 3),
        "unit": unit,
        "budget": budget,
        "budget_kind": kind,
        "within_budget": within,
        **extra,
    }
    print(json.dumps(figure), flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def headrace_command() -> list[str]:
    script = Path(sys.executable).with_name("headrace")
    return [str(script)] if script.exists() else [sys.executable, "-m", "headrace.cli.main"]


BYTECODE_CACHE = Path(tempfile.gettempdir()) / "headrace-bench-pycache"


def server_environment(home: Path, database_url: str | None) -> dict[str, str]:
    """A clean environment; bytecode goes to a cache of its own, so that starts measure an installed server
    (with compiled bytecode) even where ``PYTHONDONTWRITEBYTECODE`` is set."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("HEADRACE_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(BYTECODE_CACHE)
    env["HEADRACE_HOME"] = str(home)
    env["HEADRACE_SERVER_RETENTION_ENABLED"] = "false"
    if database_url:
        env["HEADRACE_SERVER_DATABASE_CONNECTION_URL"] = database_url
    return env


@contextmanager
def running_server(home: Path, database_url: str | None) -> Iterator[tuple[subprocess.Popen[bytes], str, float]]:
    """Start ``headrace server start``; yield the process, its API URL and the seconds until healthy."""
    import httpx

    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen(
        [*headrace_command(), "server", "start", "--port", str(port)],
        env=server_environment(home, database_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited: {process.stderr.read().decode() if process.stderr else ''}")
            try:
                if httpx.get(f"{api}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.perf_counter() - started > 60:
                raise TimeoutError("the server did not become healthy within 60 s")
            time.sleep(0.005)
        yield process, api, time.perf_counter() - started
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ------------------------------------------------------------------------------------------ load


def _state(kind: str, name: str | None = None) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "type": kind,
        "name": name or kind.capitalize(),
        "timestamp": datetime.now(timezone.utc).isoformat(),
    }


async def _client_load(api: str, clients: int, runs_per_client: int, records_per_client: int) -> dict[str, Any]:
    """One load process: ``clients`` concurrent clients; returns timings for each phase."""
    import httpx

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=api, limits=limits, timeout=60) as http:
        flow = (await http.post("/flows", json={"name": "bench"})).json()

        created: list[list[str]] = [[] for _ in range(clients)]
        latencies: list[float] = []

        async def create(index: int) -> None:
            for _ in range(runs_per_client):
                began = time.perf_counter()
                response = await http.post("/flow-runs", json={"flow_id": flow["id"]})
                latencies.append(time.perf_counter() - began)
                response.raise_for_status()
                created[index].append(response.json()["id"])

        began = time.perf_counter()
        await asyncio.gather(*(create(index) for index in range(clients)))
        create_seconds = time.perf_counter() - began

        transitions = 0

        async def transition(index: int) -> None:
            nonlocal transitions
            for run_id in created[index]:
                for kind in ("PENDING", "RUNNING", "COMPLETED"):
                    response = await http.post(f"/flow-runs/{run_id}/set-state", json={"state": _state(kind)})
                    response.raise_for_status()
                    transitions += 1

        began = time.perf_counter()
        await asyncio.gather(*(transition(index) for index in range(clients)))
        transition_seconds = time.perf_counter() - began

        batch = 500

        async def ingest(index: int) -> None:
            run_id = created[index][0] if created[index] else None
            sent = 0
            while sent < records_per_client:
                size = min(batch, records_per_client - sent)
                records = [
                    {
                        "task_run_id": str(uuid.uuid4()),
                        "flow_run_id": run_id,
                        "task_key": "bench.noop",
                        "name": f"noop-{sent + offset}",
                        "state": _state("COMPLETED"),
                    }
                    for offset in range(size)
                ]
                response = await http.post("/task-runs/ingest", json=records)
                response.raise_for_status()
                sent += size

        began = time.perf_counter()
        await asyncio.gather(*(ingest(index) for index in range(clients)))
        ingest_seconds = time.perf_counter() - began

    return {
        "runs": sum(len(runs) for runs in created),
        "create_seconds": create_seconds,
        "latencies": latencies,
        "transitions": transitions,
        "transition_seconds": transition_seconds,
        "records": clients * records_per_client,
        "ingest_seconds": ingest_seconds,
    }


def _load_process(args: tuple[str, int, int, int]) -> dict[str, Any]:
    return asyncio.run(_client_load(*args))


def measure_load(api: str, backend: str, *, clients: int, processes: int, runs: int, records: int) -> None:
    per_process = max(1, clients // processes)
    jobs = [(api, per_process, runs // clients, records // clients)] * processes
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = pool.map(_load_process, jobs)
    # Phases run in lock step only approximately across processes: rates use the slowest process.
    created = sum(result["runs"] for result in results)
    create_seconds = max(result["create_seconds"] for result in results)
    latencies = sorted(latency for result in results for latency in result["latencies"])
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else float("nan")
    report("flow_runs_created_per_s", backend, created / create_seconds, runs=created, clients=clients)
    report("flow_run_create_p99_ms", backend, p99, median_ms=round(statistics.median(latencies) * 1000, 3))
    transitions = sum(result["transitions"] for result in results)
    report(
        "flow_run_transitions_per_s",
        backend,
        transitions / max(result["transition_seconds"] for result in results),
        transitions=transitions,
    )
    ingested = sum(result["records"] for result in results)
    report(
        "task_run_records_ingested_per_s",
        backend,
        ingested / max(result["ingest_seconds"] for result in results),
        records=ingested,
        batch=500,
    )


# --------------------------------------------------------------------------------------- backends


def postgres_database() -> tuple[str | None, str]:
    """A fresh PostgreSQL database URL for the benchmark, or None and the reason."""
    import asyncpg

    name = f"headrace_bench_{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        connection = await asyncpg.connect(POSTGRES_URL, timeout=5)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    try:
        asyncio.run(create())
    except Exception as exc:
        return None, f"PostgreSQL is not reachable at {POSTGRES_URL}: {exc}"
    base, _, _ = POSTGRES_URL.rpartition("/")
    return f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1), name


def drop_postgres_database(name: str) -> None:
    import asyncpg

    async def drop() -> None:
        connection = await asyncpg.connect(POSTGRES_URL, timeout=5)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()

    asyncio.run(drop())


def run_backend(backend: str, args: argparse.Namespace) -> None:
    database_url: str | None = None
    pg_name: str | None = None
    if backend == "postgresql":
        database_url, reason_or_name = postgres_database()
        if database_url is None:
            print(json.dumps({"name": "skipped", "backend": backend, "reason": reason_or_name}), flush=True)
            return
        pg_name = reason_or_name
    try:
        with tempfile.TemporaryDirectory(prefix="headrace-bench-") as scratch:
            home = Path(scratch) / "home"
            with running_server(Path(scratch) / "warm-up", None):
                pass  # untimed: fills the bytecode cache, as an installed package would have it
            with running_server(home, database_url) as (process, api, fresh_seconds):
                report("start_to_healthy_fresh_s", backend, fresh_seconds)
            with running_server(home, database_url) as (process, api, existing_seconds):
                report("start_to_healthy_existing_s", backend, existing_seconds)
                time.sleep(args.idle_seconds)
                report("idle_rss_mb", backend, rss_mb(process.pid))
                measure_load(
                    api,
                    backend,
                    clients=args.clients,
                    processes=args.client_processes,
                    runs=args.runs,
                    records=args.records,
                )
    finally:
        if pg_name:
            drop_postgres_database(pg_name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--clients", type=int, default=20, help="Concurrent clients.")
    parser.add_argument("--client-processes", type=int, default=2, help="Processes the clients are spread over.")
    parser.add_argument("--runs", type=int, default=4000, help="Flow runs to create in total.")
    parser.add_argument("--records", type=int, default=200_000, help="Task-run records to ingest in total.")
    parser.add_argument("--idle-seconds", type=float, default=2.0, help="Idle time before reading the RSS.")
    args = parser.parse_args(argv)
    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    for backend in backends:
        run_backend(backend, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
