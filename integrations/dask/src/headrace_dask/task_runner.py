"""``DaskTaskRunner``: run a flow's submitted tasks on a Dask cluster, local or remote.

The runner either starts a ``distributed.LocalCluster`` for the flow run (and closes it afterwards), or
connects to the scheduler of a cluster that already runs (``address=``) and leaves it running.

Each submitted item becomes one Dask task whose key starts with the task's name (so the Dask dashboard
groups them by task). ``submit`` pickles the call in the caller's thread and queues it; on the Dask client's
own event loop, everything queued by then is handed to the scheduler in one graph update (``client.map``),
so a ``task.map()`` of many items costs the scheduler a few updates instead of one per item. Each outcome
reaches the flow as a ``concurrent.futures.Future`` without a thread per item: on that loop, each item is
watched until its Dask future is done, and one collector fetches the results of every item finished by then
in a single ``gather`` — having waited a moment (:data:`COLLECT_WAIT`) for more while others still run —
(errors and cancellations are known to the client already and need no fetch). Worker processes return
results pickled (see :func:`headrace_dask.worker.run_payload`).

Where records come from: in worker processes the engine reports each task run's states and logs itself,
through that process's own spool and shipper, to the API named by the flow's settings (which travel with
every call). :meth:`DaskTaskRunner.shutdown` waits until every worker's records are acknowledged.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import itertools
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from headrace.task_runners import TaskRunner
from headrace_dask.worker import (
    PROCESS_TOKEN,
    CallPickler,
    Payload,
    PluginSettings,
    flush_records,
    result_of,
    run_payload,
)

__all__ = ["DaskTaskRunner", "InProcessDaskTaskRunner"]

T = TypeVar("T")

logger = logging.getLogger("headrace.dask")

#: How long :meth:`DaskTaskRunner.shutdown` waits for the workers' run records to be acknowledged.
WORKER_RECORDS_WAIT = 60.0

#: Attributes of a task call (``headrace.engine.task_run.TaskCall``) that every run of a flow shares: they
#: are pickled once per runner (see :class:`headrace_dask.worker.CallPickler`).
SHARED_FIELDS = ("task", "settings", "flow_run", "defaults")

#: While other items are still running, the collector waits up to this long (seconds) for more to finish
#: before it fetches results — less once ``COLLECT_MAX`` have finished, or every item has: each fetch is a
#: round trip through the scheduler to the workers, which cost them more than the results themselves did
#: when fetched one by one. A result can reach the flow this much later than its task finished.
COLLECT_WAIT = 0.1
COLLECT_MAX = 256

#: Where a LocalCluster the runner starts serves its HTTP endpoints (and the dashboard, if bokeh is installed):
#: a free loopback port. Dask's own default, ``:8787``, listens on every interface.
LOOPBACK_DASHBOARD = "127.0.0.1:0"


def _positive(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"DaskTaskRunner: {name} must be a whole number of at least 1, got {value!r}")


def _task_label(fn: Callable[..., Any], args: tuple[Any, ...]) -> str:
    """The Dask key prefix: the task's name for a task run, else the function's name."""
    task = getattr(args[0], "task", None) if args else None
    name = getattr(task, "name", None) or getattr(fn, "__name__", None) or "call"
    return "".join(char if char.isalnum() or char in "_." else "_" for char in str(name))[:60] or "call"


class DaskTaskRunner(TaskRunner):
    """Runs submitted tasks on Dask workers.

    Either ``address`` of a running Dask scheduler (``"tcp://10.0.0.5:8786"``), or options for the
    ``LocalCluster`` the runner starts: ``n_workers``, ``threads_per_worker``, ``processes`` (workers in
    processes, the default, or as threads of the flow's process), and any other ``LocalCluster`` keyword in
    ``cluster_kwargs``. ``client_kwargs`` go to ``distributed.Client`` in both cases.

    ``DaskTaskRunner(processes=False)`` makes an :class:`InProcessDaskTaskRunner`, whose
    ``separate_processes`` flag is false: the work then shares the flow's process.
    """

    separate_processes = True

    def __new__(
        cls,
        address: str | None = None,
        *,
        n_workers: int | None = None,
        threads_per_worker: int | None = None,
        processes: bool = True,
        cluster_kwargs: Mapping[str, Any] | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
    ) -> DaskTaskRunner:
        in_process = cls is DaskTaskRunner and address is None and processes is False
        return super().__new__(InProcessDaskTaskRunner if in_process else cls)

    def __init__(
        self,
        address: str | None = None,
        *,
        n_workers: int | None = None,
        threads_per_worker: int | None = None,
        processes: bool = True,
        cluster_kwargs: Mapping[str, Any] | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if address is not None:
            if not isinstance(address, str) or not address.strip():
                raise ValueError(
                    f"DaskTaskRunner: address must be a scheduler address such as 'tcp://host:8786', got {address!r}"
                )
            local = [
                name
                for name, given in (
                    ("n_workers", n_workers is not None),
                    ("threads_per_worker", threads_per_worker is not None),
                    ("processes", processes is not True),
                    ("cluster_kwargs", bool(cluster_kwargs)),
                )
                if given
            ]
            if local:
                raise ValueError(
                    f"DaskTaskRunner: {', '.join(local)} configure a LocalCluster, but address={address!r} connects "
                    "to a running scheduler; give one or the other"
                )
        _positive("n_workers", n_workers)
        _positive("threads_per_worker", threads_per_worker)
        if not isinstance(processes, bool):
            raise ValueError(f"DaskTaskRunner: processes must be True or False, got {processes!r}")
        self.address = address.strip() if address is not None else None
        self.n_workers = n_workers
        self.threads_per_worker = threads_per_worker
        self.processes = processes
        self.cluster_kwargs: dict[str, Any] = dict(cluster_kwargs or {})
        self.client_kwargs: dict[str, Any] = dict(client_kwargs or {})
        self._client: Any = None  # distributed.Client (whose methods are untyped)
        self._cluster: Any = None  # distributed.LocalCluster, when the runner started one
        self._lock = threading.Lock()
        # key: (its Dask future, or None while queued; ours)
        self._pending: dict[str, tuple[Any, concurrent.futures.Future[Any]]] = {}
        self._cancelled = False
        self._plugins: PluginSettings = ((), False)
        self._pickler = CallPickler()
        self._key_prefix = uuid.uuid4().hex[:16]
        self._numbers = itertools.count()
        self._queued: list[tuple[str, Payload, concurrent.futures.Future[Any]]] = []  # not handed to Dask yet
        # touched on the client's loop only:
        self._relays: set[asyncio.Future[Any]] = set()
        self._done: list[tuple[str, Any, concurrent.futures.Future[Any]]] = []
        self._collecting = False
        self._all_in: asyncio.Event | None = None  # set when the collector need not wait for more

    def duplicate(self) -> DaskTaskRunner:
        return type(self)(
            self.address,
            n_workers=self.n_workers,
            threads_per_worker=self.threads_per_worker,
            processes=self.processes,
            cluster_kwargs=self.cluster_kwargs,
            client_kwargs=self.client_kwargs,
        )

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` of a started runner (for dashboards, diagnostics, ``upload_file``)."""
        if self._client is None:
            raise RuntimeError("DaskTaskRunner is not started: it has no Dask client yet")
        return self._client

    # -- life cycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._client is not None:
            return
        import distributed

        from headrace.engine.api import current_settings

        Client: Any = distributed.Client
        LocalCluster: Any = distributed.LocalCluster

        settings = current_settings()
        self._plugins = (tuple(settings.plugins_disabled), settings.plugins_strict)
        client_kwargs = {"set_as_default": False, **self.client_kwargs}
        if self.address is not None:
            client_kwargs.setdefault("timeout", 30)
            try:
                client = Client(self.address, **client_kwargs)
            except (OSError, TimeoutError) as exc:
                raise RuntimeError(
                    f"DaskTaskRunner: cannot reach the Dask scheduler at {self.address}: {exc}"
                ) from None
        else:
            options: dict[str, Any] = {"dashboard_address": LOOPBACK_DASHBOARD, "processes": self.processes}
            if self.n_workers is not None:
                options["n_workers"] = self.n_workers
            if self.threads_per_worker is not None:
                options["threads_per_worker"] = self.threads_per_worker
            options.update(self.cluster_kwargs)
            cluster = LocalCluster(**options)
            try:
                client = Client(cluster, **client_kwargs)
            except BaseException:
                cluster.close()
                raise
            self._cluster = cluster
        self._client = client
        self._cancelled = False
        super().start()

    def shutdown(self, wait: bool = True) -> None:
        client, cluster = self._client, self._cluster
        try:
            if client is not None:
                if wait:
                    self._wait_for_pending()
                    self._flush_worker_records(client)
                else:
                    self.cancel_pending()
        finally:
            self._client = self._cluster = None
            if client is not None:
                client.close()
            if cluster is not None:
                cluster.close()
            super().shutdown(wait)

    def _wait_for_pending(self) -> None:
        while True:  # items may be submitted while we wait (runs whose dependencies just finished)
            with self._lock:
                outers = [outer for _, outer in self._pending.values() if not outer.done()]
            if not outers:
                return
            concurrent.futures.wait(outers)

    def _flush_worker_records(self, client: Any) -> None:
        try:
            delivered: dict[str, bool] = client.run(flush_records, WORKER_RECORDS_WAIT)
        except Exception as exc:  # a worker went away: its records wait in its spool
            logger.warning("Could not ask the Dask workers to deliver their run records: %s", exc)
            return
        late = [worker for worker, done in delivered.items() if not done]
        if late:
            logger.warning(
                "Dask workers %s did not deliver their run records within %s s; they wait in their spools",
                ", ".join(late),
                WORKER_RECORDS_WAIT,
            )

    # -- work -------------------------------------------------------------------------------------------

    def submit(self, fn: Callable[..., T], /, *args: Any) -> concurrent.futures.Future[T]:
        self._require_started()
        client = self._client
        assert client is not None
        outer: concurrent.futures.Future[T] = concurrent.futures.Future()
        call = args[0] if args else None
        shared = [getattr(call, name, None) for name in SHARED_FIELDS]
        payload = self._pickler.dumps(fn, args, [item for item in shared if item is not None])
        key = f"{_task_label(fn, args)}-{self._key_prefix}-{next(self._numbers)}"
        with self._lock:
            if self._cancelled:  # the flow run was cancelled: start nothing more
                outer.cancel()
                return outer
            self._pending[key] = (None, outer)
            self._queued.append((key, payload, outer))
            wake = len(self._queued) == 1
        if wake:  # one wake-up of the client's loop hands Dask every item queued until it runs
            client.loop.add_callback(self._submit_queued, client)
        return outer

    def _submit_queued(self, client: Any) -> None:
        """On the client's loop: hand every queued item to the scheduler in one graph update, and watch each."""
        import distributed.client

        with self._lock:
            items, self._queued = self._queued, []
            cancelled = self._cancelled
        if not items:
            return
        if cancelled:  # cancel_pending() has cancelled their futures already
            self._forget(items)
            return
        count = len(items)
        try:
            dask_futures: list[Any] = client.map(
                run_payload,
                [payload for _, payload, _ in items],
                [PROCESS_TOKEN] * count,
                [self._plugins] * count,
                key=[key for key, _, _ in items],
                pure=False,
            )
        except Exception as exc:  # the client is closing: nothing of this batch will run
            for _, _, outer in items:
                _settle(outer, error=exc)
            self._forget(items)
            return
        with self._lock:
            cancelled = self._cancelled
            for (key, _, outer), dask_future in zip(items, dask_futures, strict=True):
                if key in self._pending:
                    self._pending[key] = (dask_future, outer)
        if cancelled:  # cancel_pending() ran while they were being submitted: they must not run either
            cancelling = asyncio.ensure_future(client.cancel(dask_futures, asynchronous=True))
            self._relays.add(cancelling)
            cancelling.add_done_callback(self._relays.discard)
        done_callback: Any = distributed.client.done_callback  # awaits a future, then calls back on the loop
        for (key, _, outer), dask_future in zip(items, dask_futures, strict=True):
            watch = asyncio.ensure_future(
                done_callback(dask_future, functools.partial(self._finished, client, (key, dask_future, outer)))
            )
            self._relays.add(watch)  # the loop keeps only weak references to tasks
            watch.add_done_callback(self._relays.discard)

    def _forget(self, items: list[tuple[str, Payload, concurrent.futures.Future[Any]]]) -> None:
        with self._lock:
            for key, _, _ in items:
                self._pending.pop(key, None)

    def _finished(self, client: Any, item: tuple[str, Any, concurrent.futures.Future[Any]], _: object) -> None:
        """On the client's loop: an item's Dask future is done; collect it with the others done by now."""
        self._done.append(item)
        if self._all_in is not None and self._enough_done():
            self._all_in.set()
        if not self._collecting:
            self._collecting = True
            collector = asyncio.ensure_future(self._collect(client))
            self._relays.add(collector)
            collector.add_done_callback(self._relays.discard)

    def _enough_done(self) -> bool:
        """Whether the items finished by now are worth a fetch of their own (on the client's loop)."""
        return len(self._done) >= COLLECT_MAX or len(self._done) >= len(self._pending)

    async def _collect(self, client: Any) -> None:
        """Fetch the results of every finished item in one ``gather`` (items finishing meanwhile: the next)."""
        try:
            while self._done:
                if not self._enough_done():  # others will finish soon: one fetch for all of them
                    self._all_in = asyncio.Event()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._all_in.wait(), COLLECT_WAIT)
                    self._all_in = None
                batch, self._done = self._done, []
                succeeded = [item for item in batch if item[1].status == "finished"]
                settled: set[str] = set()
                if succeeded:
                    try:
                        values = await client.gather([item[1] for item in succeeded], asynchronous=True)
                    except BaseException:
                        settled.clear()  # a result went missing meanwhile: settle them one by one below
                    else:
                        for (key, _, outer), outcome in zip(succeeded, values, strict=True):
                            _settle_outcome(outer, outcome)
                            settled.add(key)
                for item in batch:  # errors and cancellations are known here: no round trip
                    if item[0] not in settled:
                        await self._relay(client, *item)
                with self._lock:
                    for key, _, _ in batch:
                        self._pending.pop(key, None)
        finally:
            self._collecting = False

    async def _relay(self, client: Any, key: str, dask_future: Any, outer: concurrent.futures.Future[Any]) -> None:
        """On the client's event loop: settle ``outer`` with one Dask future's outcome (or error)."""
        try:
            outcome = await client.gather(dask_future, asynchronous=True)
        except (concurrent.futures.CancelledError, asyncio.CancelledError):
            outer.cancel()
        except BaseException as exc:
            _settle(outer, error=exc)
        else:
            _settle_outcome(outer, outcome)

    def cancel_pending(self) -> None:
        """Cancel every item not finished yet and refuse new ones: items that have not started never run.

        Best effort for items already running: Dask cannot stop a running function, so those finish on their
        worker and report their real outcome.
        """
        client = self._client
        with self._lock:
            self._cancelled = True
            unfinished = [
                (dask_future, outer)
                for dask_future, outer in self._pending.values()
                if dask_future is None or not dask_future.done()
            ]
        submitted = [dask_future for dask_future, _ in unfinished if dask_future is not None]
        if client is not None and submitted:
            try:
                client.cancel(submitted)
            except Exception as exc:  # the scheduler is gone: nothing will run anyway
                logger.warning("Could not cancel the pending Dask tasks: %s", exc)
        for _, outer in unfinished:
            outer.cancel()

    def __repr__(self) -> str:
        if self.address is not None:
            return f"{type(self).__name__}(address={self.address!r})"
        options = [f"{name}={value!r}" for name, value in (
            ("n_workers", self.n_workers), ("threads_per_worker", self.threads_per_worker)
        ) if value is not None]  # fmt: skip
        if not self.processes:
            options.append("processes=False")
        return f"{type(self).__name__}({', '.join(options)})"


