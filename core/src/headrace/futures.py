"""Futures: handles on submitted task runs.

``task.submit(...)`` returns a :class:`HeadraceFuture`; ``task.map(...)`` a :class:`HeadraceFutureList` of
them. A future passed as an argument to another task makes that task wait for it (a dependency)::

    @flow
    def pipeline():
        raw = extract.submit()
        tidy = transform.submit(raw)          # runs once `raw` has completed, with its result
        for future in as_completed(load.map([tidy, tidy])):
            print(future.result())

``result()`` waits and returns the value or raises what failed the run; ``wait()`` only waits; ``state``
is the task run's latest state. :func:`wait` and :func:`as_completed` work on any number of futures.

A future the flow never resolves still counts: the flow run waits for every task run it submitted before it
ends, and a submitted task run that failed without anyone looking at its future fails the flow (see
``docs/flows.md``, "How a flow run's final state is decided").
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, NamedTuple, TypeVar
from uuid import UUID

from headrace.states import Pending, State

__all__ = ["DoneAndNotDoneFutures", "HeadraceFuture", "HeadraceFutureList", "as_completed", "wait"]

R = TypeVar("R")


class HeadraceFuture(Generic[R]):
    """The eventual final state (and result) of a submitted task run."""

    __slots__ = ("_current", "_future", "name", "observed", "task_run_id")

    def __init__(
        self,
        task_run_id: UUID,
        name: str,
        future: concurrent.futures.Future[State],
        current: Callable[[], State | None] | None = None,
    ) -> None:
        self.task_run_id = task_run_id
        self.name = name
        self._future = future
        self._current = current
        self.observed = False
        """Whether anyone looked at the outcome (result, wait, state, a dependency, a return value)."""

    @property
    def state(self) -> State:
        """The task run's state now: its final state once done, else the latest one this process knows."""
        self.observed = True
        if self._future.done():
            return self._final_state()
        current = self._current() if self._current is not None else None
        return current if current is not None else Pending()

    def done(self) -> bool:
        return self._future.done()

    def peek_state(self) -> State:
        """Like :attr:`state`, but without counting as looking at the outcome (for the engine's own checks)."""
        if self._future.done():
            return self._final_state()
        current = self._current() if self._current is not None else None
        return current if current is not None else Pending()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the task run has finished, or ``timeout`` seconds have passed."""
        self.observed = True
        concurrent.futures.wait([self._future], timeout=timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> R:
        """Wait for the task run and return its result; raise what failed it (unless ``raise_on_failure=False``).

        Raises :class:`TimeoutError` if the run has not finished within ``timeout`` seconds.
        """
        self.observed = True
        try:
            self._future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"task run {self.name!r} did not finish within {timeout} s") from None
        except BaseException:
            pass  # an engine failure; reported as the state below
        result: R = self._final_state().result(raise_on_failure=raise_on_failure)
        return result

    def add_done_callback(self, fn: Callable[[HeadraceFuture[R]], object]) -> None:
        """Call ``fn(self)`` once the task run has finished (at once if it already has)."""
        self._future.add_done_callback(lambda _: fn(self))

    @property
    def wrapped(self) -> concurrent.futures.Future[State]:
        """The underlying ``concurrent.futures.Future`` whose result is the final state."""
        return self._future

    def _final_state(self) -> State:
        try:
            return self._future.result()
        except BaseException as exc:  # the engine itself failed (a worker process died, ...)
            from headrace.states import Crashed

            return Crashed(message=f"the task run could not finish: {type(exc).__name__}: {exc}").with_value(exc)

    def __repr__(self) -> str:
        status = self._final_state().name if self._future.done() else "pending"
        return f"HeadraceFuture({self.name!r}, {status})"


class HeadraceFutureList(list[HeadraceFuture[R]]):
    """What ``task.map()`` returns: a list of futures with ``wait()`` and ``result()`` over all of them."""

    def wait(self, timeout: float | None = None) -> None:
        wait(self, timeout=timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> list[R]:
        """Every future's result, in order (raises the first failure unless ``raise_on_failure=False``)."""
        self.wait(timeout)
        return [future.result(timeout=0, raise_on_failure=raise_on_failure) for future in self]


class DoneAndNotDoneFutures(NamedTuple):
    done: set[HeadraceFuture[Any]]
    not_done: set[HeadraceFuture[Any]]


def wait(futures: Iterable[HeadraceFuture[Any]], timeout: float | None = None) -> DoneAndNotDoneFutures:
    """Wait until every future is done, or ``timeout`` seconds have passed; return which are done."""
    futures = list(futures)
    for future in futures:
        future.observed = True
    by_inner = {future.wrapped: future for future in futures}
    done, not_done = concurrent.futures.wait(list(by_inner), timeout=timeout)
    return DoneAndNotDoneFutures({by_inner[f] for f in done}, {by_inner[f] for f in not_done})


def as_completed(futures: Iterable[HeadraceFuture[R]], timeout: float | None = None) -> Iterator[HeadraceFuture[R]]:
    """Yield the futures as their task runs finish, first finished first.

    Raises :class:`TimeoutError` if some have not finished within ``timeout`` seconds.
    """
    futures = list(futures)
    for future in futures:
        future.observed = True
    by_inner = {future.wrapped: future for future in futures}
    try:
        for inner in concurrent.futures.as_completed(list(by_inner), timeout=timeout):
            yield by_inner[inner]
    except concurrent.futures.TimeoutError:
        raise TimeoutError(f"not every future finished within {timeout} s") from None


def resolved(value: Any) -> Any:
    """``value`` with futures and states (also inside lists, tuples, sets and dicts) replaced by their results."""
    if isinstance(value, HeadraceFuture):
        return value.result()
    if isinstance(value, State):
        return value.result()
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [resolved(item) for item in value]
        if isinstance(value, tuple) and hasattr(value, "_fields"):
            return type(value)(*items)
        return type(value)(items)
    if isinstance(value, dict):
        return type(value)((key, resolved(item)) for key, item in value.items())
    return value
