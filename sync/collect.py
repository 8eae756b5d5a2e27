"""Turning the outbox into changeset operations, reading the current rows.

Every row is checked as a pull will check it, so this host never sends what
the others would refuse (a row another program wrote with a malformed value,
an attachment too large for one changeset): such a row is held back and
reported, and everything else goes on.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from .capture import OutboxBatch
from .changeset import Op
from .check import Bad, Schema, check_del, check_rows
from .tables import BY_NAME, TOMBSTONE_TABLES, SyncedTable, columns, present
from .team import TEAM_TABLES

__all__ = ["collect", "Held"]

# (table, key, why) of a row that was not sent
Held = tuple[str, str, str]


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


def _sendable(schema: Schema, table: SyncedTable, rows: dict[tuple[Any, ...], dict[str, Any]],
              held: list[Held]) -> None:
    """Remove from ``rows`` (and record in ``held``) every row a pull would refuse."""
    cols = schema.columns[table.name]
    as_tuples = [tuple(r.get(c) for c in cols) for r in rows.values()]
    try:
        check_rows(schema, table, as_tuples)
        return
    except Bad:
        pass
    for key, row in list(rows.items()):
        try:
            check_rows(schema, table, [tuple(row.get(c) for c in cols)])
        except Bad as exc:
            del rows[key]
            held.append((table.name, key[0] if len(key) == 1 else json.dumps(list(key)), str(exc)))


def collect(conn: sqlite3.Connection, batch: OutboxBatch, schema: Schema, *,
            team: str | None = None) -> tuple[list[Op], list[Held]]:
    """Operations for the queued keys, in a deterministic order, and the rows held back.

    Deletions first, then rows table by table in registry order, each sorted
    by key. A queued key whose row is gone (deleted before the push) sends
    only its tombstone; a row takes along the rows it ``carries``. Only what
    belongs to the remote's scope is sent: to a team library (``team``, its
    store id) that team's templates; to a personal remote no team's.
    """
    ops: list[Op] = []
    held: list[Held] = []
    # Text another program stored that is not UTF-8 is read as bytes, so the
    # check below holds that row back instead of the read failing every push.
    factory = conn.text_factory
    conn.text_factory = _lenient
    try:
        _collect(conn, batch, schema, ops, held, team)
    finally:
        conn.text_factory = factory
    return ops, held


def _lenient(value: bytes) -> str | bytes:
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value


def _in_scope(conn: sqlite3.Connection, found: dict[str, dict[tuple[Any, ...], dict[str, Any]]],
              team: str | None) -> None:
    """Remove from ``found`` every row the remote of ``team`` (None: a personal one) does not carry."""
    if team is not None:
        for name, rows in found.items():
            if name not in TEAM_TABLES:
                rows.clear()
    templates = found.get("templates", {})
    for key, row in list(templates.items()):
        if row.get("team") != team:
            del templates[key]
    for name in ("template_versions", "template_labels"):
        rows = found.get(name, {})
        if not rows:
            continue
        ids = sorted({r["template_id"] for r in rows.values()})
        teams = dict(conn.execute("SELECT id, team FROM templates WHERE id IN (SELECT value FROM json_each(?))",
                                  [json.dumps(ids)]).fetchall())
        for key, row in list(rows.items()):
            if teams.get(row["template_id"]) != team:
                del rows[key]


def _collect(conn: sqlite3.Connection, batch: OutboxBatch, schema: Schema, ops: list[Op], held: list[Held],
             team: str | None) -> None:
    for tbl, key in sorted(set(batch.tombstones())):
        if tbl not in TOMBSTONE_TABLES or (team is not None and tbl != "templates"):
            continue
        row = conn.execute("SELECT hlc, team FROM tombstones WHERE tbl = ? AND key = ?", [tbl, key]).fetchone()
        if row is not None and row[1] == team:
            try:
                check_del(tbl, key, row[0], now_ms=schema.now_ms)
            except Bad as exc:
                held.append(("tombstones", json.dumps([tbl, key]), str(exc)))
                continue
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
    _in_scope(conn, found, team)
    for table in tables:
        by_key = found[table.name]
        _sendable(schema, table, by_key, held)
        for row_key in sorted(by_key):
            ops.append((table.op, table.name, by_key[row_key], None, None))
