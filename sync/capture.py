"""The outbox of local writes and the guard that pauses it.

Triggers (``localfirst.registry.capture_sql``) queue the key of every row
written to a synced table, by any program, once in ``sync_changes``, under
an id that grows with every write. Each remote's row in ``sync_outbox``
holds the id it has pushed up to: its outbox is every change after that.
So a changed key costs one row whatever the number of remotes, and the rows
every remote has pushed are deleted.

A newly added remote first pushes the keys of every row the store held
when it was added (``sync_seed``, deleted as they are pushed), then the
changes made since. The outbox holds keys only: a push reads the current
row, so a row written and deleted before the push sends only its tombstone.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from .tables import SyncedTable, present

__all__ = [
    "guard", "seed", "pending_count", "pending_keys", "outbox_batch", "OutboxBatch", "advance", "reclaim",
    "passed_over",
]

# Pages on the free list above which a push hands the space back to the file system.
RECLAIM_PAGES = 64


@contextmanager
def guard(conn: sqlite3.Connection, reason: str) -> Iterator[None]:
    """Pause capture inside the caller's write transaction.

    Rows written inside came from elsewhere (a remote, a merged file) and
    must not be pushed as this host's own. The guard row is removed before
    the transaction commits, so no other connection ever sees it.
    """
    assert conn.in_transaction, "guard() runs inside a write transaction"
    conn.execute("INSERT OR REPLACE INTO sync_guard (reason) VALUES (?)", [reason])
    try:
        yield
    finally:
        conn.execute("DELETE FROM sync_guard WHERE reason = ?", [reason])


def _key_sql(table: SyncedTable) -> str:
    cols = list(table.key)
    if len(cols) == 1:
        return cols[0]
    return "json_array(" + ", ".join(cols) + ")"


def _pushed(conn: sqlite3.Connection, remote: str) -> int:
    row = conn.execute("SELECT pushed FROM sync_outbox WHERE remote = ?", [remote]).fetchone()
    return 0 if row is None else int(row[0])


def _only(tables: frozenset[str] | None) -> str:
    """SQL that keeps the outbox rows of ``tables`` (None: every table)."""
    if tables is None:
        return ""
    return " AND tbl IN (" + ", ".join(f"'{t}'" for t in sorted(tables)) + ")"


def seed(conn: sqlite3.Connection, remote: str, *, tables: frozenset[str] | None = None) -> int:
    """Queue every row of the store for a newly added remote: its first pushes
    carry the whole history, then the changes made since. Inside the caller's
    write transaction; returns the number of keys queued.

    The seed is the one list kept per remote, and only until it is pushed:
    rows that arrive later from elsewhere (a pull) are not in it, so they
    are not pushed back.
    """
    reclaim_rows(conn)
    conn.execute("DELETE FROM sync_seed WHERE remote = ?", [remote])
    conn.execute(
        "INSERT OR REPLACE INTO sync_outbox (remote, pushed) "
        "VALUES (?, (SELECT coalesce(max(id), 0) FROM sync_changes))",
        [remote],
    )
    total = 0
    for table in present(conn):
        if tables is not None and table.name not in tables:
            continue
        total += conn.execute(
            f"INSERT INTO sync_seed (remote, tbl, key) SELECT ?, '{table.name}', {_key_sql(table)} FROM {table.name}",
            [remote],
        ).rowcount
    total += conn.execute(
        "INSERT INTO sync_seed (remote, tbl, key) SELECT ?, 'tombstones', json_array(tbl, key) FROM tombstones",
        [remote],
    ).rowcount
    return total


def pending_count(conn: sqlite3.Connection, remote: str, *, tables: frozenset[str] | None = None) -> int:
    """Keys not yet pushed to ``remote`` (the rest of its seed, then the changes since), of ``tables``."""
    seeded = conn.execute("SELECT count(*) FROM sync_seed WHERE remote = ?", [remote]).fetchone()[0]
    changed = conn.execute("SELECT count(*) FROM sync_changes WHERE id > ?" + _only(tables),
                           [_pushed(conn, remote)]).fetchone()[0]
    return int(seeded) + int(changed)


def pending_keys(conn: sqlite3.Connection, remote: str) -> list[tuple[str, str]]:
    """Every (table, key) not yet pushed to ``remote``, in the order a push sends them.

    Reads them all at once: for inspection and tests, not for pushing.
    """
    out: list[tuple[str, str]] = conn.execute(
        "SELECT tbl, key FROM sync_seed WHERE remote = ? ORDER BY id", [remote]).fetchall()
    out += conn.execute("SELECT tbl, key FROM sync_changes WHERE id > ? ORDER BY id",
                        [_pushed(conn, remote)]).fetchall()
    return out


class OutboxBatch:
    """Up to ``limit`` queued keys, oldest first, grouped by table.

    ``max_id`` is the id of the last change it holds (the remote's ``pushed``
    once it is sent); ``seed_max`` the id of the last seed row it holds.
    """

    def __init__(self, keys: dict[str, list[str]], *, max_id: int, seed_max: int | None = None) -> None:
        self.keys = keys
        self.max_id = max_id
        self.seed_max = seed_max

    def __bool__(self) -> bool:
        return bool(self.keys)

    def decoded(self, table: SyncedTable) -> list[tuple[object, ...]]:
        """The queued keys of ``table`` as tuples of key column values."""
        raw = self.keys.get(table.name, [])
        if len(table.key) == 1:
            return [(k,) for k in raw]
        return [tuple(json.loads(k)) for k in raw]

    def tombstones(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for k in self.keys.get("tombstones", []):
            tbl, key = json.loads(k)
            out.append((str(tbl), str(key)))
        return out


def outbox_batch(conn: sqlite3.Connection, remote: str, *, limit: int,
                 tables: frozenset[str] | None = None) -> OutboxBatch:
    """The next keys to push to ``remote``: its seed while there is one, then the oldest changes.

    With ``tables``, changes to other tables are passed over (a team library
    carries only its own): the batch's ``max_id`` moves past them as well.
    """
    pushed = _pushed(conn, remote)
    rows = conn.execute(
        "SELECT id, tbl, key FROM sync_seed WHERE remote = ? ORDER BY id LIMIT ?", [remote, limit]).fetchall()
    seeding = bool(rows)
    if not seeding:
        rows = conn.execute(
            "SELECT id, tbl, key FROM sync_changes WHERE id > ?" + _only(tables) + " ORDER BY id LIMIT ?",
            [pushed, limit]).fetchall()
    keys: dict[str, list[str]] = {}
    for _, tbl, key in rows:
        keys.setdefault(tbl, []).append(key)
    if seeding:
        return OutboxBatch(keys, max_id=pushed, seed_max=rows[-1][0])
    if tables is not None and len(rows) < limit:
        # Nothing of ours is left past these: the rest of the changes are not this remote's.
        last = conn.execute("SELECT coalesce(max(id), 0) FROM sync_changes").fetchone()[0]
        return OutboxBatch(keys, max_id=max(int(last), pushed))
    return OutboxBatch(keys, max_id=rows[-1][0] if rows else pushed)


def passed_over(conn: sqlite3.Connection, remote: str, tables: frozenset[str]) -> int | None:
    """When no change after ``remote``'s place is of ``tables``: the id to move its place to; else None.

    A team library carries only its own tables: without moving past the
    changes it never sends, they would be kept for it for ever.
    """
    pushed = _pushed(conn, remote)
    last = int(conn.execute("SELECT coalesce(max(id), 0) FROM sync_changes").fetchone()[0])
    if last <= pushed or conn.execute("SELECT 1 FROM sync_changes WHERE id > ?" + _only(tables) + " LIMIT 1",
                                      [pushed]).fetchone():
        return None
    return last


def advance(conn: sqlite3.Connection, remote: str, pushed: int, seed_max: int | None) -> None:
    """Record that ``remote`` has every change up to id ``pushed`` and its seed up to id ``seed_max``.

    Inside the caller's write transaction, with what the push sent: a push
    that dies before this leaves every key to push again.
    """
    conn.execute(
        "INSERT INTO sync_outbox (remote, pushed) VALUES (?, ?) "
        "ON CONFLICT (remote) DO UPDATE SET pushed = max(pushed, excluded.pushed)",
        [remote, pushed],
    )
    if seed_max is not None:
        conn.execute("DELETE FROM sync_seed WHERE remote = ? AND id <= ?", [remote, seed_max])
    reclaim_rows(conn)


def reclaim_rows(conn: sqlite3.Connection) -> None:
    """Delete the changes every remote has pushed (all of them when there is no remote), and forgotten seeds."""
    conn.execute(
        "DELETE FROM sync_changes WHERE id <= (SELECT coalesce(min(coalesce(o.pushed, 0)), "
        "(SELECT max(id) FROM sync_changes)) FROM sync_remotes r LEFT JOIN sync_outbox o ON o.remote = r.name)"
    )
    conn.execute("DELETE FROM sync_seed WHERE remote NOT IN (SELECT name FROM sync_remotes)")


def reclaim(conn: sqlite3.Connection) -> None:
    """Give the pages deleted rows left free back to the file system (outside a transaction).

    Only a database in incremental auto-vacuum mode (every one created since
    this version) can; for others the free pages are reused by later writes.
    """
    if conn.in_transaction:
        return
    if conn.execute("PRAGMA freelist_count").fetchone()[0] > RECLAIM_PAGES:
        # executescript steps the pragma to its end; execute() would free one page.
        conn.executescript("PRAGMA incremental_vacuum;")
