"""Run and state ids: valid version-7 UUIDs, ordered by the millisecond they were made in, never repeated."""

from __future__ import annotations

import os
import time
import uuid

from headrace.engine.ids import new_id


def test_an_id_is_a_version_7_uuid_carrying_the_time_it_was_made() -> None:
    before = time.time_ns() // 1_000_000
    made = new_id()
    after = time.time_ns() // 1_000_000
    assert made.version == 7
    assert made.variant == uuid.RFC_4122
    assert before <= made.int >> 80 <= after
    assert uuid.UUID(str(made)) == made  # round-trips through its text form, as the API sends it


def test_ids_made_later_sort_after_and_none_repeat() -> None:
    first = [new_id() for _ in range(1_000)]
    time.sleep(0.002)
    second = [new_id() for _ in range(1_000)]
    assert max(first) < min(second)  # what keeps the database's primary-key indexes append-mostly
    assert len(set(first + second)) == 2_000


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write its next id and leave at once
        os.write(writer, new_id().bytes)
        os._exit(0)
    os.close(writer)
    os.waitpid(pid, 0)
    child = uuid.UUID(bytes=os.read(reader, 16))
    os.close(reader)
    # Without a new seed the child would have drawn exactly the random bits the parent draws next.
    assert _random_bits(child) != _random_bits(new_id())
    assert child.version == 7


def _random_bits(value: uuid.UUID) -> int:
    """The 74 random bits of a version-7 UUID (12 after the version, 62 after the variant)."""
    return ((value.int >> 64) & 0xFFF) << 62 | (value.int & ((1 << 62) - 1))