class InProcessDaskTaskRunner(DaskTaskRunner):
    """A :class:`DaskTaskRunner` whose ``LocalCluster`` runs its workers as threads of the flow's process."""

    separate_processes = False

    def __init__(
        self,
        address: str | None = None,
        *,
        n_workers: int | None = None,
        threads_per_worker: int | None = None,
        processes: bool = False,
        cluster_kwargs: Mapping[str, Any] | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if address is not None or processes:
            raise ValueError("InProcessDaskTaskRunner runs a LocalCluster with processes=False; use DaskTaskRunner")
        super().__init__(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            processes=False,
            cluster_kwargs=cluster_kwargs,
            client_kwargs=client_kwargs,
        )


def _settle(outer: concurrent.futures.Future[Any], *, value: Any = None, error: BaseException | None = None) -> None:
    """Set ``outer``'s outcome unless it was cancelled meanwhile."""
    try:
        if error is not None:
            outer.set_exception(error)
        else:
            outer.set_result(value)
    except concurrent.futures.InvalidStateError:
        pass


def _settle_outcome(outer: concurrent.futures.Future[Any], outcome: Any) -> None:
    """Set ``outer``'s outcome from what :func:`headrace_dask.worker.run_payload` returned."""
    try:
        value = result_of(outcome)
    except Exception as exc:  # the result cannot be loaded here (a class this process does not have)
        _settle(outer, error=exc)
    else:
        _settle(outer, value=value)
