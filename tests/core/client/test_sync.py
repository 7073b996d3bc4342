"""The process's one event loop, run_sync, and the exit callbacks."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from headrace.client.sync import get_loop, in_loop_thread, run_sync


async def answer(value: int) -> tuple[int, str]:
    await asyncio.sleep(0)
    return value, threading.current_thread().name


def test_one_loop_for_the_process_in_a_daemon_thread() -> None:
    loop = get_loop()
    assert get_loop() is loop
    assert loop.is_running()
    value, thread_name = run_sync(answer(42))
    assert value == 42
    assert thread_name == "headrace-loop"
    (thread,) = [t for t in threading.enumerate() if t.name == "headrace-loop"]
    assert thread.daemon
    assert not in_loop_thread()


def test_exceptions_come_back_to_the_caller() -> None:
    async def fail() -> None:
        raise KeyError("nope")

    with pytest.raises(KeyError, match="nope"):
        run_sync(fail())


def test_calling_run_sync_on_the_loop_thread_is_refused() -> None:
    async def nested() -> None:
        assert in_loop_thread()
        run_sync(answer(1))

    with pytest.raises(RuntimeError, match="would wait for itself"):
        run_sync(nested())


def test_a_timeout_cancels_the_coroutine() -> None:
    cancelled = threading.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(TimeoutError):
        run_sync(slow(), timeout=0.2)
    assert cancelled.wait(10)


def test_many_threads_share_the_loop() -> None:
    results: list[int] = []

    def work(n: int) -> None:
        results.append(run_sync(answer(n))[0])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == list(range(8))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_a_forked_child_gets_its_own_loop() -> None:
    parent_loop = get_loop()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            value, _ = run_sync(answer(7), timeout=30)
            ok = value == 7 and get_loop() is not parent_loop
            os.write(write, b"ok" if ok else b"no")
        finally:
            os._exit(0)
    os.close(write)
    assert os.read(read, 2) == b"ok"
    os.close(read)
    os.waitpid(pid, 0)
    assert get_loop() is parent_loop


def test_exit_callbacks_run_in_order_before_non_daemon_threads_are_joined() -> None:
    source = textwrap.dedent(
        """
        import threading
        from headrace.client.sync import on_exit, run_sync

        release = threading.Event()
        threading.Thread(target=release.wait).start()   # a non-daemon thread that waits for the exit hook

        async def on_the_loop():
            return "loop"

        on_exit(lambda: print("second", run_sync(on_the_loop()), flush=True), order=100)
        on_exit(lambda: (print("first", flush=True), release.set()), order=0)
        on_exit(lambda: 1 / 0, order=50)   # a failing callback does not stop the others
        """
    )
    done = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["first", "second loop"]
    assert "ZeroDivisionError" in done.stderr


_FREEZE_STAGES = """
import gc
from headrace.client.sync import freeze_start_up_objects

collections = []
gc.callbacks.append(lambda phase, info: phase == "stop" and info["generation"] == 2 and collections.append(2))
kept = []
freeze_start_up_objects("one")
frozen = gc.get_freeze_count()
freeze_start_up_objects("one")  # the same stage again: nothing
again = (len(collections), gc.get_freeze_count())
kept.append([])  # a new object, then a new stage
freeze_start_up_objects("two")
print(collections[:1], frozen > 1000, again == (1, frozen), gc.get_freeze_count() > frozen, len(collections))
"""


def test_start_up_objects_are_frozen_once_per_stage_after_a_full_collection() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _FREEZE_STAGES], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[2]", "True", "True", "True", "2"]


_ENGINE_FREEZE = """
import gc, sys
from headrace.engine.api import current_settings, engine_api

if sys.argv[1] == "off":
    gc.disable()
before = gc.get_freeze_count()
engine_api(current_settings())  # an HTTP client: nothing is sent yet
print(before, gc.get_freeze_count())
"""


@pytest.mark.parametrize("collector", ["on", "off"])
def test_the_engine_freezes_start_up_objects_when_it_opens_its_client(tmp_path: Path, collector: str) -> None:
    env = {key: value for key, value in os.environ.items() if not key.upper().startswith("HEADRACE_")}
    env.update(HEADRACE_HOME=str(tmp_path), HEADRACE_API_URL="http://127.0.0.1:9/api")
    done = subprocess.run(
        [sys.executable, "-c", _ENGINE_FREEZE, collector],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    before, after = (int(value) for value in done.stdout.split())
    assert before == 0
    assert (after > 10_000) if collector == "on" else (after == 0)
