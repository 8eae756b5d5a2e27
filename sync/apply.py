"""Applying checked changeset operations to a store.

The rules, each independent of the order changesets arrive in:

- immutable rows (``put``): insert if absent;
- mutable fields (``set``): insert if absent, else last writer wins per
  field by its HLC;
- deletions (``del``): keep the newest tombstone and remove the rows it
  names; a row whose key has a tombstone is never inserted again;
- collected rows (attachments) go when nothing references them any more.

The caller holds the write transaction and the capture guard.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from operator import itemgetter
from typing import Any

from localfirst import hlc

from .changeset import Op
from .tables import BY_NAME, TABLES, SyncedTable

__all__ = ["apply_ops"]


def _referrers(target: str) -> list[tuple[str, str]]:
    return [(t.name, col) for t in TABLES for col, to in t.carries.items() if to == target]


def _insert_sql(table: SyncedTable, cols: tuple[str, ...]) -> str:
    marks = ", ".join("?" * len(cols))
    names = ", ".join(cols)
    if not table.mutable:
        return f"INSERT OR IGNORE INTO {table.name} ({names}) VALUES ({marks})"
    sets = []
    for col, stamp in table.mutable.items():
        # Every right-hand side reads the old row, so the CASE sees the old stamp.
        sets.append(f"{col} = CASE WHEN excluded.{stamp} > {stamp} THEN excluded.{col} ELSE {col} END")
        sets.append(f"{stamp} = max({stamp}, excluded.{stamp})")
    target = ", ".join(table.key)
    return (
        f"INSERT INTO {table.name} ({names}) VALUES ({marks}) "
        f"ON CONFLICT ({target}) DO UPDATE SET {', '.join(sets)}"
    )


def _alive(conn: sqlite3.Connection, table: SyncedTable, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows whose key has no tombstone: a deleted key never comes back."""
    assert table.tombstone
    tbl, col = table.tombstone
    keys = {row[col] for row in rows}
    dead = {
        r[0] for r in conn.execute(
            "SELECT key FROM tombstones WHERE tbl = ? AND key IN (SELECT value FROM json_each(?))",
            [tbl, json.dumps(sorted(keys))],
        )
    }
    return [row for row in rows if row[col] not in dead] if dead else rows


def apply_ops(conn: sqlite3.Connection, ops: list[Op]) -> None:
    """Apply ``ops`` inside the caller's transaction; the same ops twice change nothing."""
    collected: dict[str, set[Any]] = defaultdict(set)
    newest = ""
    dels = [(tbl, key, stamp) for op, tbl, _, key, stamp in ops if op == "del"]
    if dels:
        conn.executemany(
            "INSERT INTO tombstones (tbl, key, hlc) VALUES (?, ?, ?) "
            "ON CONFLICT (tbl, key) DO UPDATE SET hlc = max(hlc, excluded.hlc)",
            dels,
        )
        newest = max(d[2] or "" for d in dels)
        for table in TABLES:
            if not table.tombstone:
                continue
            tbl, col = table.tombstone
            keys = [(key,) for t, key, _ in dels if t == tbl]
            if not keys:
                continue
            for ref, target in table.carries.items():
                for key in keys:
                    collected[target].update(
                        r[0] for r in conn.execute(
                            f"SELECT {ref} FROM {table.name} WHERE {col} = ? AND {ref} IS NOT NULL", key)
                    )
            conn.executemany(f"DELETE FROM {table.name} WHERE {col} = ?", keys)
    groups: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]] = defaultdict(list)
    for _, name, row, _, _ in ops:
        if row is not None:
            groups[(name, tuple(row))].append(row)
    order = {t.name: i for i, t in enumerate(TABLES)}
    for (name, cols), rows in sorted(groups.items(), key=lambda g: order[g[0][0]]):
        table = BY_NAME[name]
        if table.tombstone:
            rows = _alive(conn, table, rows)
        pick = itemgetter(*cols)
        params = [pick(row) for row in rows] if len(cols) > 1 else [(pick(row),) for row in rows]
        for row in rows:
            for stamp in table.mutable.values():
                newest = max(newest, row.get(stamp) or "")
            if table.collected:
                collected[name].add(row[next(iter(table.key))])
            for ref, target in table.carries.items():
                if row.get(ref) is not None:
                    collected[target].add(row[ref])
        conn.executemany(_insert_sql(table, cols), params)
    for target, found in collected.items():
        if not BY_NAME[target].collected:
            continue
        key_col = next(iter(BY_NAME[target].key))
        unused = " AND ".join(
            f"NOT EXISTS (SELECT 1 FROM {t} WHERE {c} = ?)" for t, c in _referrers(target)
        ) or "true"
        n = len(_referrers(target))
        conn.executemany(
            f"DELETE FROM {target} WHERE {key_col} = ? AND {unused}", [[k] + [k] * n for k in sorted(found)]
        )
    if newest:
        hlc.observe(conn, newest)
