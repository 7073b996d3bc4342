"""Flows on ``DaskTaskRunner`` against a live headrace server: what the workers do arrives on the server.

The flow's process talks to the server over HTTP (``HEADRACE_API_URL``); the Dask workers (processes of the
session's ``LocalCluster``) report task-run states and logs themselves, from the settings that travel with
each call. Everything is read back through the API. Retries and caching are compared with the thread pool
on the same flows: the state histories must be the same.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from headrace import flow, get_run_context, get_run_logger, task
from headrace.cache_policies import INPUTS
from headrace.client.sync import SyncClient
from headrace.schemas.logs import LogFilter
from headrace.schemas.runs import TaskRunFilter
from headrace.settings import Settings, get_settings
from headrace.task_runners import TaskRunner, ThreadPoolTaskRunner
from headrace.testing.server import RunningServer, running_server
from headrace_dask.task_runner import DaskTaskRunner


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = get_settings(home=tmp_path_factory.mktemp("server-home"), server_retention_enabled=False)
    with running_server(settings) as running:
        yield running


@pytest.fixture(autouse=True)
def client_settings(server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The flow's process: its own ``HEADRACE_HOME`` (spool, results), runs recorded on the live server."""
    for name in list(os.environ):
        if name.upper().startswith("HEADRACE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HEADRACE_HOME", str(tmp_path / "client-home"))
    monkeypatch.setenv("HEADRACE_API_URL", server.api_url)
    yield get_settings()
    from headrace import records

    records.flush(timeout=30)


@pytest.fixture
def dask_runner(local_cluster: Any) -> DaskTaskRunner:
    return DaskTaskRunner(address=local_cluster.scheduler_address)


@pytest.fixture
def api(client_settings: Settings) -> Iterator[SyncClient]:
    with SyncClient.from_settings(client_settings) as client:
        yield client


def task_runs(api: SyncClient, flow_run_id: UUID) -> list[Any]:
    from headrace import records

    assert records.flush(timeout=60)
    return list(api.read_task_runs(TaskRunFilter(flow_run_ids=[flow_run_id], limit=200)).items)


# -- tasks (module level: they travel to the workers by value, this file not being importable there) -------


@task
def greet(x: int) -> int:
    get_run_logger().info("hello %s from process %s", x, os.getpid())
    return os.getpid()


@task
def produce(x: int) -> tuple[int, int]:
    time.sleep(0.3)  # long enough that both workers get some
    return os.getpid(), x * 10


@task
def consume(produced: tuple[int, int]) -> tuple[int, int, int]:
    producer, value = produced
    return producer, os.getpid(), value + 1


@task(retries=2, retry_delay_seconds=0)
def flaky(folder: str) -> int:
    attempts = len(list(Path(folder).iterdir()))
    Path(folder, f"attempt-{attempts}").touch()
    if attempts < 2:
        raise ConnectionError(f"attempt {attempts} fails")
    return attempts


@task(cache_policy=INPUTS)
def expensive(folder: str, x: int) -> int:
    Path(folder, f"ran-{len(list(Path(folder).iterdir()))}").touch()
    return x * x


@task(task_run_name="slow-{index}")
def slow(folder: str, index: int) -> int:
    Path(folder, f"started-{index}").touch()
    time.sleep(1.5)
    return index


# -- the tests -------------------------------------------------------------------------------------------


def test_task_run_states_and_logs_from_the_workers_reach_the_server(
    dask_runner: DaskTaskRunner, api: SyncClient
) -> None:
    @flow(task_runner=dask_runner)
    def greetings() -> list[int]:
        return greet.map(range(4)).result()

    state = greetings(return_state=True)
    pids = state.result()
    assert os.getpid() not in pids
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    runs = task_runs(api, flow_run_id)
    assert len(runs) == 4
    assert {run.state.type.value for run in runs} == {"COMPLETED"}
    logs = api.read_logs(LogFilter(flow_run_ids=[flow_run_id], limit=200)).items
    hello = [log for log in logs if log.message.startswith("hello ")]
    assert sorted(log.message.split()[1] for log in hello) == ["0", "1", "2", "3"]
    assert {log.task_run_id for log in hello} == {run.id for run in runs}
    assert {int(log.message.split()[-1]) for log in hello} == set(pids)


