"""Hybrid logical clocks that order edits across machines.

An HLC is a fixed-width string ``"<wall ms:013d>.<counter:04d>.<host id>"`` so
that it compares correctly both in Python and in SQL. The last value handed
out lives in the database (``meta.hlc``), so the clock never runs backwards,
and :func:`observe` moves it past every HLC applied from elsewhere: an edit
made after seeing another edit sorts after it even when the wall clocks
disagree.
"""

from __future__ import annotations

import sqlite3
import time

__all__ = ["tick", "observe", "parse", "format_hlc", "host_id", "plausible", "MAX_AHEAD_MS", "MAX_WALL_MS"]

_COUNTER_MAX = 9999
_MS_MAX = 9_999_999_999_999  # 13 digits: the year 2286
MAX_WALL_MS = _MS_MAX
# How far ahead of this machine's clock an HLC from elsewhere may be. More is
# a broken clock or a forged value; observing it would drag every later edit
# here along with it.
MAX_AHEAD_MS = 24 * 3600 * 1000


def format_hlc(ms: int, counter: int, host: str) -> str:
    return f"{ms:013d}.{counter:04d}.{host}"


def parse(value: str) -> tuple[int, int, str]:
    ms, counter, host = value.split(".", 2)
    return int(ms), int(counter), host


def host_id(conn: sqlite3.Connection) -> str:
    """This store's id; a restored backup (which has none) gets a new one here, on first use."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'host_id'").fetchone()
    if row is None:
        from . import ids

        conn.execute("INSERT INTO meta (key, value) VALUES ('host_id', ?) ON CONFLICT (key) DO NOTHING",
                     [ids.new_id()])
        row = conn.execute("SELECT value FROM meta WHERE key = 'host_id'").fetchone()
    return str(row[0])


def _last(conn: sqlite3.Connection) -> tuple[int, int]:
    row = conn.execute("SELECT value FROM meta WHERE key = 'hlc'").fetchone()
    if row is None:
        return 0, 0
    ms, counter, _ = parse(row[0])
    return ms, counter


def _store(conn: sqlite3.Connection, value: str) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('hlc', ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [value],
    )


def plausible(value: str, *, now_ms: int | None = None) -> bool:
    """Whether an HLC's wall clock is at most MAX_AHEAD_MS ahead of ours."""
    wall = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    return parse(value)[0] <= wall + MAX_AHEAD_MS


def tick(conn: sqlite3.Connection, *, now_ms: int | None = None) -> str:
    """A new HLC for a local edit. Call inside the edit's write transaction."""
    wall = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    last_ms, last_counter = _last(conn)
    if wall > last_ms:
        ms, counter = wall, 0
    else:
        ms, counter = last_ms, last_counter + 1
        if counter > _COUNTER_MAX:
            ms, counter = ms + 1, 0
    if ms > _MS_MAX:
        from .errors import DatabaseError

        raise DatabaseError("this database's clock has run past the year 2286; it cannot order new edits")
    value = format_hlc(ms, counter, host_id(conn))
    _store(conn, value)
    return value


def observe(conn: sqlite3.Connection, seen: str | None) -> None:
    """Advance the local clock past an HLC applied from another store."""
    if not seen:
        return
    ms, counter, _ = parse(seen)
    last_ms, last_counter = _last(conn)
    if (ms, counter) > (last_ms, last_counter):
        _store(conn, format_hlc(ms, counter, host_id(conn)))
