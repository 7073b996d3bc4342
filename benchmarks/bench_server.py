"""Server benchmarks: throughput with concurrent clients, start-up time and idle memory.

Run with ``uv run python benchmarks/bench_server.py [--backend sqlite|postgresql|all] [--clients 20]``.
Each figure is one JSON line, for example::

    {"name": "flow_runs_created_per_s", "backend": "sqlite", "value": 1520.3, "unit": "1/s",
     "budget": 1000, "budget_kind": "min", "within_budget": true}

The server is a real ``headrace server start`` process on a loopback port, as a user runs it. The load
comes from ``--clients`` concurrent clients, each one keep-alive HTTP/1.1 connection (see
:class:`LoadConnection`), spread over ``--client-processes`` processes so that the load generator is not
the bottleneck on a small machine. The three phases (creates, transitions, ingest) start and end in lock
step across processes; each rate is the phase's operations over its wall time, and each line also gives
the server process's CPU time per operation, which does not depend on how busy the machine is.

Start to healthy is the time from spawning the process to its first 200 on ``GET /api/health``, polled
every 5 ms with a plain socket: once on a fresh database (migrations run), and ``--starts`` times on the
same, existing database, whose median is the figure (every start is listed in the line). Each of those
starts alternates with a start of ``stack_floor_server.py``: a one-route server on the same libraries and
database, importing nothing of headrace. Its median is given in the same line (``stack_floor_s``), with the
difference (``headrace_own_s``): how much of the figure is headrace's own start-up and how much is the
stack's, which moves with the machine's speed.

PostgreSQL figures use a fresh database on the server at
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
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

INGEST_BATCH = 500
"""Task-run records per ingest request (the SDK's shipper sends batches of this order)."""

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


def answers_healthy(port: int) -> bool:
    """Whether ``GET /api/health`` on the port answers 200 now (False while nothing listens).

    One plain socket and one request: an HTTP client made for each poll (httpx builds an SSL context every
    time) would spend tens of milliseconds of CPU per poll on the machine's two cores, beside the
    starting server, and the start-up figure would measure the poller.
    """
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
            probe.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return probe.recv(64).startswith(b"HTTP/1.1 200 ")
    except OSError:
        return False


@contextmanager
def running_server(
    home: Path, database_url: str | None, command: list[str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], str, float]]:
    """Start ``headrace server start`` (or ``command``, given the port at its end); yield the process, its API
    URL and the seconds until healthy."""
    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen(
        [*(command or [*headrace_command(), "server", "start", "--port"]), str(port)],
        env=server_environment(home, database_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited: {process.stderr.read().decode() if process.stderr else ''}")
            if answers_healthy(port):
                break
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


STACK_FLOOR_SERVER = Path(__file__).with_name("stack_floor_server.py")


def stack_floor_command(home: Path, database_url: str | None) -> list[str]:
    """``stack_floor_server.py`` on the server's database; the port is appended by :func:`running_server`."""
    url = database_url or f"sqlite+aiosqlite:///{home / 'headrace.db'}"
    return [sys.executable, str(STACK_FLOOR_SERVER), url]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ------------------------------------------------------------------------------------------ load


def new_id() -> uuid.UUID:
    """An id as the SDK makes its run and state ids (time-ordered, see headrace.engine.ids)."""
    from headrace.engine.ids import new_id as sdk_id

    return sdk_id()


def _state(kind: str) -> dict[str, Any]:
    return {
        "id": str(new_id()),
        "type": kind,
        "name": kind.capitalize(),
        "timestamp": datetime.now(timezone.utc).isoformat(),
    }


class LoadConnection:
    """One keep-alive HTTP/1.1 connection that POSTs JSON and reads the answer: the load generator's client.

    Why not httpx: on a 2-core machine the load generator shares the CPU with the server, and httpx
    spends about as much CPU per request as the server's hot routes do, so the figures would measure the
    client. This sends the same requests (method, path, headers, JSON body) as any HTTP client would, at a
    small fraction of the cost, the way ``wrk`` does for servers in other languages.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: bytes, prefix: bytes) -> None:
        self._reader = reader
        self._writer = writer
        self._head = b"Host: " + host + b"\r\nContent-Type: application/json\r\nContent-Length: "
        self._prefix = prefix

    @classmethod
    async def open(cls, api: str) -> LoadConnection:
        url = urlsplit(api)
        host, port = url.hostname or "127.0.0.1", url.port or 80
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, f"{host}:{port}".encode(), url.path.rstrip("/").encode())

    async def post(self, path: str, payload: Any) -> tuple[int, bytes]:
        """POST ``payload`` as JSON to ``path`` (under the API prefix); the status and the body of the answer."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        request = b"POST %s%s HTTP/1.1\r\n%s%d\r\n\r\n%s" % (self._prefix, path.encode(), self._head, len(body), body)
        self._writer.write(request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lowered = head.lower()
        marker = lowered.find(b"\r\ncontent-length:")
        if marker < 0:
            raise RuntimeError(f"an answer without Content-Length: {head[:200]!r}")
        length = int(lowered[marker + 17 : lowered.index(b"\r\n", marker + 2)])
        answer = await self._reader.readexactly(length)
        if status >= 300:
            raise RuntimeError(f"POST {path} answered {status}: {answer[:300]!r}")
        return status, answer

    def close(self) -> None:
        self._writer.close()


class LoadJob(NamedTuple):
    """What one load process does: ``clients`` connections, each creating, transitioning and ingesting."""

    api: str
    clients: int
    runs_per_client: int
    records_per_client: int


def _client_process(job: LoadJob, barrier: Any, results: Any) -> None:
    """One load process: ``clients`` concurrent connections, in lock step with the others at each phase."""
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    api, clients, runs_per_client, records_per_client = job
    connections: list[LoadConnection] = loop.run_until_complete(
        asyncio.gather(*(LoadConnection.open(api) for _ in range(clients)))
    )
    flow_id = json.loads(loop.run_until_complete(connections[0].post("/flows", {"name": "bench"}))[1])["id"]
    created: list[list[str]] = [[] for _ in range(clients)]
    latencies: list[float] = []

    async def create(index: int) -> None:
        connection = connections[index]
        for _ in range(runs_per_client):
            run_id = str(new_id())
            began = time.perf_counter()
            await connection.post("/flow-runs", {"id": run_id, "flow_id": flow_id})
            latencies.append(time.perf_counter() - began)
            created[index].append(run_id)

    async def transition(index: int) -> None:
        connection = connections[index]
        for run_id in created[index]:
            for kind in ("PENDING", "RUNNING", "COMPLETED"):
                await connection.post(f"/flow-runs/{run_id}/set-state", {"state": _state(kind)})

    async def ingest(index: int) -> None:
        connection = connections[index]
        run_id = created[index][0] if created[index] else None
        sent = 0
        while sent < records_per_client:
            size = min(INGEST_BATCH, records_per_client - sent)
            records = [
                {
                    "task_run_id": str(new_id()),
                    "flow_run_id": run_id,
                    "task_key": "bench.noop",
                    "name": f"noop-{sent + offset}",
                    "state": _state("COMPLETED"),
                }
                for offset in range(size)
            ]
            await connection.post("/task-runs/ingest", records)
            sent += size

    try:
        for phase in (create, transition, ingest):
            barrier.wait()
            loop.run_until_complete(asyncio.gather(*(phase(index) for index in range(clients))))
            barrier.wait()
        results.put({"latencies": latencies})
    except BaseException as exc:
        barrier.abort()
        results.put({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        for connection in connections:
            connection.close()
        loop.close()


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` and its threads, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_load(
    api: str, backend: str, server_pid: int, *, clients: int, processes: int, runs: int, records: int
) -> None:
    """Three phases (creates, transitions, ingest), each timed from the first client's start to the last's end."""
    context = multiprocessing.get_context("spawn")
    per_process = max(1, clients // processes)
    total_clients = per_process * processes
    barrier = context.Barrier(processes + 1)
    results = context.Queue()
    workers = [
        context.Process(
            target=_client_process,
            args=(LoadJob(api, per_process, runs // total_clients, records // total_clients), barrier, results),
        )
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    phases: list[tuple[float, float]] = []  # (wall seconds, server CPU seconds)
    try:
        for _ in range(3):
            barrier.wait(timeout=120)
            began, cpu = time.perf_counter(), cpu_seconds(server_pid)
            barrier.wait(timeout=600)
            phases.append((time.perf_counter() - began, cpu_seconds(server_pid) - cpu))
    except threading.BrokenBarrierError:
        pass
    outcomes = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    errors = [outcome["error"] for outcome in outcomes if "error" in outcome]
    if errors:
        raise RuntimeError(f"the load failed: {errors[0]}")

    created = total_clients * (runs // total_clients)
    transitions = created * 3
    ingested = total_clients * (records // total_clients)
    (create_s, create_cpu), (transition_s, transition_cpu), (ingest_s, ingest_cpu) = phases
    latencies = sorted(latency for outcome in outcomes for latency in outcome["latencies"])
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000
    report(
        "flow_runs_created_per_s",
        backend,
        created / create_s,
        runs=created,
        clients=total_clients,
        server_cpu_ms_per_op=round(create_cpu / created * 1000, 3),
    )
    report("flow_run_create_p99_ms", backend, p99, median_ms=round(statistics.median(latencies) * 1000, 3))
    report(
        "flow_run_transitions_per_s",
        backend,
        transitions / transition_s,
        transitions=transitions,
        server_cpu_ms_per_op=round(transition_cpu / transitions * 1000, 3),
    )
    report(
        "task_run_records_ingested_per_s",
        backend,
        ingested / ingest_s,
        records=ingested,
        batch=INGEST_BATCH,
        server_cpu_ms_per_record=round(ingest_cpu / ingested * 1000, 4),
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
            # A single start varies by tens of milliseconds with what else the 2 cores do: the figure is
            # the median of several starts on the same database, each given. Each start alternates with one of
            # the stack floor (stack_floor_server.py), so both see the machine at the same moments.
            floor = stack_floor_command(home, database_url)
            starts, floor_starts = [], []
            for start in range(args.starts):
                with running_server(home, None, floor) as (_, _, seconds):
                    floor_starts.append(seconds)
                if start < args.starts - 1:
                    with running_server(home, database_url) as (_, _, seconds):
                        starts.append(seconds)
            with running_server(home, database_url) as (process, api, seconds):
                starts.append(seconds)
                headrace_median, floor_median = statistics.median(starts), statistics.median(floor_starts)
                report(
                    "start_to_healthy_existing_s",
                    backend,
                    headrace_median,
                    starts=[round(start, 3) for start in starts],
                    stack_floor_s=round(floor_median, 3),
                    stack_floor_starts=[round(start, 3) for start in floor_starts],
                    headrace_own_s=round(headrace_median - floor_median, 3),
                )
                time.sleep(args.idle_seconds)
                report("idle_rss_mb", backend, rss_mb(process.pid))
                if args.no_load:
                    return
                measure_load(
                    api,
                    backend,
                    process.pid,
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
    parser.add_argument(
        "--starts", type=int, default=5, help="Starts on the existing database; their median is the figure."
    )
    parser.add_argument("--clients", type=int, default=20, help="Concurrent clients.")
    parser.add_argument("--client-processes", type=int, default=2, help="Processes the clients are spread over.")
    parser.add_argument("--runs", type=int, default=4000, help="Flow runs to create in total.")
    parser.add_argument("--records", type=int, default=200_000, help="Task-run records to ingest in total.")
    parser.add_argument("--idle-seconds", type=float, default=2.0, help="Idle time before reading the RSS.")
    parser.add_argument(
        "--no-load", action="store_true", help="Skip the load phases: print the start-up and RSS figures only."
    )
    args = parser.parse_args(argv)
    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    for backend in backends:
        run_backend(backend, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