def test_futures_resolve_across_workers(dask_runner: DaskTaskRunner, api: SyncClient) -> None:
    @flow(task_runner=dask_runner)
    def pipeline() -> list[tuple[int, int, int]]:
        produced = produce.map(range(6))
        return [consume.submit(future).result() for future in produced]

    results = pipeline()
    assert [value for _, _, value in results] == [x * 10 + 1 for x in range(6)]
    workers = {producer for producer, _, _ in results} | {consumer for _, consumer, _ in results}
    assert len(workers) == 2  # both worker processes took part
    assert os.getpid() not in workers


def _retry_history(runner: TaskRunner, folder: Path, api: SyncClient) -> tuple[int, list[str]]:
    folder.mkdir()

    @flow(task_runner=runner)
    def retrying() -> tuple[int, UUID]:
        future = flaky.submit(str(folder))
        return future.result(), future.task_run_id

    attempts, task_run_id = retrying()
    from headrace import records

    assert records.flush(timeout=60)
    task_runs_seen = api.read_task_run(task_run_id)
    assert task_runs_seen.run_count == 3
    return attempts, [state.name for state in api.read_task_run_states(task_run_id)]


def test_retries_behave_as_with_the_thread_pool(dask_runner: DaskTaskRunner, api: SyncClient, tmp_path: Path) -> None:
    threads = _retry_history(ThreadPoolTaskRunner(max_workers=2), tmp_path / "threads", api)
    on_dask = _retry_history(dask_runner, tmp_path / "dask", api)
    assert on_dask == threads
    assert on_dask[0] == 2
    assert on_dask[1].count("AwaitingRetry") == 2


def _cache_history(runner: TaskRunner, folder: Path, api: SyncClient) -> tuple[list[str], int]:
    folder.mkdir()

    @flow(task_runner=runner)
    def cached() -> tuple[str, int]:
        future = expensive.submit(str(folder), 7)
        future.wait()
        return future.state.name, future.result()

    names = []
    for _ in range(2):
        name, value = cached()
        assert value == 49
        names.append(name)
    return names, len(list(folder.iterdir()))


def test_caching_behaves_as_with_the_thread_pool(dask_runner: DaskTaskRunner, api: SyncClient, tmp_path: Path) -> None:
    threads = _cache_history(ThreadPoolTaskRunner(max_workers=2), tmp_path / "threads", api)
    on_dask = _cache_history(dask_runner, tmp_path / "dask", api)
    assert on_dask == threads == (["Completed", "Cached"], 1)


def test_cancelling_the_flow_cancels_pending_dask_futures(
    dask_runner: DaskTaskRunner, api: SyncClient, local_cluster: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "markers"
    folder.mkdir()
    seen: list[UUID] = []

    @flow(task_runner=dask_runner)
    async def long_haul() -> None:
        seen.append(get_run_context().flow_run.id)  # type: ignore[union-attr]
        slow.map(str(folder), range(8))
        await asyncio.sleep(600)

    async def cancel_once_started() -> None:
        run = asyncio.ensure_future(long_haul())
        deadline = time.monotonic() + 120
        while not any(folder.iterdir()):
            assert time.monotonic() < deadline, "no task started"
            await asyncio.sleep(0.05)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(cancel_once_started())
    time.sleep(2.0)  # what was running when the flow was cancelled finishes on its worker
    from distributed import Client

    from headrace_dask.worker import flush_records

    with Client(local_cluster.scheduler_address, set_as_default=False) as client:
        assert all(client.run(flush_records, 60).values())
    started = {int(path.name.split("-")[1]) for path in folder.iterdir()}
    (flow_run_id,) = seen
    runs = task_runs(api, flow_run_id)
    by_index = {int(run.name.rsplit("-", 1)[1]): run.state.name for run in runs}
    assert 1 <= len(started) <= 4, by_index  # two workers, one thread each: the rest never started
    assert api.read_flow_run(flow_run_id).state.type.value == "CANCELLED"  # type: ignore[union-attr]
    assert len(runs) == 8
    assert {index for index, name in by_index.items() if name == "Completed"} == started
    assert {index for index, name in by_index.items() if name == "Cancelled"} == set(range(8)) - started
