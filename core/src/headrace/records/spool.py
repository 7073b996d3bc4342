"""The run-record spool: append-only files under ``HEADRACE_HOME/spool/`` that outlive the process.

Every task-run state change and log line a process reports is appended here before it counts as
reported, and leaves once the server has acknowledged it. Layout (``OWNER`` identifies one process:
``<start time in ms>-<pid>-<random>``, so that names sort oldest first)::

    spool/
      OWNER.lock                       held with flock(LOCK_EX) for the owner's whole life
      OWNER.task_runs.000001.jsonl     a segment: a header line, then one record per line
      OWNER.task_runs.ack              acknowledgements: one line per shipped batch, the highest seq
      OWNER.logs.000001.jsonl
      OWNER.logs.ack
      rejected/OWNER.logs.jsonl        records the server refused as invalid (never retried), with why

A segment's first line is its header, ``{"headrace_spool": 1, "owner": ..., "kind": ..., "target": ...,
"pid": ..., "index": ..., "created": ...}``; ``target`` is where its records go (the API URL, or
``embedded:...``), so records are only ever replayed to the server they were meant for. Every other line
is ``{"seq":N,"data":RECORD}`` with ``N`` counting from 1 per owner and kind, across segments, and
``RECORD`` the JSON of a ``TaskRunRecord`` or a ``LogCreate``. Lines are copied into a ``MAP_SHARED``
memory map of the segment, with no fsync: the bytes are in the page cache at once, which survives the
process being killed (not the machine losing power), and appending makes no system call. Segments are
allocated :data:`SEGMENT_MAX_BYTES` at a time (``posix_fallocate``) and cut to their used length when
closed; a segment of a killed process ends in zero bytes, which readers ignore.

Acknowledgements are contiguous (a kind is shipped in order), so the last line of the ack file says
everything up to that seq reached the server. Segments whose records are all acknowledged are deleted;
when an owner has nothing left, its files and lock go too.

The lock is how another process tells a live owner from a dead one: the OS releases an flock when its
holder dies, even by SIGKILL. A lock file is created under a temporary name, locked, then renamed into
place, so a lock file that can be seen is always locked by its creator first. A process that takes the
lock of a dead owner (:func:`claim_orphans`) replays its records and deletes them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import mmap
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, get_args

from headrace.schemas.base import RecordKind

__all__ = [
    "KINDS",
    "SEGMENT_MAX_BYTES",
    "SPOOL_VERSION",
    "OwnerLock",
    "OwnerStatus",
    "SegmentReader",
    "SpoolWriter",
    "claim_orphans",
    "new_owner_id",
    "spool_directory",
    "spool_status",
]

logger = logging.getLogger("headrace.records")

SPOOL_VERSION = 1
SEGMENT_MAX_BYTES = 4 * 1024 * 1024
"""The size of a segment: the next record that does not fit starts a new one (a bigger record gets a
segment of its own size)."""
ACK_COMPACT_BYTES = 4096
"""An ack file longer than this is rewritten to its last line (atomically, by rename)."""
KINDS: tuple[RecordKind, ...] = get_args(RecordKind)
_LINE_PREFIX = b'{"seq":'
_DATA_KEY = b',"data":'


def spool_directory(home: Path) -> Path:
    """Where the spool lives for a ``HEADRACE_HOME``."""
    return Path(home).expanduser() / "spool"


def new_owner_id() -> str:
    """A process's spool identity: sortable by start time, unique across pids and hosts sharing a home."""
    return f"{time.time_ns() // 1_000_000:013d}-{os.getpid()}-{secrets.token_hex(3)}"


def encode_line(seq: int, payload: bytes) -> bytes:
    return b'{"seq":%d,"data":%b}\n' % (seq, payload)


def decode_line(line: bytes) -> tuple[int, bytes] | None:
    """``(seq, payload)`` of a record line, or ``None`` for a header, a torn or a foreign line."""
    if not line.startswith(_LINE_PREFIX) or not line.endswith(b"}\n"):
        return None
    comma = line.find(_DATA_KEY, len(_LINE_PREFIX))
    if comma < 0:
        return None
    try:
        seq = int(line[len(_LINE_PREFIX) : comma])
    except ValueError:
        return None
    return seq, line[comma + len(_DATA_KEY) : -2]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _segment_name(owner: str, kind: str, index: int) -> str:
    return f"{owner}.{kind}.{index:06d}.jsonl"


def _parse_segment_name(name: str) -> tuple[str, str, int] | None:
    parts = name.split(".")
    if len(parts) != 4 or parts[3] != "jsonl" or parts[1] not in KINDS or not parts[2].isdigit():
        return None
    return parts[0], parts[1], int(parts[2])


