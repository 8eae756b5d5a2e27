"""Applying checked changeset operations to a store.

The rules, each independent of the order changesets arrive in, and the same
as ``localfirst merge`` follows:

- immutable rows (``put``): insert if absent;
- mutable fields (``set``): insert if absent, else last writer wins per
  field by its HLC (the greater value on equal HLCs);
- deletions (``del``): keep the newest tombstone and remove every row it
  names (a deleted conversation takes its responses along); a row named by
  any tombstone is never inserted again;
- a row with a parent (a part) lives only while its parent does;
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
from localfirst.db import insert_rows

from .changeset import Op
from .tables import BY_NAME, TABLES, SyncedTable

__all__ = ["apply_ops"]


def _referrers(target: str) -> list[tuple[str, str]]:
    return [(t.name, col) for t in TABLES for col, to in t.carries.items() if to == target]


def _children(parent: str) -> list[SyncedTable]:
    return [t for t in TABLES if t.parent and t.parent[0] == parent]


def _insert_sql(table: SyncedTable, cols: tuple[str, ...]) -> tuple[str, str]:
    """The head and the ON CONFLICT tail of the statement that inserts rows of ``cols``."""
    names = ", ".join(cols)
    if not table.mutable:
        return f"INSERT OR IGNORE INTO {table.name} ({names})", ""
    sets = []
    for col, stamp in table.mutable.items():
        # Every right-hand side reads the old row, so the CASE sees the old stamp.
        newer = (
            f"excluded.{stamp} > {stamp} OR (excluded.{stamp} = {stamp} "
            f"AND coalesce(excluded.{col}, '') > coalesce({col}, ''))"
        )
        sets.append(f"{col} = CASE WHEN {newer} THEN excluded.{col} ELSE {col} END")
        sets.append(f"{stamp} = max({stamp}, excluded.{stamp})")
    target = ", ".join(table.key)
    return f"INSERT INTO {table.name} ({names})", f"ON CONFLICT ({target}) DO UPDATE SET {', '.join(sets)}"


def _among(conn: sqlite3.Connection, sql: str, values: set[Any], *params: Any) -> set[Any]:
    """The ``values`` that ``sql`` (ending in ``IN``) finds, in one query."""
    rows = conn.execute(sql + " (SELECT value FROM json_each(?))", [*params, json.dumps(sorted(values))])
    return {r[0] for r in rows}


def _alive(conn: sqlite3.Connection, table: SyncedTable, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows no tombstone names and whose parent is here."""
    for tbl, col in table.tombstones:
        dead = _among(conn, "SELECT key FROM tombstones WHERE tbl = ? AND key IN", {r[col] for r in rows}, tbl)
        if dead:
            rows = [r for r in rows if r[col] not in dead]
    if table.parent and rows:
        parent, col = table.parent
        key = next(iter(BY_NAME[parent].key))
        here = _among(conn, f"SELECT {key} FROM {parent} WHERE {key} IN", {r[col] for r in rows})
        rows = [r for r in rows if r[col] in here]
    return rows


def _delete(conn: sqlite3.Connection, table: SyncedTable, where: str, keys: list[tuple[Any]]) -> None:
    """Delete the rows of ``table`` matching ``where`` (one ``?``), children first."""
    for child in _children(table.name):
        _, col = child.parent or ("", "")
        key = next(iter(table.key))
        _delete(conn, child, f"{col} IN (SELECT {key} FROM {table.name} WHERE {where})", keys)
    conn.executemany(f"DELETE FROM {table.name} WHERE {where}", keys)


def apply_ops(conn: sqlite3.Connection, ops: list[Op], *, tables: frozenset[str]) -> None:
    """Apply ``ops`` inside the caller's transaction; the same ops twice change nothing.

    ``tables`` are the registered tables this database has.
    """
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
            if table.name not in tables:
                continue
            for tbl, col in table.tombstones:
                keys: list[tuple[Any]] = [(key,) for t, key, _ in dels if t == tbl]
                if keys:
                    _delete(conn, table, f"{col} = ?", keys)
        for table in TABLES:
            if table.collected and table.name in tables:
                collected[table.name].add(None)  # a deletion may orphan any of them
    groups: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]] = defaultdict(list)
    for _, name, row, _, _ in ops:
        if row is not None:
            groups[(name, tuple(row))].append(row)
    order = {t.name: i for i, t in enumerate(TABLES)}
    for (name, cols), rows in sorted(groups.items(), key=lambda g: order[g[0][0]]):
        table = BY_NAME[name]
        rows = _alive(conn, table, rows)
        pick = itemgetter(*cols)
        params = [pick(row) for row in rows] if len(cols) > 1 else [(pick(row),) for row in rows]
        stamps = [*table.mutable.values(), *table.observed]
        for row in rows:
            for stamp in stamps:
                newest = max(newest, row.get(stamp) or "")
            if table.collected:
                collected[name].add(row[next(iter(table.key))])
            for ref, target in table.carries.items():
                if row.get(ref) is not None:
                    collected[target].add(row[ref])
        head, tail = _insert_sql(table, cols)
        # One statement for all rows: the full-text index takes them as one batch.
        insert_rows(conn, head, params, width=len(cols), tail=tail)
    for target, found in collected.items():
        if not BY_NAME[target].collected:
            continue
        key_col = next(iter(BY_NAME[target].key))
        unused = " AND ".join(
            f"{key_col} NOT IN (SELECT {c} FROM {t} WHERE {c} IS NOT NULL)" for t, c in _referrers(target)
        ) or "true"
        if None in found:
            conn.execute(f"DELETE FROM {target} WHERE {unused}")
        else:
            conn.execute(f"DELETE FROM {target} WHERE {key_col} IN (SELECT value FROM json_each(?)) AND {unused}",
                         [json.dumps(sorted(found))])
    if newest:
        hlc.observe(conn, newest)
