"""The spool files: format, acknowledgements, segments, and telling dead owners from live ones."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from headrace.records import spool as spool_module
from headrace.records.spool import (
    OwnerLock,
    SegmentReader,
    SpoolWriter,
    claim_orphans,
    decode_line,
    encode_line,
    new_owner_id,
    spool_status,
)

TARGET = "http://127.0.0.1:4200/api"


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_a_record_line_round_trips() -> None:
    payload = b'{"a":"}\\n","b":[1,2]}'
    line = encode_line(42, payload)
    assert line.endswith(b"\n")
    assert json.loads(line) == {"seq": 42, "data": {"a": "}\n", "b": [1, 2]}}
    assert decode_line(line) == (42, payload)


@pytest.mark.parametrize(
    "line",
    [b'{"seq":1,"data":{"a":1}', b'{"headrace_spool":1}\n', b"garbage\n", b'{"seq":x,"data":{}}\n', b""],
)
def test_torn_and_foreign_lines_are_not_records(line: bytes) -> None:
    assert decode_line(line) is None


def test_owner_ids_sort_by_start_and_are_unique() -> None:
    first, second = new_owner_id(), new_owner_id()
    assert first != second
    assert first.split("-")[0] <= second.split("-")[0]


def test_the_writer_appends_a_header_then_records(tmp_path: Path) -> None:
    lock = OwnerLock.create(tmp_path, "owner")
    writer = SpoolWriter(tmp_path, "owner", "task_runs", TARGET)
    assert [writer.append(b'{"n":%d}' % i) for i in range(3)] == [1, 2, 3]
    (segment,) = tmp_path.glob("owner.task_runs.*.jsonl")
    header, *records = lines(segment)[:4]
    assert json.loads(header) | {"created": None, "pid": None} == {
        "headrace_spool": 1,
        "owner": "owner",
        "kind": "task_runs",
        "target": TARGET,
        "pid": None,
        "index": 1,
        "created": None,
    }
    assert [decode_line(line) for line in records] == [(1, b'{"n":0}'), (2, b'{"n":1}'), (3, b'{"n":2}')]
    assert not writer.close()  # nothing acknowledged: the files stay, cut to what was written
    assert lines(segment)[-1] == encode_line(3, b'{"n":2}')
    lock.release(delete=True)


def test_a_killed_writer_leaves_a_zero_padded_segment_that_reads_back(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path, "owner", "logs", TARGET)
    writer.append(b'{"a":1}')
    writer.append(b'{"a":2}')
    (segment,) = tmp_path.glob("owner.logs.*.jsonl")
    assert segment.stat().st_size == spool_module.SEGMENT_MAX_BYTES  # preallocated, as a killed process leaves it
    reader = SegmentReader(tmp_path, "owner", "logs", [segment])
    assert list(reader.records()) == [(1, b'{"a":1}'), (2, b'{"a":2}')]
    writer.forget()


def test_a_record_larger_than_a_segment_gets_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool_module, "SEGMENT_MAX_BYTES", 1000)
    writer = SpoolWriter(tmp_path, "owner", "logs", TARGET)
    big = b'{"message":"' + b"x" * 5000 + b'"}'
    writer.append(b"{}")
    writer.append(big)
    writer.append(b"{}")
    segments = sorted(tmp_path.glob("owner.logs.*.jsonl"))
    assert len(segments) == 3
    reader = SegmentReader(tmp_path, "owner", "logs", segments)
    assert [payload for _, payload in reader.records()] == [b"{}", big, b"{}"]
    writer.forget()


def test_acknowledged_segments_are_deleted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool_module, "SEGMENT_MAX_BYTES", 200)
    writer = SpoolWriter(tmp_path, "owner", "logs", TARGET)
    for i in range(20):
        writer.append(b'{"message":"line %02d"}' % i)
    segments = sorted(tmp_path.glob("owner.logs.*.jsonl"))
    assert len(segments) > 3  # rotated at the size limit
    reader = SegmentReader(tmp_path, "owner", "logs", segments)
    assert [seq for seq, _ in reader.records()] == list(range(1, 21))

    writer.ack(10)
    remaining = sorted(tmp_path.glob("owner.logs.*.jsonl"))
    assert remaining
    assert set(remaining) < set(segments)
    assert spool_module.read_ack(tmp_path / "owner.logs.ack") == 10
    after = SegmentReader(tmp_path, "owner", "logs", remaining)
    assert [seq for seq, _ in after.records()] == list(range(11, 21))  # nothing acknowledged is read back

    writer.ack(20)
    assert writer.done
    (open_segment,) = tmp_path.glob("owner.logs.*.jsonl")  # the open one stays until it is full or closed
    assert SegmentReader(tmp_path, "owner", "logs", [open_segment]).count() == 0
    assert writer.append(b'{"message":"later"}') == 21
    assert not writer.close()
    writer.ack(21)
    assert writer.close()
    assert list(tmp_path.iterdir()) == []


def test_the_ack_file_stays_small(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path, "owner", "logs", TARGET)
    for i in range(1, 3000):
        writer.append(b"{}")
        writer.ack(i)
    assert (tmp_path / "owner.logs.ack").stat().st_size <= spool_module.ACK_COMPACT_BYTES
    assert spool_module.read_ack(tmp_path / "owner.logs.ack") == 2999


HOLD_LOCK = """
import sys, time
from pathlib import Path
from headrace.records.spool import OwnerLock, SpoolWriter
directory, owner, target = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
lock = OwnerLock.create(directory, owner)
writer = SpoolWriter(directory, owner, "task_runs", target)
writer.append(b'{"n":1}')
writer.append(b'{"n":2}')
print("ready", flush=True)
if sys.argv[4] == "wait":
    time.sleep(600)
