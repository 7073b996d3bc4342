"""The boundary between the flow's process and the Dask workers: what travels, and what runs over there.

Work travels as one pickled payload, ``(fn, args)``, made by :class:`CallPickler` in the flow's process.
Pickling it ourselves (instead of handing ``fn`` and ``args`` to Dask) matters for code the workers cannot
import by name — tasks defined in ``__main__``, a notebook or a test file: those modules are registered with
cloudpickle to travel *by value*. Dask tries the standard pickle first, which would pickle such a function by
reference and leave the worker unable to load it. A call that refers to no such code (the usual case: the
task itself travels separately, see :class:`CallPickler`) is pickled by the standard, C-speed pickler;
cloudpickle, whose per-object work in Python was most of a submission's cost, handles the rest.

On the worker, :func:`run_payload` unpickles and calls. The first call in a worker *process* (not a worker
thread of the flow's own process) marks the process as a headrace worker, so that the engine points its run
records and logs at the flow's settings, which travel inside each call (the same path a process-pool worker
takes); it also makes the worker's plugin manager follow the flow's plugin settings. Records are then
shipped by the worker itself; :func:`flush_records`, run on every worker when the runner shuts down, waits
until they are acknowledged, so a flow's task runs are readable when the flow call returns.
"""

from __future__ import annotations

import functools
import io
import os
import pickle
import sys
import threading
import types
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from headrace.task_runners.process import importable_elsewhere as _importable_uncached

__all__ = [
    "PROCESS_TOKEN",
    "CallPickler",
    "Outcome",
    "Payload",
    "PluginSettings",
    "flush_records",
    "result_of",
    "run_payload",
]

#: Different in every process: a call whose token is not this process's runs in a worker process.
PROCESS_TOKEN = uuid.uuid4().hex

#: This process's answers, cached: asked for every submitted call. (Core's function is not cached, because
#: the answer depends on the working directory and ``sys.path``, which tests of other runners change.)
_importable_elsewhere = functools.lru_cache(maxsize=1024)(_importable_uncached)

#: ``(disabled plugins, strict)`` of the flow's settings, applied in worker processes.
PluginSettings = tuple[tuple[str, ...], bool]

#: A pickled call and the blobs of the shared objects it refers to (see :class:`CallPickler`).
Payload = tuple[bytes, dict[str, bytes]]

_worker_lock = threading.Lock()
_adopted_plugins: PluginSettings | None = None


# -- in the flow's process -----------------------------------------------------------------------------


def _code_modules(item: Any) -> set[str]:
    """The modules whose code ``item`` carries (a task call declares its own; else a function's module)."""
    declare = getattr(item, "__headrace_code_modules__", None)
    if callable(declare):
        return set(declare())
    module = getattr(item, "__module__", None) if callable(item) else None
    return {module} if isinstance(module, str) else set()


@functools.cache
def _pickler_class() -> type[Any]:
    """cloudpickle's pickler, replacing shared objects by their tokens (made once: cloudpickle loads lazily)."""
    import cloudpickle

    class SharingPickler(cloudpickle.Pickler):  # type: ignore[misc]
        def __init__(self, file: io.BytesIO, by_id: dict[int, str]) -> None:
            super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
            self.by_id = by_id

        def persistent_id(self, obj: object) -> str | None:
            return self.by_id.get(id(obj))

    return SharingPickler


#: Objects the standard pickler saves as a reference to their own module (``module.qualname``), not their type's.
_BY_REFERENCE = (type, types.FunctionType, types.BuiltinFunctionType)


