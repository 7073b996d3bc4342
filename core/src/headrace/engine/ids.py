"""Random (version 4) UUIDs for runs and states, without a system call each.

``uuid.uuid4()`` reads the operating system's random source every time; on the hot path (three ids per task
run) that system call is the single largest cost, and it releases the GIL to whichever thread wants it.
:func:`new_id` draws from a generator seeded once from the operating system and re-seeded in a forked
child, so that two processes never share a sequence. Ids need to be unique, not secret.
"""

from __future__ import annotations

import os
import random
import uuid

__all__ = ["new_id"]

_random = random.Random()
_getrandbits = _random.getrandbits
_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_SET = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant
_new = object.__new__
_set = object.__setattr__
_SAFE = uuid.SafeUUID.unknown


def new_id() -> uuid.UUID:
    """A random version-4 UUID (what ``uuid.uuid4()`` returns), about twice as fast and with no system call."""
    value = _new(uuid.UUID)
    _set(value, "int", (_getrandbits(128) & _CLEAR) | _SET)
    _set(value, "is_safe", _SAFE)
    return value


def _reseed() -> None:
    _random.seed(os.urandom(32))


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed)