# ------------------------------------------------------------------------------------------ the lock


class OwnerLock:
    """The flock that says an owner's process is alive; released by the OS when the process dies."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd

    @classmethod
    def create(cls, directory: Path, owner: str) -> OwnerLock:
        """Make ``OWNER.lock``, already locked when it appears under that name."""
        directory.mkdir(parents=True, exist_ok=True)
        temporary = directory / f".{owner}.lock.tmp"
        fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, f"{os.getpid()}\n".encode())
            path = directory / f"{owner}.lock"
            os.rename(temporary, path)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        return cls(path, fd)

    @classmethod
    def adopt(cls, directory: Path, owner: str) -> OwnerLock | None:
        """Lock an owner whose lock file is gone (its records are left over from a cleanup cut short)."""
        temporary = directory / f".{owner}.{secrets.token_hex(4)}.lock.tmp"
        fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path = directory / f"{owner}.lock"
            try:
                os.link(temporary, path)  # fails if someone else made or adopted it meanwhile
            except FileExistsError:
                os.close(fd)
                return None
        finally:
            with contextlib.suppress(OSError):
                temporary.unlink()
        return cls(path, fd)

    @classmethod
    def try_claim(cls, path: Path) -> OwnerLock | None:
        """Lock a dead owner's lock file; ``None`` if its owner lives (or another process claimed it)."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the previous claimer finished and removed it while we waited
            os.close(fd)
            return None
        return cls(path, fd)

    def release(self, *, delete: bool) -> None:
        """Unlock (and first remove the file if ``delete``)."""
        if self.fd < 0:
            return
        if delete:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        os.close(self.fd)
        self.fd = -1

    def forget(self) -> None:
        """Close the descriptor without touching the file (a forked child's copy of its parent's lock)."""
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


# ---------------------------------------------------------------------------------------- acks


def read_ack(path: Path) -> int:
    """The highest acknowledged seq recorded in an ack file (0 when there is none)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    for line in reversed(data.split(b"\n")):
        if line.strip().isdigit():
            return int(line)
    return 0


class AckFile:
    """Appends acknowledged seqs; rewrites itself to the last one now and then so it stays small."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.acked = read_ack(path)
        self._fd = -1
        self._size = 0

    def write(self, seq: int) -> None:
        if seq <= self.acked:
            return
        self.acked = seq
        line = b"%d\n" % seq
        if self._fd < 0:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._size = os.fstat(self._fd).st_size
        if self._size + len(line) > ACK_COMPACT_BYTES:
            temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            temporary.write_bytes(line)
            os.replace(temporary, self.path)
            os.close(self._fd)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            self._size = len(line)
            return
        _write_all(self._fd, line)
        self._size += len(line)

    def close(self, *, delete: bool = False) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if delete:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


# -------------------------------------------------------------------------------------- writing


@dataclass
class _Segment:
    path: Path
    index: int
    last_seq: int = 0


