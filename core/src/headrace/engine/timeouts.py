"""Timeouts for synchronous user code, which cannot be cancelled the way a coroutine can.

:func:`sync_timeout` interrupts the block when it runs too long, by raising the given
:class:`~headrace.exceptions.RunTimeoutError` *in the thread running it*:

* in the main thread, through a ``SIGALRM`` handler (so a blocking ``time.sleep`` or ``select`` is
  interrupted too), unless the program installed its own ``SIGALRM`` handler;
* in any other thread, with ``PyThreadState_SetAsyncExc``: the exception is raised at the thread's next
  Python instruction. A thread blocked inside one long C call (a ``time.sleep(600)``) is interrupted only
  when that call returns; code that waits in short steps, or in Python, stops at once.

One watchdog thread serves every deadline of the process (no thread per timed call). A deadline that passes
just as its block ends is withdrawn, so the exception never escapes into the code after the block.
"""

from __future__ import annotations

import ctypes
import heapq
import itertools
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from headrace.exceptions import RunTimeoutError

__all__ = ["sync_timeout"]


@dataclass(order=True)
class _Deadline:
    at: float
    seq: int
    thread_id: int = field(compare=False)
    marker: type[BaseException] = field(compare=False)
    use_signal: bool = field(compare=False)
    lock: threading.Lock = field(compare=False, default_factory=threading.Lock)
    done: bool = field(compare=False, default=False)
    fired: bool = field(compare=False, default=False)


class _Watchdog:
    """One daemon thread that fires the earliest deadline when it passes."""

    def __init__(self) -> None:
        self._heap: list[_Deadline] = []
        self._condition = threading.Condition()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, seconds: float, marker: type[BaseException], use_signal: bool) -> _Deadline:
        deadline = _Deadline(
            at=time.monotonic() + seconds,
            seq=next(self._seq),
            thread_id=threading.get_ident(),
            marker=marker,
            use_signal=use_signal,
        )
        with self._condition:
            heapq.heappush(self._heap, deadline)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="headrace-timeouts", daemon=True)
                self._thread.start()
            self._condition.notify()
        return deadline

    def _serve(self) -> None:
        while True:
            with self._condition:
                while self._heap and self._heap[0].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._condition.wait()
                    continue
                wait = self._heap[0].at - time.monotonic()
                if wait > 0:
                    self._condition.wait(wait)
                    continue
                deadline = heapq.heappop(self._heap)
            _fire(deadline)


def _fire(deadline: _Deadline) -> None:
    with deadline.lock:
        if deadline.done:
            return
        deadline.fired = True
        if deadline.use_signal:
            _pending_signal_markers.append(deadline)
            signal.pthread_kill(deadline.thread_id, signal.SIGALRM)
        else:
            _set_async_exc(deadline.thread_id, deadline.marker)


def _set_async_exc(thread_id: int, exc_type: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type) if exc_type is not None else ctypes.c_void_p(0)
    )


_watchdog = _Watchdog()
_pending_signal_markers: list[_Deadline] = []
_signal_depth = 0


def _on_alarm(signum: int, frame: object) -> None:
    while _pending_signal_markers:
        deadline = _pending_signal_markers.pop(0)
        if not deadline.done:
            raise deadline.marker()


def _can_use_signal() -> bool:
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGALRM"):
        return False
    current = signal.getsignal(signal.SIGALRM)
    return current in (signal.SIG_DFL, _on_alarm)


@contextmanager
def sync_timeout(seconds: float | None, error: type[RunTimeoutError], message: str) -> Iterator[None]:
    """Raise ``error(message)`` in this thread if the block runs longer than ``seconds`` (``None``: no limit)."""
    global _signal_depth  # noqa: PLW0603 - process-wide: the handler is installed once per nesting
    if seconds is None:
        yield
        return
    marker: type[BaseException] = type(error.__name__, (error,), {"__module__": error.__module__})
    use_signal = _can_use_signal()
    if use_signal:
        if _signal_depth == 0:
            signal.signal(signal.SIGALRM, _on_alarm)
        _signal_depth += 1
    deadline = _watchdog.add(max(0.0, seconds), marker, use_signal)
    try:
        yield
    except marker:
        raise error(message) from None
    finally:
        with deadline.lock:
            deadline.done = True
            if deadline.fired and not deadline.use_signal:
                _set_async_exc(deadline.thread_id, None)  # withdraw an exception not raised yet
        if use_signal:
            _signal_depth -= 1
            if _signal_depth == 0:
                signal.signal(signal.SIGALRM, signal.SIG_DFL)