"""


def _owner_process(directory: Path, owner: str, target: str, mode: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(directory), owner, target, mode], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


def test_a_live_owner_is_never_claimed_and_a_dead_one_is(tmp_path: Path) -> None:
    live = _owner_process(tmp_path, "0001-live", TARGET, "wait")
    dead = _owner_process(tmp_path, "0002-dead", TARGET, "exit")
    dead.wait(30)
    other = _owner_process(tmp_path, "0003-other", "http://elsewhere/api", "exit")
    other.wait(30)
    try:
        status = {s.owner: s for s in spool_status(tmp_path)}
        assert status["0001-live"].alive
        assert not status["0002-dead"].alive
        assert status["0002-dead"].pending == {"task_runs": 2}

        claimed = claim_orphans(tmp_path, TARGET)
        assert [orphan.owner for orphan in claimed] == ["0002-dead"]
        (orphan,) = claimed
        assert [seq for seq, _ in orphan.readers["task_runs"].records()] == [1, 2]
        assert claim_orphans(tmp_path, TARGET) == []  # held by us now
        orphan.readers["task_runs"].ack(2)
        orphan.release(delete=True)
        assert list(tmp_path.glob("0002-dead.*")) == []
        assert (tmp_path / "0003-other.lock").exists()  # another target's records are left alone
    finally:
        live.kill()
        live.wait(30)
    (orphan,) = claim_orphans(tmp_path, TARGET)  # the killed owner's lock went with it
    assert orphan.owner == "0001-live"
    orphan.release(delete=False)


def test_a_dead_owner_with_nothing_left_is_cleaned_up(tmp_path: Path) -> None:
    process = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from headrace.records.spool import OwnerLock; "
            "OwnerLock.create(Path(sys.argv[1]), 'gone')",
            str(tmp_path),
        ],
        check=True,
    )
    assert process.returncode == 0
    assert (tmp_path / "gone.lock").exists()
    assert claim_orphans(tmp_path, TARGET) == []
    assert not (tmp_path / "gone.lock").exists()


def test_records_without_a_lock_file_are_adopted(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path, "stray", "logs", TARGET)
    writer.append(b'{"message":"x"}')
    writer.close()
    (orphan,) = claim_orphans(tmp_path, TARGET)
    assert orphan.owner == "stray"
    assert (tmp_path / "stray.lock").exists()
    orphan.release(delete=False)
