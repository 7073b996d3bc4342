"""Time-ordered (version 7) UUIDs for runs and states, without a system call each.

Layout (RFC 9562, version 7): the first 48 bits are the Unix time in milliseconds, the other 74 free bits
random. Why time-ordered: ids are the primary keys of the run and state tables, and with random keys
every insert lands on a random page of each key's index, so storing a batch of task-run records touched
pages all over the database file; with time-ordered keys new rows go to the end of the indexes, which
keeps the server's ingest cost flat as the tables grow (SQLite and PostgreSQL alike). Ids made in the same
millisecond are unordered among themselves, which costs nothing: they stay on the same few pages.

``uuid.uuid4()`` reads the operating system's random source every time; on the hot path (three ids per
task run) that system call was the single largest cost, and it releases the GIL to whichever thread wants
it. :func:`new_id` draws its random bits from a generator seeded once from the operating system and
re-seeded in a forked child, so that two processes never share a sequence. Ids need to be unique, not
secret: 74 random bits per millisecond per process.
"""

from __future__ import annotations

import os
import random
import time
import uuid

__all__ = ["new_id"]

_random = random.Random()
_getrandbits = _random.getrandbits
_time_ns = time.time_ns
_VERSION_7 = 0x7 << 76
_VARIANT = 0x2 << 62  # the RFC 9562 variant
_new = object.__new__
_set = object.__setattr__
_SAFE = uuid.SafeUUID.unknown


def new_id() -> uuid.UUID:
    """A version-7 UUID: the current time in milliseconds, then random bits (see the module docs)."""
    random_bits = _getrandbits(74)
    value = _new(uuid.UUID)
    millis = _time_ns() // 1_000_000
    _set(
        value,
        "int",
        (millis << 80) | _VERSION_7 | ((random_bits >> 62) << 64) | _VARIANT | (random_bits & ((1 << 62) - 1)),
    )
    _set(value, "is_safe", _SAFE)
    return value


def _reseed() -> None:
    _random.seed(os.urandom(32))


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed)
