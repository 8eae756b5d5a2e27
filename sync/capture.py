"""The outbox of local writes and the guard that pauses it.

Triggers (migration ``m020_sync``) queue the key of every row written to a
synced table, by any program, once per configured remote. The outbox holds
keys only: a push reads the current row, so a row written and deleted before
the push sends only its tombstone.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from .tables import SyncedTable, present

__all__ = ["guard", "seed", "pending_count", "outbox_batch", "OutboxBatch"]


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


def seed(conn: sqlite3.Connection, remote: str) -> int:
    """Queue every row of the store for a newly added remote: its first push
    carries the whole history. Returns the number of keys queued."""
    total = 0
    for table in present(conn):
        total += conn.execute(
            f"INSERT OR REPLACE INTO sync_outbox (remote, tbl, key) "
            f"SELECT ?, '{table.name}', {_key_sql(table)} FROM {table.name}",
            [remote],
        ).rowcount
    total += conn.execute(
        "INSERT OR REPLACE INTO sync_outbox (remote, tbl, key) "
        "SELECT ?, 'tombstones', json_array(tbl, key) FROM tombstones",
        [remote],
    ).rowcount
    return total


def pending_count(conn: sqlite3.Connection, remote: str) -> int:
    return int(conn.execute("SELECT count(*) FROM sync_outbox WHERE remote = ?", [remote]).fetchone()[0])


class OutboxBatch:
    """Up to ``limit`` queued keys, oldest first, grouped by table."""

    def __init__(self, conn: sqlite3.Connection, remote: str, *, limit: int) -> None:
        rows = conn.execute(
            "SELECT id, tbl, key FROM sync_outbox WHERE remote = ? ORDER BY id LIMIT ?", [remote, limit]
        ).fetchall()
        self.max_id = rows[-1][0] if rows else 0
        self.keys: dict[str, list[str]] = {}
        for _, tbl, key in rows:
            self.keys.setdefault(tbl, []).append(key)

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


def outbox_batch(conn: sqlite3.Connection, remote: str, *, limit: int) -> OutboxBatch:
    return OutboxBatch(conn, remote, limit=limit)
