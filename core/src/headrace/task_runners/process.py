"""A task runner that runs submitted tasks in a pool of worker processes.

Work travels to the workers with cloudpickle, so tasks defined in ``__main__``, in notebooks or in modules
the workers cannot import (test files) still run: their code is sent by value. Results come back the same
way. Workers are started with ``spawn`` (a fresh interpreter: no inherited threads or event loop), rebuild
settings and the plugin manager on first use (neither can be pickled), and report their task-run records
themselves through the same spool and shipper as any process, so records reach the server exactly as they
do from threads.

Unlike plain ``multiprocessing``, the workers do not import the program's ``__main__`` module: the work
carries its code by value, so a script without an ``if __name__ == "__main__":`` guard does not run again
in every worker.
"""

from __future__ import annotations

import importlib.machinery
import multiprocessing
import os
import pickle
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

from headrace.task_runners.base import TaskRunner

__all__ = ["ProcessPoolTaskRunner"]

T = TypeVar("T")

#: True inside a process-pool worker (set by the pool's initializer).
IN_WORKER = False


#: How long a worker, when its pool shuts down at the end of a flow run, waits for the API to acknowledge
#: the run records it reported. The flow run ends after its workers, so its task runs are readable when
#: the flow call returns; what a server that is down leaves behind waits in the spool as always.
WORKER_RECORDS_WAIT = 60.0

_exit_hook_registered = False


def _initialize_worker() -> None:
    global IN_WORKER  # noqa: PLW0603 - a per-process flag
    IN_WORKER = True


def deliver_records_at_exit() -> None:
    """In a worker: at exit, wait (up to :data:`WORKER_RECORDS_WAIT`) until its records are delivered."""
    global _exit_hook_registered  # noqa: PLW0603 - once per worker process
    if _exit_hook_registered:
        return
    _exit_hook_registered = True
    from headrace.client.sync import on_exit

    def deliver() -> None:
        from headrace import records

        records.flush(timeout=WORKER_RECORDS_WAIT)

    on_exit(deliver, order=-10)  # before the records pipeline's own, shorter, flush at exit


_spawning = threading.local()
_patch_lock = threading.Lock()
_patched = False


def _skip_main_in_workers() -> None:
    """Make processes this runner spawns skip re-importing ``__main__`` (only while it spawns them)."""
    global _patched  # noqa: PLW0603 - patched once per process
    with _patch_lock:
        if _patched:
            return
        from multiprocessing import spawn

        original = spawn.get_preparation_data

        def get_preparation_data(name: str) -> dict[str, Any]:
            data: dict[str, Any] = original(name)
            if getattr(_spawning, "active", False):
                data.pop("init_main_from_path", None)
                data.pop("init_main_from_name", None)
            return data

        spawn.get_preparation_data = get_preparation_data
        _patched = True


def _run_payload(payload: bytes) -> bytes:
    """Runs in the worker: unpickle ``(fn, args)``, call it, cloudpickle what it returned."""
    import cloudpickle

    fn, args = pickle.loads(payload)
    return bytes(cloudpickle.dumps(fn(*args)))


def importable_elsewhere(module_name: str) -> bool:
    """Whether a fresh interpreter with this ``sys.path`` can import ``module_name`` by name.

    For runners whose work travels to other processes: code from a module that cannot be imported there
    (``__main__``, a notebook, a test file) must travel by value. Shared by the built-in process pool and
    integrations such as headrace-dask.
    """
    if module_name == "__main__":
        return False
    top = module_name.partition(".")[0]
    if top in sys.builtin_module_names:
        return True
    try:
        return importlib.machinery.PathFinder.find_spec(top, sys.path) is not None
    except (ImportError, ValueError):
        return False


def _code_modules(obj: Any) -> set[str]:
    """The modules whose code ``obj`` carries: a function's own, or a task call's function's and hooks'."""
    modules: set[str] = set()
    declare = getattr(obj, "__headrace_code_modules__", None)
    if callable(declare):
        modules.update(declare())
    elif callable(obj) and isinstance(getattr(obj, "__module__", None), str):
        modules.add(obj.__module__)
    return modules


def _dumps(fn: Callable[..., Any], args: tuple[Any, ...]) -> bytes:
    import cloudpickle

    for name in set().union(*(_code_modules(item) for item in (fn, *args))):
        module = sys.modules.get(name)
        if module is not None and name != "__main__" and not importable_elsewhere(name):
            cloudpickle.register_pickle_by_value(module)
    return bytes(cloudpickle.dumps((fn, args)))


class ProcessPoolTaskRunner(TaskRunner):
    """Runs submitted tasks in up to ``max_workers`` processes (default: the number of CPUs)."""

    separate_processes = True

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__()
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        self.max_workers = max_workers or os.cpu_count() or 1
        self._executor: ProcessPoolExecutor | None = None

    def duplicate(self) -> ProcessPoolTaskRunner:
        return type(self)(max_workers=self.max_workers)

    def start(self) -> None:
        if self._executor is None:
            _skip_main_in_workers()
            self._executor = ProcessPoolExecutor(
                self.max_workers, mp_context=multiprocessing.get_context("spawn"), initializer=_initialize_worker
            )
        super().start()

    def shutdown(self, wait: bool = True) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=not wait)
        super().shutdown(wait)

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        self._require_started()
        assert self._executor is not None
        payload = _dumps(fn, args)
        _spawning.active = True  # the executor spawns workers (if it needs more) inside submit()
        try:
            inner = self._executor.submit(_run_payload, payload)
        finally:
            _spawning.active = False
        outer: Future[T] = Future()

        def relay(done: Future[bytes]) -> None:
            try:
                outer.set_result(pickle.loads(done.result()))
            except BaseException as exc:
                outer.set_exception(exc)

        inner.add_done_callback(relay)
        return outer

    def __repr__(self) -> str:
        return f"ProcessPoolTaskRunner(max_workers={self.max_workers})"