class _StandardPickler(pickle.Pickler):
    """The C pickler, replacing shared objects by their tokens; notes what a worker could not load.

    The standard pickler saves classes and functions, and the classes of instances, as references by name.
    Where that name's module cannot be imported elsewhere (``__main__``, a notebook, a test file), the worker
    could not load it: :meth:`reducer_override` notes the module in :attr:`by_value`, and the call then goes
    to cloudpickle with those modules registered to travel by value. Objects the standard pickler cannot
    handle at all (lambdas, local functions) raise, with the same outcome.
    """

    def __init__(self, file: io.BytesIO, by_id: dict[int, str]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.by_id = by_id
        self.by_value: set[str] = set()

    def persistent_id(self, obj: object) -> str | None:
        return self.by_id.get(id(obj))

    def reducer_override(self, obj: object) -> Any:
        module = getattr(obj, "__module__", None) if isinstance(obj, _BY_REFERENCE) else type(obj).__module__
        if isinstance(module, str) and not _importable_elsewhere(module):
            self.by_value.add(module)
        return NotImplemented


class CallPickler:
    """Pickles calls for one runner; objects many calls share travel as blobs pickled once.

    Every run a flow submits carries the same task, settings, flow-run info and defaults. Pickling them
    again for each call was most of the cost of a submission, so objects named as *shared* are pickled once
    (on first use) into a blob with a token, and a call refers to them by token. The blobs travel with every
    call (a few kilobytes, copied, not pickled) and a worker process unpickles each blob once, keeping the
    object for the next calls. A shared object is thus a snapshot taken at its first submission.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._blobs: dict[int, tuple[object, str, bytes]] = {}  # id -> (the object, kept alive; token; blob)
        self._registered: set[str] = set()

    def _register_by_value(self, fn: Callable[..., Any], args: tuple[Any, ...], also: Iterable[str] = ()) -> None:
        import cloudpickle

        for name in set(also).union(*(_code_modules(item) for item in (fn, *args))) - self._registered:
            module = sys.modules.get(name)
            if module is not None and name != "__main__" and not _importable_elsewhere(name):
                cloudpickle.register_pickle_by_value(module)
            self._registered.add(name)

    def _blob(self, item: object, fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[str, bytes]:
        found = self._blobs.get(id(item))
        if found is None:
            import cloudpickle

            self._register_by_value(fn, args)  # the shared task carries the user's code
            blob = bytes(cloudpickle.dumps(item))
            with self._lock:
                found = self._blobs.setdefault(id(item), (item, uuid.uuid4().hex, blob))
        return found[1], found[2]

    def dumps(self, fn: Callable[..., Any], args: tuple[Any, ...], shared: Iterable[object] = ()) -> Payload:
        """``(fn, args)`` as a payload; code in modules workers cannot import travels by value."""
        by_id: dict[int, str] = {}
        blobs: dict[str, bytes] = {}
        for item in shared:
            token, blob = self._blob(item, fn, args)
            by_id[id(item)] = token
            blobs[token] = blob

        buffer = io.BytesIO()
        standard = _StandardPickler(buffer, by_id)
        try:
            standard.dump((fn, args))
        except Exception:  # something only cloudpickle can pickle (a lambda, a local function)
            pass
        else:
            if not standard.by_value:
                return buffer.getvalue(), blobs
        self._register_by_value(fn, args, standard.by_value)
        buffer = io.BytesIO()
        _pickler_class()(buffer, by_id).dump((fn, args))
        return buffer.getvalue(), blobs


# -- on the worker -------------------------------------------------------------------------------------


def _become_worker(plugins: PluginSettings) -> None:
    """Mark this process as a headrace worker and make its plugin manager follow ``plugins`` (once per change)."""
    global _adopted_plugins  # noqa: PLW0603 - per-process state of a worker
    with _worker_lock:
        if _adopted_plugins == plugins:
            return
        from headrace.task_runners import process

        process.IN_WORKER = True  # the engine then prepares this process for each call's settings
        disabled, strict = plugins
        os.environ["HEADRACE_PLUGINS_DISABLED"] = ",".join(disabled)
        os.environ["HEADRACE_PLUGINS_STRICT"] = "true" if strict else "false"
        if _adopted_plugins is not None:
            from headrace.plugins import reset_plugin_manager

            reset_plugin_manager()
        _adopted_plugins = plugins


_objects: OrderedDict[str, object] = OrderedDict()
_objects_lock = threading.Lock()
#: How many shared objects (see :class:`CallPickler`) a worker process keeps unpickled.
KEEP_SHARED = 256


def _shared_object(token: str, blob: bytes) -> object:
    with _objects_lock:
        found = _objects.get(token, _objects)
        if found is not _objects:
            _objects.move_to_end(token)
            return found
    item = pickle.loads(blob)
    with _objects_lock:
        _objects[token] = item
        while len(_objects) > KEEP_SHARED:
            _objects.popitem(last=False)
    return item


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, blobs: dict[str, bytes]) -> None:
        super().__init__(io.BytesIO(data))
        self._blobs = blobs

    def persistent_load(self, pid: Any) -> Any:
        return _shared_object(pid, self._blobs[pid])


#: What :func:`run_payload` returns: the result pickled (in a worker process), or the result itself in a 1-tuple
#: (in a worker thread of the flow's own process, where results are shared, not copied).
Outcome = bytes | tuple[Any]


def run_payload(payload: Payload, origin: str, plugins: PluginSettings) -> Outcome:
    """Runs on a Dask worker: call what :meth:`CallPickler.dumps` packed and return its result (see :data:`Outcome`).

    In a worker process the result travels pickled: Dask then moves plain bytes, instead of sizing and
    serializing a rich object (a run's state) through its generic machinery for every task.
    """
    data, blobs = payload
    if origin == PROCESS_TOKEN:  # a worker thread of the flow's process
        fn, args = _Unpickler(data, blobs).load()
        return (fn(*args),)
    if _adopted_plugins != plugins:
        _become_worker(plugins)
    fn, args = _Unpickler(data, blobs).load()
    result = fn(*args)
    try:
        return pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # something only cloudpickle can carry (code defined in __main__ or a test file)
        import cloudpickle

        return bytes(cloudpickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))


def result_of(outcome: Outcome) -> Any:
    """In the flow's process: the result inside what :func:`run_payload` returned."""
    return pickle.loads(outcome) if isinstance(outcome, bytes) else outcome[0]


def flush_records(timeout: float) -> bool:
    """Runs on every worker at shutdown: wait until the worker's run records are acknowledged."""
    from headrace import records

    return records.flush(timeout=timeout)
