"""``DaskTaskRunner`` on its own: registration by name without importing Dask, options, cancellation."""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from headrace.task_runners import resolve_task_runner
from headrace.testing.contracts.task_runner import touch_after
from headrace_dask.task_runner import DaskTaskRunner, InProcessDaskTaskRunner


def test_listing_the_plugin_does_not_import_dask() -> None:
    script = textwrap.dedent(
        """
        import sys
        from headrace.plugins import get_plugin_manager

        names = [r.name for r in get_plugin_manager().registrations("headrace_task_runners")]
        assert "dask" in names, names
        loaded = sorted(name for name in ("dask", "distributed", "headrace_dask.task_runner") if name in sys.modules)
        print("loaded", loaded)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "loaded []"


def test_the_name_dask_selects_it() -> None:
    runner = resolve_task_runner("dask")
    assert type(runner) is DaskTaskRunner
    assert runner.address is None
    assert type(runner).separate_processes


def test_options_and_duplicate() -> None:
    runner = DaskTaskRunner(n_workers=3, threads_per_worker=2, cluster_kwargs={"memory_limit": "1GiB"})
    copy = runner.duplicate()
    assert type(copy) is DaskTaskRunner
    assert copy is not runner
    assert (copy.n_workers, copy.threads_per_worker, copy.cluster_kwargs) == (3, 2, {"memory_limit": "1GiB"})
    assert repr(copy) == "DaskTaskRunner(n_workers=3, threads_per_worker=2)"
    threads = DaskTaskRunner(processes=False)
    assert type(threads) is InProcessDaskTaskRunner
    assert not type(threads).separate_processes
    assert type(threads.duplicate()) is InProcessDaskTaskRunner
    remote = DaskTaskRunner("tcp://127.0.0.1:8786", client_kwargs={"name": "etl"})
    assert repr(remote.duplicate()) == "DaskTaskRunner(address='tcp://127.0.0.1:8786')"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"address": "tcp://127.0.0.1:8786", "n_workers": 2}, r"n_workers configure a LocalCluster, but address="),
        ({"address": "tcp://127.0.0.1:8786", "processes": False}, r"processes configure a LocalCluster"),
        ({"address": "  "}, r"address must be a scheduler address"),
        ({"n_workers": 0}, r"n_workers must be a whole number of at least 1, got 0"),
        ({"threads_per_worker": 1.5}, r"threads_per_worker must be a whole number"),
        ({"processes": "yes"}, r"processes must be True or False"),
    ],
)
def test_bad_options_are_one_line_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        DaskTaskRunner(**kwargs)
    assert "\n" not in str(caught.value)


def test_an_unreachable_scheduler_is_a_clear_error() -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    runner = DaskTaskRunner(f"tcp://127.0.0.1:{port}", client_kwargs={"timeout": 2})
    with pytest.raises(RuntimeError, match=rf"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}"):
        runner.start()
    assert not runner.started


def test_shutdown_without_waiting_cancels_what_has_not_started(local_cluster: Any, tmp_path: Path) -> None:
    runner = DaskTaskRunner(local_cluster.scheduler_address)
    paths = [str(tmp_path / f"done-{i}") for i in range(8)]
    runner.start()
    futures = [runner.submit(touch_after, path, 1.0) for path in paths]
    time.sleep(0.3)
    runner.shutdown(wait=False)
    assert not runner.started
    concurrent.futures.wait(futures, timeout=30)
    assert all(future.done() for future in futures)
    assert all(future.cancelled() for future in futures)  # nobody waits for what was running, either
    time.sleep(2.5)  # anything still queued would have run by now
    assert sum(Path(path).exists() for path in paths) <= 4  # two single-threaded workers: the rest never ran
    with pytest.raises(RuntimeError, match="not started"):
        runner.submit(touch_after, paths[0], 0)


def test_after_cancel_pending_nothing_new_starts(local_cluster: Any, tmp_path: Path) -> None:
    with DaskTaskRunner(local_cluster.scheduler_address) as runner:
        runner.cancel_pending()
        future = runner.submit(touch_after, str(tmp_path / "never"), 0)
        assert future.cancelled()
    assert not (tmp_path / "never").exists()