class SpoolWriter:
    """One owner's segments of one kind: appends records, records acks, deletes what was acknowledged.

    Appending copies the line into a shared memory map of the segment (``MAP_SHARED``): the bytes are in
    the page cache as soon as the copy is done, so they outlive the process, and no system call is made,
    so the caller never gives up the GIL on the hot path (a ``write(2)`` would, and then wait up to the
    interpreter's switch interval to get it back whenever another thread is busy). Each segment is
    allocated in full when it starts (``posix_fallocate``, so a full disk is an error there rather than a
    SIGBUS later) and cut to its used length when it is closed; a segment of a process that died ends in
    zero bytes, which readers ignore.

    Not thread-safe by itself: :class:`headrace.records.shipper.Stream` serializes appends, and only the
    shipper acknowledges.
    """

    def __init__(self, directory: Path, owner: str, kind: RecordKind, target: str) -> None:
        self.directory = directory
        self.owner = owner
        self.kind = kind
        self.target = target
        self.seq = 0
        self._fd = -1
        self._map: mmap.mmap | None = None
        self._offset = 0
        self._size = 0
        self._segments: list[_Segment] = []
        self._next_index = 1
        self.ack_file = AckFile(directory / f"{owner}.{kind}.ack")

    def append(self, payload: bytes) -> int:
        """Write one record; returns its seq. Raises :class:`OSError` if the spool cannot be written."""
        seq = self.seq + 1
        line = encode_line(seq, payload)
        end = self._offset + len(line)
        mapped = self._map
        if mapped is None or end > self._size:
            mapped = self._open_segment(len(line))
            end = self._offset + len(line)
        mapped[self._offset : end] = line
        self._offset = end
        self.seq = seq
        self._segments[-1].last_seq = seq
        return seq

    def _open_segment(self, room: int) -> mmap.mmap:
        self._close_segment()
        index = self._next_index
        path = self.directory / _segment_name(self.owner, self.kind, index)
        header = {
            "headrace_spool": SPOOL_VERSION,
            "owner": self.owner,
            "kind": self.kind,
            "target": self.target,
            "pid": os.getpid(),
            "index": index,
            "created": datetime.now(timezone.utc).isoformat(),
        }
        line = json.dumps(header, separators=(",", ":")).encode() + b"\n"
        size = max(SEGMENT_MAX_BYTES, len(line) + room)
        self.directory.mkdir(parents=True, exist_ok=True)  # in case it was removed while we ran
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            _allocate(fd, size)
            mapped = mmap.mmap(fd, size)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        mapped[: len(line)] = line
        self._fd, self._map, self._offset, self._size = fd, mapped, len(line), size
        self._next_index = index + 1
        self._segments.append(_Segment(path, index, last_seq=self.seq))
        return mapped

    def _close_segment(self) -> None:
        """Unmap the open segment and cut it to the bytes used."""
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._offset)
            os.close(self._fd)
            self._fd = -1

    def ack(self, seq: int, *, lock: Any = None) -> None:
        """Record that everything up to ``seq`` reached the server; delete closed segments that are done.

        ``lock`` (held around the segment bookkeeping) is the one appends are made under. The open
        segment stays, even when everything in it was acknowledged, so that shipping does not make a file
        per batch; it goes when it is full or the writer closes.
        """
        self.ack_file.write(seq)
        with lock if lock is not None else contextlib.nullcontext():
            done = [s for s in self._segments[:-1] if s.last_seq <= self.ack_file.acked]
            for segment in done:
                self._segments.remove(segment)
        for segment in done:
            with contextlib.suppress(FileNotFoundError):
                segment.path.unlink()

    @property
    def acked(self) -> int:
        return self.ack_file.acked

    @property
    def done(self) -> bool:
        """Everything written was acknowledged."""
        return self.seq <= self.ack_file.acked

    def segment_paths(self) -> list[Path]:
        return [segment.path for segment in self._segments]

    def close(self) -> bool:
        """Close the files. If everything was acknowledged, remove them all and return ``True``."""
        self._close_segment()
        if not self.done:
            self.ack_file.close()
            return False
        for segment in self._segments:
            with contextlib.suppress(FileNotFoundError):
                segment.path.unlink()
        self._segments.clear()
        self.ack_file.close(delete=True)
        return True

    def forget(self) -> None:
        """Drop the descriptors and the mapping without touching any file (in a forked child)."""
        if self._map is not None:
            with contextlib.suppress(Exception):
                self._map.close()
            self._map = None
        for fd in (self._fd, self.ack_file._fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd = -1
        self.ack_file._fd = -1


def _allocate(fd: int, size: int) -> None:
    """Reserve ``size`` bytes on disk for ``fd`` (a sparse file where the file system cannot)."""
    allocate = getattr(os, "posix_fallocate", None)
    if allocate is not None:
        try:
            allocate(fd, 0, size)
            return
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
    os.ftruncate(fd, size)


# -------------------------------------------------------------------------------------- reading


@dataclass
class SegmentReader:
    """Reads one owner's records of one kind, after its acknowledged seq, segment by segment."""

    directory: Path
    owner: str
    kind: RecordKind
    segments: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ack_file = AckFile(self.directory / f"{self.owner}.{self.kind}.ack")

    def records(self) -> Iterator[tuple[int, bytes]]:
        """``(seq, payload)`` of every record not yet acknowledged, in order."""
        acked = self.ack_file.acked
        for path in self.segments:
            for seq, payload in read_segment(path):
                if seq > acked:
                    yield seq, payload

    def count(self) -> int:
        return sum(1 for _ in self.records())

    def ack(self, seq: int) -> None:
        self.ack_file.write(seq)

    def delete(self) -> None:
        """Remove the segments and the ack file (everything was acknowledged)."""
        for path in self.segments:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self.ack_file.close(delete=True)


def segment_bytes(path: Path) -> bytes:
    """The used part of a segment: up to the first zero byte (the unused tail of a preallocated file)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return b""
    end = data.find(b"\0")
    return data if end < 0 else data[:end]


def read_segment(path: Path) -> Iterator[tuple[int, bytes]]:
    """The records of one segment file, in order (torn and unreadable lines are skipped)."""
    for line in segment_bytes(path).splitlines(keepends=True):
        decoded = decode_line(line)
        if decoded is None:
            if line.endswith(b"\n") and not line.startswith(b'{"headrace_spool"'):
                logger.warning("skipping an unreadable line in the spool file %s", path)
            continue
        yield decoded


def read_header(path: Path) -> dict[str, Any] | None:
    try:
        with path.open("rb") as handle:
            first = handle.readline()
    except FileNotFoundError:
        return None
    try:
        header = json.loads(first)
    except ValueError:
        return None
    return header if isinstance(header, dict) and "headrace_spool" in header else None


def _segments_by_owner(directory: Path) -> dict[str, dict[str, list[tuple[int, Path]]]]:
    owners: dict[str, dict[str, list[tuple[int, Path]]]] = {}
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return owners
    for name in names:
        parsed = _parse_segment_name(name)
        if parsed is None:
            continue
        owner, kind, index = parsed
        owners.setdefault(owner, {}).setdefault(kind, []).append((index, directory / name))
    return owners


def _target_of(kinds: dict[str, list[tuple[int, Path]]]) -> str | None:
    for entries in kinds.values():
        for _, path in sorted(entries):
            header = read_header(path)
            if header is not None:
                return str(header.get("target"))
    return None


@dataclass
class Orphan:
    """A dead owner's records, claimed by this process (its lock is held until :meth:`release`)."""

    owner: str
    lock: OwnerLock
    target: str | None
    readers: dict[RecordKind, SegmentReader]

    def release(self, *, delete: bool) -> None:
        """Give the owner back (``delete=False``) or remove everything of it (all acknowledged)."""
        if delete:
            for reader in self.readers.values():
                reader.delete()
        else:
            for reader in self.readers.values():
                reader.ack_file.close()
        self.lock.release(delete=delete)


def claim_orphans(directory: Path, target: str, *, own: str | None = None) -> list[Orphan]:
    """Lock every dead owner whose records go to ``target``, oldest first.

    Dead owners with no records left are cleaned up on the way. Owners of other targets, and live ones,
    are left alone.
    """
    owners = _segments_by_owner(directory)
    try:
        lock_owners = {name[: -len(".lock")] for name in os.listdir(directory) if name.endswith(".lock")}
    except FileNotFoundError:
        return []
    claimed: list[Orphan] = []
    for owner in sorted(set(owners) | lock_owners):
        if owner == own or owner.startswith("."):
            continue
        if owner in lock_owners:
            lock = OwnerLock.try_claim(directory / f"{owner}.lock")
        else:
            lock = OwnerLock.adopt(directory, owner)
        if lock is None:
            continue
        kinds = _segments_by_owner(directory).get(owner, {})  # again: the owner may have been cleaned up
        if not kinds:
            for kind in KINDS:
                with contextlib.suppress(FileNotFoundError):
                    (directory / f"{owner}.{kind}.ack").unlink()
            lock.release(delete=True)
            continue
        owner_target = _target_of(kinds)
        if owner_target is not None and owner_target != target:
            lock.release(delete=False)
            continue
        readers: dict[RecordKind, SegmentReader] = {
            kind: SegmentReader(directory, owner, kind, [path for _, path in sorted(entries)])
            for kind, entries in kinds.items()
            if kind in KINDS
        }
        claimed.append(Orphan(owner, lock, owner_target, readers))
    return claimed


# --------------------------------------------------------------------------------------- status


@dataclass(frozen=True)
class OwnerStatus:
    """What ``headrace spool status`` says about one owner."""

    owner: str
    pid: int | None
    alive: bool
    target: str | None
    pending: dict[str, int]
    bytes: int


def _owner_alive(directory: Path, owner: str) -> bool:
    path = directory / f"{owner}.lock"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops the shared lock we may have taken
    return False


def spool_status(directory: Path) -> list[OwnerStatus]:
    """Every owner with records in the spool, oldest first, with its pending counts."""
    result = []
    for owner, kinds in sorted(_segments_by_owner(directory).items()):
        pending: dict[str, int] = {}
        size = 0
        pid = None
        for kind, entries in sorted(kinds.items()):
            paths = [path for _, path in sorted(entries)]
            for path in paths:
                size += len(segment_bytes(path))
            pending[kind] = SegmentReader(directory, owner, kind, paths).count()  # type: ignore[arg-type]
            header = read_header(paths[0]) if paths else None
            if header is not None and pid is None:
                pid = header.get("pid")
        result.append(
            OwnerStatus(
                owner=owner,
                pid=pid,
                alive=_owner_alive(directory, owner),
                target=_target_of(kinds),
                pending=pending,
                bytes=size,
            )
        )
    return result
