"""What travels between the flow's process and the Dask workers, and how.

Calls refer only to importable code go through the standard pickler; anything a worker could not import
(classes and functions of this test file, lambdas) falls back to cloudpickle, by value. Results come back
pickled from worker processes, and untouched from worker threads of the flow's own process. Everything is
checked on real workers: the ``dask_pair`` workers cannot import this file.
"""

from __future__ import annotations

import pickle
import sys
import textwrap
import threading
import types
from collections.abc import Iterator
from typing import Any

import pytest

from headrace.testing.contracts.task_runner import touch_after
from headrace_dask.task_runner import DaskTaskRunner
from headrace_dask.worker import CallPickler

#: Code of a module that exists only in this process, as code in a notebook or ``__main__`` does: neither
#: the standard pickler nor a worker can find it by name, so it must travel by value.
SCRATCH_SOURCE = textwrap.dedent(
    """
    from dataclasses import dataclass


    @dataclass
    class Parcel:
        label: str
        weight: int


    def unwrap(parcel):
        return parcel.label, parcel.weight, type(parcel).__name__


    def make_parcel(label):
        return Parcel(label, len(label))


    def make_adder(step):
        return lambda value: value + step
    """
)


@pytest.fixture(scope="module")
def scratch() -> Iterator[types.ModuleType]:
    name = "headrace_dask_scratch_code"
    module = types.ModuleType(name)
    sys.modules[name] = module
    try:
        exec(compile(SCRATCH_SOURCE, f"<{name}>", "exec"), module.__dict__)
        yield module
    finally:
        del sys.modules[name]


def label_of(parcel: Any) -> str:
    return str(parcel.label)


SHARED_LOCK = threading.Lock()


def the_lock() -> threading.Lock:
    # Looked up through sys.modules, so that the function pickles even when this test module is judged not
    # importable elsewhere (then it travels by value, and a lock in its globals could not): the test is about
    # the result not being copied, not about how the function travels.
    lock: threading.Lock = sys.modules[__name__].SHARED_LOCK
    return lock


def test_plain_calls_skip_cloudpickle_and_the_rest_travel_by_value(scratch: types.ModuleType) -> None:
    pickler = CallPickler()
    plain, _ = pickler.dumps(touch_after, ("/tmp/x", 0.5, {"k": [1, 2.5, None, b"x"]}))
    assert b"cloudpickle" not in plain  # importable function, plain data: the standard pickler
    assert pickle.loads(plain)[0] is touch_after
    by_value, _ = pickler.dumps(label_of, (scratch.Parcel("a", 1),))
    assert b"cloudpickle" in by_value  # the class is rebuilt from its definition on the worker
    with_lambda, _ = pickler.dumps(touch_after, (lambda: 1,))
    assert b"cloudpickle" in with_lambda


def test_objects_workers_cannot_import_travel_both_ways(dask_pair: str, scratch: types.ModuleType) -> None:
    with DaskTaskRunner(dask_pair) as runner:
        sent = runner.submit(scratch.unwrap, scratch.Parcel("crate", 7))
        argument = runner.submit(repr, scratch.Parcel("sack", 2))  # importable function, argument by value
        made = runner.submit(scratch.make_parcel, "box")
        adder = runner.submit(scratch.make_adder, 5)
        assert sent.result(timeout=120) == ("crate", 7, "Parcel")
        assert argument.result(timeout=120) == "Parcel(label='sack', weight=2)"
        parcel = made.result(timeout=120)
        assert (type(parcel).__name__, parcel.label, parcel.weight) == ("Parcel", "box", 3)
        assert adder.result(timeout=120)(10) == 15


def test_many_quick_submissions_are_batched_without_mixing_results(local_cluster: Any) -> None:
    with DaskTaskRunner(local_cluster.scheduler_address) as runner:
        futures = [runner.submit(len, "x" * size) for size in range(300)]
        assert [future.result(timeout=300) for future in futures] == list(range(300))


def test_worker_threads_of_the_flow_process_return_the_object_itself() -> None:
    with DaskTaskRunner(n_workers=1, threads_per_worker=2, processes=False) as runner:
        assert runner.submit(the_lock).result(timeout=60) is SHARED_LOCK  # not copied (a lock cannot be)
