"""Turning the outbox into changeset operations, reading the current rows."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from .capture import OutboxBatch
from .changeset import Op
from .tables import BY_NAME, TOMBSTONE_TABLES, SyncedTable, columns, present

__all__ = ["collect"]


def _select(conn: sqlite3.Connection, table: SyncedTable, keys: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    if not keys:
        return []
    cols = columns(conn, table)
    names = list(table.key)
    if len(names) == 1:
        where = f"{names[0]} IN (SELECT value FROM json_each(?))"
        param = json.dumps([k[0] for k in keys])
    else:
        picks = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(names)))
        where = f"({', '.join(names)}) IN (SELECT {picks} FROM json_each(?))"
        param = json.dumps([list(k) for k in keys])
    rows = conn.execute(f"SELECT {', '.join(cols)} FROM {table.name} WHERE {where}", [param]).fetchall()
    return [dict(zip(cols, r, strict=True)) for r in rows]


def _key(table: SyncedTable, row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[c] for c in table.key)


def collect(conn: sqlite3.Connection, batch: OutboxBatch) -> list[Op]:
    """Operations for the queued keys, in a deterministic order.

    Deletions first, then rows table by table in registry order, each sorted
    by key. A queued key whose row is gone (deleted before the push) sends
    only its tombstone; a row takes along the rows it ``carries``.
    """
    ops: list[Op] = []
    for tbl, key in sorted(set(batch.tombstones())):
        if tbl not in TOMBSTONE_TABLES:
            continue
        row = conn.execute("SELECT hlc FROM tombstones WHERE tbl = ? AND key = ?", [tbl, key]).fetchone()
        if row is not None:
            ops.append(("del", tbl, None, key, row[0]))
    tables = present(conn)
    found: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
    for table in tables:
        found[table.name] = {_key(table, r): r for r in _select(conn, table, batch.decoded(table))}
    for table in tables:
        for col, target in table.carries.items():
            refs = {(r[col],) for r in found[table.name].values() if r.get(col) is not None}
            missing = [k for k in refs if k not in found[target]]
            for r in _select(conn, BY_NAME[target], missing):
                found[target][_key(BY_NAME[target], r)] = r
    for table in tables:
        by_key = found[table.name]
        for row_key in sorted(by_key):
            ops.append((table.op, table.name, by_key[row_key], None, None))
    return ops
