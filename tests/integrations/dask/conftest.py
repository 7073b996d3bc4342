"""Fixtures for headrace-dask: real Dask clusters on loopback, started as few times as possible (2 cores).

- ``dask_pair`` (session): a real ``dask scheduler`` and a ``dask worker`` (two worker processes, one
  thread each) started as subprocesses on free 127.0.0.1 ports, with no ``HEADRACE_*`` variable in their
  environment (like workers on another machine: everything they know about headrace travels with the
  work). Stopped by their process ids at the end of the session.
- ``local_cluster`` (session): a ``LocalCluster`` with two worker processes, one thread each, shared by the
  tests that run flows against a live server.
- ``shared_headrace_home`` (session): one ``HEADRACE_HOME`` for the contract classes (creating and
  migrating the embedded database takes seconds).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

WORKER_PROCESSES = 2


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _dask_executable() -> str:
    candidate = Path(sys.executable).parent / "dask"
    if not candidate.is_file():
        raise RuntimeError(f"the `dask` command is not installed next to {sys.executable}")
    return str(candidate)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_for_workers(address: str, count: int, processes: list[subprocess.Popen[bytes]], logs: Path) -> None:
    from distributed import Client

    deadline = time.monotonic() + 120
    with Client(address, timeout=60, set_as_default=False) as client:
        while len(client.scheduler_info(n_workers=-1)["workers"]) < count:
            if any(process.poll() is not None for process in processes) or time.monotonic() > deadline:
                raise RuntimeError(f"the Dask workers did not connect; logs in {logs}")
            time.sleep(0.2)


@pytest.fixture(scope="session")
def dask_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address of a real ``dask scheduler`` with ``dask worker`` processes, all on loopback."""
    folder = tmp_path_factory.mktemp("dask-pair")
    environment = {name: value for name, value in os.environ.items() if not name.upper().startswith("HEADRACE_")}
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = _dask_executable()
    worker_options = ["--host", "127.0.0.1", "--nworkers", str(WORKER_PROCESSES), "--nthreads", "1"]
    worker_options += ["--no-dashboard", "--local-directory", str(folder / "work")]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with (folder / "scheduler.log").open("wb") as log:
            processes.append(
                subprocess.Popen(
                    [
                        dask,
                        "scheduler",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--dashboard-address",
                        "127.0.0.1:0",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=environment,
                    cwd=folder,
                )
            )
        with (folder / "worker.log").open("wb") as log:
            processes.append(
                subprocess.Popen(
                    [dask, "worker", address, *worker_options],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=environment,
                    cwd=folder,
                )
            )
        _wait_for_workers(address, WORKER_PROCESSES, processes, folder)
        yield address
    finally:
        for process in reversed(processes):
            _stop(process)


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[Any]:
    """A ``LocalCluster`` of two single-threaded worker processes (its ``scheduler_address`` is what tests use)."""
    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=WORKER_PROCESSES, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
    )
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def shared_headrace_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("headrace-home")
