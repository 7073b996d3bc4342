"""The records pipeline of one process: spool-backed streams on the caller's side, one shipper thread.

Caller side (:meth:`Stream.put`, microseconds, no network): under the stream's lock, append the record
to the spool (a copy into the segment's shared memory map) and put ``(seq, bytes)`` on an in-memory
queue; wake the shipper only when the queue was empty or a batch is full.

Shipper side (the daemon thread ``headrace-records``): takes batches off the queues (task-run records
after ``HEADRACE_CLIENT_RECORDS_BATCH_INTERVAL``, at most :data:`TASK_RUN_BATCH_MAX` of them; logs after
``HEADRACE_LOGGING_TO_API_BATCH_INTERVAL`` or once ``HEADRACE_LOGGING_TO_API_BATCH_SIZE`` bytes wait) and
sends them, in order per kind, through the client on the process's event loop. When the server has
answered (after its commit), the batch is acknowledged in the spool. When it cannot be reached, the
batch is tried again with capped exponential backoff and jitter; nothing is dropped. A batch the server
refuses as invalid (400, 409, 413, 422) is halved until the refused record is alone; that record is
written to ``spool/rejected/`` with the reason, and shipping goes on.

The shipper also replays the records of dead processes (see :func:`headrace.records.spool.claim_orphans`)
for the same target: at start, then every :data:`ORPHAN_SCAN_INTERVAL` seconds.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from headrace.client.base import ApiError, ClientError
from headrace.records.spool import (
    KINDS,
    Orphan,
    OwnerLock,
    SegmentReader,
    SpoolWriter,
    claim_orphans,
    new_owner_id,
    spool_directory,
)
from headrace.retries import capped_exponential, jittered
from headrace.schemas.base import RecordKind

if TYPE_CHECKING:
    from headrace.client.base import OrchestrationClient
    from headrace.settings import Settings

__all__ = ["TASK_RUN_BATCH_MAX", "Pipeline", "Stream", "replay"]

logger = logging.getLogger("headrace.records")

TASK_RUN_BATCH_MAX = 1000
"""The most task-run records sent in one request."""
TASK_RUN_BATCH_MAX_BYTES = 16 * 1024 * 1024
"""The largest task-run batch in bytes (the server takes 64 MiB); logs use HEADRACE_LOGGING_TO_API_BATCH_SIZE."""
LOG_BATCH_MAX = 10_000
"""The most log lines sent in one request (besides the byte limit)."""
ORPHAN_SCAN_INTERVAL = 60.0
"""Seconds between two looks for the spools of dead processes."""
BACKOFF_BASE, BACKOFF_CAP, BACKOFF_JITTER = 0.5, 30.0, 0.2
"""Retry delays of the shipper while the server cannot be reached: 0.5 s doubling up to 30 s, +20 %."""
SHIPPER_REQUEST_RETRIES = 2
"""Retries inside one request of the shipper's HTTP client; beyond that the shipper's backoff takes over."""
REJECTED_STATUSES = frozenset({400, 409, 413, 422})
"""Answers that mean "this batch is invalid", not "try later": the offending record is set aside."""

Batch = list[tuple[int, bytes]]


class _Lane:
    """Records of one kind waiting to be shipped in order, with their retry bookkeeping."""

    kind: RecordKind
    max_count: int
    max_bytes: int

    def __init__(self) -> None:
        self.limit = 0  # records in the next batch; halved while isolating a refused record
        self.failures = 0
        self.retry_at = 0.0

    def due(self, now: float, flushing: bool) -> float | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def peek(self) -> Batch:  # pragma: no cover - abstract
        raise NotImplementedError

    def ack(self, seq: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class Stream(_Lane):
    """This process's records of one kind: the spool writer, the queue, and what is in flight."""

    def __init__(
        self,
        kind: RecordKind,
        writer: SpoolWriter | None,
        wake: Callable[[], None],
        *,
        interval: float,
        max_count: int,
        max_bytes: int,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.writer = writer
        self.interval = interval
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.limit = max_count
        self.lock = threading.Lock()
        self.queue: collections.deque[tuple[int, bytes]] = collections.deque()
        self.queued_bytes = 0
        self.first_queued = 0.0
        self.backlog: collections.deque[tuple[int, bytes]] = collections.deque()  # shipper-owned, unacked
        self.backlog_bytes = 0
        self.reported = 0
        self.acked = 0
        self._wake = wake
        self._memory_seq = 0
        self._spool_warned = False

    # ---------------------------------------------------------------------------------- caller side

    def put(self, payload: bytes) -> None:
        """Spool one record and queue it for the shipper (any thread)."""
        queue = self.queue
        with self.lock:
            writer = self.writer
            if writer is not None:
                try:
                    seq = writer.append(payload)
                except OSError as exc:
                    writer.seq += 1
                    seq = writer.seq
                    self._spool_failed(exc)
            else:
                self._memory_seq += 1
                seq = self._memory_seq
            queue.append((seq, payload))
            self.reported = seq
            self.queued_bytes += len(payload)
            size = len(queue)
            if size == 1:
                self.first_queued = time.monotonic()
        if size == 1 or size >= self.max_count or self.queued_bytes >= self.max_bytes:
            self._wake()

    def _spool_failed(self, exc: OSError) -> None:
        if not self._spool_warned:
            self._spool_warned = True
            logger.warning(
                "cannot write run records to the spool (%s); they are shipped from memory and would be lost "
                "if this process died before they reach the server",
                exc,
            )

    # --------------------------------------------------------------------------------- shipper side

    def due(self, now: float, flushing: bool) -> float | None:
        if not self.backlog and not self.queue:
            return None
        if self.failures:
            return self.retry_at
        if self.backlog or flushing:
            return now
        if len(self.queue) >= self.max_count or self.queued_bytes >= self.max_bytes:
            return now
        return self.first_queued + self.interval

    def peek(self) -> Batch:
        """The next batch: the oldest unacknowledged records, within the count and byte limits."""
        self._refill()
        batch: Batch = []
        size = 0
        for item in self.backlog:
            if batch and (len(batch) >= self.limit or size + len(item[1]) > self.max_bytes):
                break
            batch.append(item)
            size += len(item[1])
        return batch

    def _refill(self) -> None:
        if len(self.backlog) >= self.max_count or self.backlog_bytes >= self.max_bytes:
            return
        with self.lock:
            moved = 0
            while self.queue and len(self.backlog) < self.max_count and self.backlog_bytes < self.max_bytes:
                item = self.queue.popleft()
                self.backlog.append(item)
                self.backlog_bytes += len(item[1])
                moved += len(item[1])
            self.queued_bytes -= moved
            if self.queue:
                self.first_queued = time.monotonic()

    def ack(self, seq: int) -> None:
        while self.backlog and self.backlog[0][0] <= seq:
            _, payload = self.backlog.popleft()
            self.backlog_bytes -= len(payload)
        if self.writer is not None:
            try:
                self.writer.ack(seq, lock=self.lock)
            except OSError as exc:
                logger.warning("cannot record an acknowledgement in the spool: %s", exc)
        self.acked = seq


class _OrphanLane(_Lane):
    """A dead process's records of one kind, read back from its spool files."""

    def __init__(self, orphan: Orphan, reader: SegmentReader, *, max_count: int, max_bytes: int) -> None:
        super().__init__()
        self.orphan = orphan
        self.kind = reader.kind
        self.reader = reader
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.limit = max_count
        self._records: Iterator[tuple[int, bytes]] = reader.records()
        self._buffer: collections.deque[tuple[int, bytes]] = collections.deque()
        self.exhausted = False
        self.shipped = 0

    def due(self, now: float, flushing: bool) -> float | None:
        if not self._buffer:
            self._fill()
        if not self._buffer:
            return None
        return self.retry_at if self.failures else now

    def _fill(self) -> None:
        size = sum(len(item[1]) for item in self._buffer)
        while len(self._buffer) < self.max_count and size < self.max_bytes:
            item = next(self._records, None)
            if item is None:
                self.exhausted = True
                return
            self._buffer.append(item)
            size += len(item[1])

    def peek(self) -> Batch:
        self._fill()
        batch: Batch = []
        size = 0
        for item in self._buffer:
            if batch and (len(batch) >= self.limit or size + len(item[1]) > self.max_bytes):
                break
            batch.append(item)
            size += len(item[1])
        return batch

    def ack(self, seq: int) -> None:
        while self._buffer and self._buffer[0][0] <= seq:
            self._buffer.popleft()
            self.shipped += 1
        self.reader.ack(seq)

    @property
    def done(self) -> bool:
        return self.exhausted and not self._buffer


class Pipeline:
    """The records pipeline of this process for one set of settings. Made by :mod:`headrace.records`."""

    def __init__(self, settings: Settings, *, replay_orphans: bool = True, start: bool = True) -> None:
        from headrace.client import client_target

        self.settings = settings
        self.pid = os.getpid()
        self.target = client_target(settings)
        self.directory = spool_directory(settings.home)
        self.owner = new_owner_id()
        self.replay_orphans = replay_orphans
        self._wake_event = threading.Event()
        self._cond = threading.Condition()
        self._flushing = 0
        self._stopping = False
        self._closed = False
        self._client: OrchestrationClient | None = None
        self._orphans: list[Orphan] = []
        self._orphan_lanes: list[_OrphanLane] = []
        self._next_orphan_scan = 0.0
        self._unreachable_since: float | None = None
        self._scanned = threading.Event()  # set once dead processes' spools were looked for
        if not replay_orphans:
            self._scanned.set()
        self.lock: OwnerLock | None = None
        try:
            self.lock = OwnerLock.create(self.directory, self.owner)
        except OSError as exc:
            logger.warning(
                "cannot create the run-record spool in %s (%s); records are kept in memory only", self.directory, exc
            )
        self.streams: dict[RecordKind, Stream] = {}
        for kind in KINDS:
            writer = SpoolWriter(self.directory, self.owner, kind, self.target) if self.lock is not None else None
            if kind == "logs":
                interval = settings.logging_to_api_batch_interval
                max_count, max_bytes = LOG_BATCH_MAX, settings.logging_to_api_batch_size
            else:
                interval = settings.client_records_batch_interval
                max_count, max_bytes = TASK_RUN_BATCH_MAX, TASK_RUN_BATCH_MAX_BYTES
            self.streams[kind] = Stream(
                kind, writer, self._wake, interval=interval, max_count=max_count, max_bytes=max_bytes
            )
        self.task_runs = self.streams["task_runs"]
        self.logs = self.streams["logs"]
        self._thread: threading.Thread | None = None
        if start:
            self.start()

    def __repr__(self) -> str:
        return f"Pipeline(owner={self.owner!r}, target={self.target!r})"

    def start(self) -> None:
        """Start the shipper thread (if not started)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="headrace-records", daemon=True)
            self._thread.start()

    def _wake(self) -> None:
        if not self._wake_event.is_set():
            self._wake_event.set()

    # ------------------------------------------------------------------------------------- waiting

    def pending(self) -> int:
        """Records of this process reported but not yet acknowledged."""
        return sum(stream.reported - stream.acked for stream in self.streams.values())

    def flush(self, timeout: float, *, include_orphans: bool = False) -> bool:
        """Wait up to ``timeout`` seconds until every record reported so far is acknowledged.

        With ``include_orphans``, also until the records of dead processes this one took over are sent.
        """
        targets = {kind: stream.reported for kind, stream in self.streams.items()}

        def done() -> bool:
            if not all(self.streams[kind].acked >= seq for kind, seq in targets.items()):
                return False
            return not include_orphans or (self._scanned.is_set() and not self._orphan_lanes)

        if done():
            return True
        if self._thread is None or not self._thread.is_alive():
            return False
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            self._flushing += 1
            for lane in self._lanes():  # one immediate attempt, whatever the backoff said
                lane.retry_at = 0.0
        self._wake()
        try:
            with self._cond:
                while not done():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._thread is None or not self._thread.is_alive():
                        return False
                    self._cond.wait(min(remaining, 0.5))
                return True
        finally:
            with self._cond:
                self._flushing -= 1

    def close(self, timeout: float) -> bool:
        """Flush (up to ``timeout`` s), stop the shipper and clean up. True if nothing was left behind."""
        if self._closed:
            return self.pending() == 0
        flushed = self.flush(timeout, include_orphans=True)
        self._closed = True
        self._stopping = True
        self._wake()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)
        stopped = thread is None or not thread.is_alive()
        left = self.pending()
        if stopped:
            everything_gone = True
            for stream in self.streams.values():
                if stream.writer is not None:
                    with stream.lock:
                        everything_gone = stream.writer.close() and everything_gone
            for orphan in self._orphans:
                orphan.release(delete=False)
            self._orphans.clear()
            if self.lock is not None:
                self.lock.release(delete=everything_gone)
        if left:
            where = f"the spool at {self.directory}" if self.lock is not None else "memory (no spool)"
            logger.warning(
                "%d run record(s) could not be sent to %s before exit; they wait in %s and are sent by the next "
                "headrace process or `headrace spool flush`",
                left,
                self.target,
                where,
            )
        return flushed and left == 0

    def forget(self) -> None:
        """In a forked child: drop the parent's descriptors without touching its files or lock."""
        self._closed = True
        for stream in self.streams.values():
            if stream.writer is not None:
                stream.writer.forget()
        if self.lock is not None:
            self.lock.forget()
        for orphan in self._orphans:
            orphan.lock.forget()

    # ------------------------------------------------------------------------------------- shipper

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException:  # pragma: no cover - a bug; records stay in the spool
            logger.exception("the run-record shipper stopped unexpectedly; records wait in the spool")
        finally:
            with self._cond:
                self._cond.notify_all()
            self._close_client()

    def _lanes(self) -> list[_Lane]:
        return [*self.streams.values(), *self._orphan_lanes]

    def _loop(self) -> None:
        while True:
            self._wake_event.clear()
            flushing = self._flushing > 0
            if self._stopping and not flushing:
                return
            now = time.monotonic()
            if self.replay_orphans and now >= self._next_orphan_scan and self.lock is not None:
                self._next_orphan_scan = now + ORPHAN_SCAN_INTERVAL
                self._claim_orphans()
            self._scanned.set()
            next_time = math.inf
            progressed = False
            for lane in self._lanes():
                due = lane.due(now, flushing)
                if due is not None and due <= now:
                    progressed = self._ship(lane) or progressed
                    now = time.monotonic()
                    due = lane.due(now, flushing)
                if due is not None:
                    next_time = min(next_time, due)
            self._finish_orphans()
            if progressed:
                continue
            timeout = None if next_time == math.inf else max(0.0, next_time - time.monotonic())
            if self._orphan_lanes or self.replay_orphans:
                timeout = ORPHAN_SCAN_INTERVAL if timeout is None else min(timeout, ORPHAN_SCAN_INTERVAL)
            self._wake_event.wait(timeout)

    def _claim_orphans(self) -> None:
        try:
            claimed = claim_orphans(self.directory, self.target, own=self.owner)
        except OSError as exc:
            logger.warning("cannot look for left-over run records in %s: %s", self.directory, exc)
            return
        for orphan in claimed:
            self._orphans.append(orphan)
            for kind in KINDS:
                reader = orphan.readers.get(kind)
                if reader is not None:
                    stream = self.streams[kind]
                    lane = _OrphanLane(orphan, reader, max_count=stream.max_count, max_bytes=stream.max_bytes)
                    self._orphan_lanes.append(lane)
            logger.info("replaying run records left by process %s", orphan.owner)

    def _finish_orphans(self) -> None:
        if not self._orphan_lanes:
            return
        for orphan in list(self._orphans):
            lanes = [lane for lane in self._orphan_lanes if lane.orphan is orphan]
            if all(lane.done for lane in lanes):
                for lane in lanes:
                    self._orphan_lanes.remove(lane)
                self._orphans.remove(orphan)
                orphan.release(delete=True)
                shipped = sum(lane.shipped for lane in lanes)
                if shipped:
                    logger.info("replayed %d run record(s) left by process %s", shipped, orphan.owner)
                with self._cond:
                    self._cond.notify_all()

    def _request_timeout(self) -> float:
        return self.settings.api_request_timeout * (SHIPPER_REQUEST_RETRIES + 1) + 30.0

    def _send(self, kind: RecordKind, payloads: list[bytes]) -> None:
        from headrace.client.sync import run_sync

        client = self._open_client()
        run_sync(client.ingest_serialized(kind, payloads), timeout=self._request_timeout())

    def _ship(self, lane: _Lane) -> bool:
        """Send the lane's next batch. True if it made progress (sent, or set a refused record aside)."""
        batch = lane.peek()
        if not batch:
            return False
        try:
            self._send(lane.kind, [payload for _, payload in batch])
        except ApiError as exc:
            if exc.status in REJECTED_STATUSES:
                return self._refused(lane, batch, exc)
            self._failed(lane, exc)
            return False
        except Exception as exc:
            self._failed(lane, exc)
            return False
        self._shipped(lane, batch[-1][0])
        return True

    def _shipped(self, lane: _Lane, seq: int) -> None:
        with self._cond:
            lane.ack(seq)
            lane.failures = 0
            lane.limit = lane.max_count
            self._cond.notify_all()
        if self._unreachable_since is not None:
            self._unreachable_since = None
            logger.warning("run records reach %s again; the spooled ones are being sent", self.target)

    def _failed(self, lane: _Lane, exc: BaseException) -> None:
        lane.failures += 1
        delay = jittered(capped_exponential(min(lane.failures, 64), BACKOFF_BASE, BACKOFF_CAP), BACKOFF_JITTER)
        lane.retry_at = time.monotonic() + delay
        if self._unreachable_since is None:
            self._unreachable_since = time.monotonic()
            reason = str(exc) if isinstance(exc, ClientError) else f"{type(exc).__name__}: {exc}"
            logger.warning(
                "run records cannot be sent to %s (%s); they wait in the spool and are retried", self.target, reason
            )

    def _refused(self, lane: _Lane, batch: Batch, exc: ApiError) -> bool:
        if len(batch) > 1:
            lane.limit = max(1, len(batch) // 2)
            return True
        seq, payload = batch[0]
        self._set_aside(lane, seq, payload, exc)
        self._shipped(lane, seq)
        return True

    def _set_aside(self, lane: _Lane, seq: int, payload: bytes, exc: ApiError) -> None:
        owner = lane.orphan.owner if isinstance(lane, _OrphanLane) else self.owner
        path = self.directory / "rejected" / f"{owner}.{lane.kind}.jsonl"
        logger.warning(
            "the server refused a run record (%s %s); it is kept in %s and will not be sent again",
            exc.status,
            exc.detail,
            path,
        )
        line = b'{"seq":%d,"status":%d,"error":%b,"data":%b}\n' % (
            seq,
            exc.status,
            json.dumps(exc.detail).encode(),
            payload,
        )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("ab") as handle:
                handle.write(line)
        except OSError as write_error:
            logger.warning("cannot keep the refused record in %s: %s", path, write_error)

    # -------------------------------------------------------------------------------------- client

    def _open_client(self) -> OrchestrationClient:
        if self._client is None:
            from headrace.client.sync import run_sync

            client: OrchestrationClient
            if self.settings.api_url:
                from headrace.client.http import HttpClient

                client = HttpClient(
                    self.settings, max_retries=min(self.settings.client_max_retries, SHIPPER_REQUEST_RETRIES)
                )
            else:
                from headrace.client import get_client

                client = get_client(self.settings)
            run_sync(client.__aenter__(), timeout=self._request_timeout())
            self._client = client
        return self._client

    def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        from headrace.client.sync import run_sync

        with contextlib.suppress(Exception):
            run_sync(client.__aexit__(None, None, None), timeout=5.0)


def replay(settings: Settings, timeout: float) -> tuple[int, int]:
    """Send the spooled records of dead processes for this target, for up to ``timeout`` seconds.

    What ``headrace spool flush`` does, in the calling thread. Returns ``(sent, left)``: the records the
    server acknowledged, and those still waiting because it could not be reached in time.
    """
    pipeline = Pipeline(settings, replay_orphans=False, start=False)
    try:
        pipeline._claim_orphans()
        lanes = list(pipeline._orphan_lanes)
        deadline = time.monotonic() + timeout
        while pipeline._orphan_lanes:
            now = time.monotonic()
            if now >= deadline:
                break
            next_time = math.inf
            progressed = False
            for lane in list(pipeline._orphan_lanes):
                due = lane.due(now, True)
                if due is not None and due <= now:
                    progressed = pipeline._ship(lane) or progressed
                    now = time.monotonic()
                    due = lane.due(now, True)
                if due is not None:
                    next_time = min(next_time, due)
            pipeline._finish_orphans()
            if not progressed and next_time > now:
                time.sleep(max(0.0, min(next_time, deadline) - now))
        sent = sum(lane.shipped for lane in lanes)
        left = sum(lane.reader.count() for lane in pipeline._orphan_lanes)
        return sent, left
    finally:
        for orphan in pipeline._orphans:
            orphan.release(delete=False)
        pipeline._orphans.clear()
        pipeline._orphan_lanes.clear()
        pipeline._close_client()
        if pipeline.lock is not None:
            pipeline.lock.release(delete=True)
