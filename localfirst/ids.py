"""The one place ids are made: lowercase 26-character ULIDs.

Ids are strictly increasing within a process, also within one millisecond and
when the wall clock steps backwards: the generator never goes below the last id
it gave out and adds one to the random part instead. A forked child forgets the
parent's last id and draws fresh randomness, so it never repeats one.

The 128 bits are encoded here rather than through python-ulid, whose import
costs ~45 ms on every command that writes; the tests check our ids against
python-ulid as a reference.
"""

from __future__ import annotations

import os
import re
import threading
import time

__all__ = ["new_id", "is_id", "id_time_ms", "ULID_RE"]

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_DECODE = {c: i for i, c in enumerate(_ALPHABET)}
ULID_RE = re.compile(r"^[0-7][0-9a-hjkmnp-tv-z]{25}$")

_RANDOM_BITS = 80
_RANDOM_MAX = (1 << _RANDOM_BITS) - 1
_TIME_MAX = (1 << 48) - 1

_lock = threading.Lock()
_last_ms = -1
_last_rand = 0


def _reset_after_fork() -> None:
    global _last_ms, _last_rand, _lock
    _lock = threading.Lock()
    _last_ms = -1
    _last_rand = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


# Two characters per 10 bits: 13 lookups encode the 130 bits (two of them zero).
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_SHIFTS = tuple(range(120, -1, -10))


def _encode(value: int) -> str:
    pairs = _PAIRS
    return "".join([pairs[(value >> shift) & 1023] for shift in _SHIFTS])


def _random80() -> int:
    return int.from_bytes(os.urandom(10), "big")


def new_id(*, now_ms: int | None = None) -> str:
    """Return a new ULID, greater than every id this process made before.

    ``now_ms`` overrides the wall clock (tests use it to step time backwards).
    """
    global _last_ms, _last_rand
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    with _lock:
        if ms > _last_ms:
            rand = _random80()
        else:
            ms = _last_ms
            rand = _last_rand + 1
            if rand > _RANDOM_MAX:
                ms += 1
                rand = _random80()
        if ms > _TIME_MAX:
            raise OverflowError("ULID time overflow")
        _last_ms, _last_rand = ms, rand
    return _encode((ms << _RANDOM_BITS) | rand)


def is_id(value: str) -> bool:
    """True when ``value`` is a well-formed ULID (either case)."""
    return bool(ULID_RE.fullmatch(value.lower())) if isinstance(value, str) else False


def id_time_ms(value: str) -> int:
    """The millisecond timestamp held in the first 48 bits of a ULID."""
    ms = 0
    for ch in value.lower()[:10]:
        ms = (ms << 5) | _DECODE[ch]
    return ms
