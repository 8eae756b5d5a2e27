"""Applying checked operations to a store: the one merge engine.

A pulled changeset, a snapshot and another database file (``localfirst
merge``) all arrive here as :class:`~sync.check.Checked` batches, and the
rules come from the registry (``localfirst.registry``). Each rule gives the
same result whatever order batches arrive in, and a batch applied twice
changes nothing:

- immutable rows: insert if absent. When the key is already there with other
  content (two machines logged the same id, or a hostile remote), the version
  whose canonical hash is smallest wins on every machine, and the conflict is
  recorded in ``sync_conflicts`` and reported; nothing else waits for it;
- mutable fields: last writer wins per field by its HLC (then the greater
  value on equal HLCs);
- deletions: keep the newest tombstone and remove every row it names
  (:func:`localfirst.registry.bury`); a row named by any tombstone is never
  inserted again;
- a row with a parent (a part) lives only while its parent does; collected
  rows (attachments) go when nothing references them any more;
- the local clock moves past every HLC applied.

The caller holds the write transaction and the capture guard.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from localfirst import hlc
from localfirst.registry import (
    BY_NAME,
    DERIVED_HLC,
    TABLES,
    TOMBSTONE_KINDS,
    SyncedTable,
    bury,
    key_sql,
    remove_orphans,
)
from localfirst.timeutil import now_utc

from .changeset import Op, check_ops, value_out
from .check import Checked, Schema, Turns

__all__ = ["Applier", "Conflict", "apply_ops", "apply_checked", "content_hash"]


@dataclass(frozen=True)
class Conflict:
    """One key that arrived with content other than the one here."""

    table: str
    key: str
    kept: str  # canonical hash of the content every machine keeps
    other: str  # canonical hash of the content dropped
    source: str

    def to_json(self) -> dict[str, str]:
        return {"table": self.table, "key": self.key, "kept": self.kept, "other": self.other, "source": self.source}


def content_hash(values: Iterable[tuple[str, Any]]) -> str:
    """The canonical hash of a row's immutable content: the same on every machine."""
    doc = [[name, {"b64": base64.b64encode(v).decode()} if type(v) is bytes else v] for name, v in values]
    return hashlib.sha256(json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()


def _key_text(table: SyncedTable, key: tuple[Any, ...]) -> str:
    return str(key[0]) if len(key) == 1 else json.dumps(list(key))


@dataclass
class _Plan:
    """The SQL and positions for one table, built once per Applier."""

    table: SyncedTable
    cols: tuple[str, ...]
    key_at: tuple[int, ...]
    immutable_at: tuple[int, ...]
    stamp_at: tuple[int, ...]
    carries_at: tuple[tuple[int, str], ...]
    prefer_at: tuple[int, ...]  # positions among the immutable columns
    insert: str
    stage: str
    differ: str
    fresh: str  # counts staged rows whose key is not here yet
    newer: str  # counts staged rows that win a last-writer-wins field
    queue: str  # queues the staged rows' keys for every remote


def _plan(table: SyncedTable, cols: tuple[str, ...]) -> _Plan:
    names = ", ".join(cols)
    stage = f"_apply_{table.name}"
    join = " AND ".join(f"t.{k} = s.{k}" for k in table.key)
    fresh = f"SELECT count(*) FROM temp.{stage} s WHERE NOT EXISTS (SELECT 1 FROM main.{table.name} t WHERE {join})"
    wins = " OR ".join(
        f"s.{stamp} > t.{stamp} OR (s.{stamp} = t.{stamp} AND coalesce(s.{col}, '') > coalesce(t.{col}, ''))"
        for col, stamp in table.mutable.items()
    ) or "false"
    newer = f"SELECT count(*) FROM temp.{stage} s JOIN main.{table.name} t ON {join} WHERE {wins}"
    if table.mutable:
        sets = []
        for col, stamp in table.mutable.items():
            # Every right-hand side reads the old row, so the CASE sees the old stamp.
            wins_here = (
                f"excluded.{stamp} > {stamp} OR (excluded.{stamp} = {stamp} "
                f"AND coalesce(excluded.{col}, '') > coalesce({col}, ''))"
            )
            sets.append(f"{col} = CASE WHEN {wins_here} THEN excluded.{col} ELSE {col} END")
            sets.append(f"{stamp} = max({stamp}, excluded.{stamp})")
        tail = f"ON CONFLICT ({', '.join(table.key)}) DO UPDATE SET {', '.join(sets)}"
    else:
        tail = "ON CONFLICT DO NOTHING"
    # "WHERE true" keeps the ON CONFLICT tail from parsing as a join.
    # A local rowid (the full-text index's locator) is numbered here, past
    # the largest one, rather than one row at a time by a trigger: by the
    # staging table's own rowid, 1, 2, ... (it is emptied after each round;
    # a window function would first copy every staged row into a buffer).
    into, select = names, names
    if "rowid" in table.local:
        into += ", rowid"
        select += f", (SELECT coalesce(max(rowid), 0) FROM main.{table.name}) + rowid"
    insert = (f"INSERT INTO main.{table.name} ({into}) "
              f"SELECT {select} FROM temp.{stage} WHERE true ORDER BY rowid {tail}")
    immutable = [c for c in table.immutable if c in cols]
    same = " AND ".join(f"t.{c} IS s.{c}" for c in immutable) or "true"
    picked = ", ".join(f"t.{c}" for c in immutable) or "NULL"
    differ = f"SELECT s.rowid, {picked} FROM temp.{stage} s JOIN main.{table.name} t ON {join} WHERE NOT ({same})"
    return _Plan(
        table, cols,
        key_at=tuple(cols.index(k) for k in table.key),
        immutable_at=tuple(cols.index(c) for c in immutable),
        stamp_at=tuple(i for i, c in enumerate(cols) if c in table.stamps),
        carries_at=tuple((cols.index(c), t) for c, t in table.carries.items() if c in cols),
        prefer_at=tuple(immutable.index(c) for c in table.prefer if c in immutable),
        insert=insert, stage=stage, differ=differ, fresh=fresh, newer=newer,
        queue=(f"INSERT OR REPLACE INTO main.sync_changes (tbl, key) SELECT '{table.name}', "
               f"{key_sql(table, 's')} FROM temp.{stage} s WHERE EXISTS (SELECT 1 FROM main.sync_remotes)"),
    )


@dataclass
class Applier:
    """Applies checked batches inside the caller's transaction; :meth:`finish` once at the end.

    Orphaned attachments are removed and the clock advanced in :meth:`finish`,
    so a merge that applies a file in many batches sees each attachment
    before the parts that use it.
    """

    conn: sqlite3.Connection
    schema: Schema
    source: str = ""
    #: queue every row and tombstone applied for every remote (a merge: what
    #: came from a file reaches the other machines through this one)
    queue: bool = False
    conflicts: list[Conflict] = field(default_factory=list)
    #: shared with the thread that checks the next batch meanwhile (a pull)
    turns: Turns | None = None
    #: rows inserted, per table; fields changed by last writer wins; rows deleted
    added: dict[str, int] = field(default_factory=dict)
    changed: int = 0
    deleted: int = 0
    _newest: str = ""
    _orphans: set[str] | None = field(default_factory=set)
    _plans: dict[str, _Plan] = field(default_factory=dict)

    def apply(self, batch: Checked, *, source: str | None = None) -> None:
        if source is not None:
            self.source = source
        if batch.dels:
            self.deleted += sum(bury(self.conn, batch.dels, tables=self.schema.tables, orphans=False).values())
            if self.queue:
                self.conn.executemany(
                    "INSERT OR REPLACE INTO sync_changes (tbl, key) "
                    "SELECT 'tombstones', json_array(?, ?) WHERE EXISTS (SELECT 1 FROM sync_remotes)",
                    [(tbl, key) for tbl, key, _ in batch.dels],
                )
            self._newest = max(self._newest, max(d[2] for d in batch.dels))
            self._orphans = None  # a deletion may orphan any attachment
        for table in TABLES:
            rows = batch.rows.get(table.name)
            if rows:
                self._apply_table(table, rows)

    def finish(self) -> None:
        remove_orphans(self.conn, tables=self.schema.tables, candidates=self._orphans)
        self._orphans = set()
        if self._newest:
            hlc.observe(self.conn, self._newest)
            self._newest = ""

    def __post_init__(self) -> None:
        # Every staging table is made before anything is read: creating one
        # while a merge's SELECT on the other file is open would abort it.
        for table in TABLES:
            cols = self.schema.columns[table.name]
            if table.name in self.schema.tables and cols:
                plan = self._plans[table.name] = _plan(table, cols)
                self.conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {plan.stage} ({', '.join(cols)})")

    def _apply_table(self, table: SyncedTable, rows: list[tuple[Any, ...]]) -> None:
        plan = self._plans[table.name]
        rows = self._alive(plan, rows)
        key = itemgetter(*plan.key_at)
        while rows:
            # The same key twice in one batch: apply one now and the rest in a
            # later round, so the conflict rule sees them one at a time.
            first: dict[Any, tuple[Any, ...]] = {}
            later: list[tuple[Any, ...]] = []
            for row in rows:
                if first.setdefault(key(row), row) is not row:
                    later.append(row)
            self._round(plan, list(first.values()) if later else rows)
            rows = later

    def _round(self, plan: _Plan, rows: list[tuple[Any, ...]]) -> None:
        conn = self.conn
        marks = ", ".join("?" * len(plan.cols))
        with self.turns.binding() if self.turns is not None else nullcontext():
            conn.executemany(f"INSERT INTO temp.{plan.stage} VALUES ({marks})", rows)
        try:
            if plan.table.mutable:
                self._differing(plan, rows)
                added = conn.execute(plan.fresh).fetchone()[0]
                self.changed += conn.execute(plan.newer).fetchone()[0]
                conn.execute(plan.insert)
            else:
                # The insert leaves a row already here as it is, so the keys here
                # with other content are the same after it as before; when it
                # inserted every staged row (a new machine's pull), there are none.
                added = conn.execute(plan.insert).rowcount
                if added != len(rows):
                    self._differing(plan, rows)
            if self.queue:
                conn.execute(plan.queue)
        finally:
            conn.execute(f"DELETE FROM temp.{plan.stage}")
        name = plan.table.name
        self.added[name] = self.added.get(name, 0) + max(added, 0)
        for i in plan.stamp_at:
            newest = max((r[i] for r in rows if r[i]), default="")
            self._newest = max(self._newest, newest)
        if self._orphans is not None:
            if plan.table.collected:
                self._orphans.update(r[plan.key_at[0]] for r in rows)
            for i, _ in plan.carries_at:
                self._orphans.update(r[i] for r in rows if r[i] is not None)

    def _differing(self, plan: _Plan, rows: list[tuple[Any, ...]]) -> None:
        """Resolve the staged rows whose key is here with other immutable content."""
        differing = self.conn.execute(plan.differ).fetchall()
        if differing:
            self._resolve(plan, rows, differing)

    def _resolve(self, plan: _Plan, rows: list[tuple[Any, ...]], differing: list[tuple[Any, ...]]) -> None:
        """Same key, other immutable content: the smaller canonical hash wins here and everywhere."""
        table = plan.table
        names = [plan.cols[i] for i in plan.immutable_at]
        for found in differing:
            incoming = rows[found[0] - 1]
            mine = found[1:]
            theirs = tuple(incoming[i] for i in plan.immutable_at)
            h_mine = content_hash(zip(names, mine, strict=True))
            h_theirs = content_hash(zip(names, theirs, strict=True))
            key = tuple(incoming[i] for i in plan.key_at)
            # A total order, the same everywhere: more of the preferred columns
            # set first (bytes beat no bytes), then the smaller hash.
            rank_mine = (-sum(mine[j] is not None for j in plan.prefer_at), h_mine)
            rank_theirs = (-sum(theirs[j] is not None for j in plan.prefer_at), h_theirs)
            if rank_theirs < rank_mine:
                sets = ", ".join(f"{c} = ?" for c in names)
                where = " AND ".join(f"{k} = ?" for k in table.key)
                self.conn.execute(f"UPDATE main.{table.name} SET {sets} WHERE {where}", [*theirs, *key])
                kept, other = h_theirs, h_mine
                for i, _ in plan.carries_at:
                    if self._orphans is not None and mine[plan.immutable_at.index(i)] is not None:
                        self._orphans.add(mine[plan.immutable_at.index(i)])
            else:
                kept, other = h_mine, h_theirs
            conflict = Conflict(table.name, _key_text(table, key), kept, other, self.source)
            self.conflicts.append(conflict)
            self.conn.execute(
                "INSERT OR IGNORE INTO sync_conflicts (tbl, key, kept, other, source, seen_utc) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [conflict.table, conflict.key, kept, other, self.source, now_utc()],
            )

    def _alive(self, plan: _Plan, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The rows no tombstone names and whose parent is here.

        A row that another row's tombstone names (a response in a deleted
        conversation) gets a tombstone of its own first, as a local delete
        gives it (``bury``): whatever version of that key is here goes too,
        and none comes back later.
        """
        table = plan.table
        key_at = plan.key_at[0]
        if table.name in TOMBSTONE_KINDS:
            for tbl, col in table.tombstones:
                if col in table.key:
                    continue
                i = plan.cols.index(col)
                dead = _among(self.conn, "SELECT key FROM tombstones WHERE tbl = ? AND key IN",
                              {r[i] for r in rows}, tbl)
                derived = sorted({r[key_at] for r in rows if r[i] in dead})
                if derived:
                    fresh = _among(self.conn, "SELECT key FROM tombstones WHERE tbl = ? AND key IN",
                                   set(derived), table.name)
                    bury(self.conn, [(table.name, k, DERIVED_HLC) for k in derived if k not in fresh],
                         tables=self.schema.tables, orphans=False)
                    self._orphans = None
        for tbl, col in table.tombstones:
            i = plan.cols.index(col)
            dead = _among(self.conn, "SELECT key FROM tombstones WHERE tbl = ? AND key IN", {r[i] for r in rows}, tbl)
            if dead:
                rows = [r for r in rows if r[i] not in dead]
        if table.parent and rows:
            parent, col = table.parent
            i = plan.cols.index(col)
            pkey = BY_NAME[parent].key[0]
            here = _among(self.conn, f"SELECT {pkey} FROM {parent} WHERE {pkey} IN", {r[i] for r in rows})
            rows = [r for r in rows if r[i] in here]
        return rows


def _among(conn: sqlite3.Connection, sql: str, values: set[Any], *params: Any) -> set[Any]:
    """The ``values`` that ``sql`` (ending in ``IN``) finds, in one query, whatever their number."""
    rows = conn.execute(sql + " (SELECT value FROM json_each(?))", [*params, json.dumps(sorted(values))])
    return {r[0] for r in rows}


def apply_checked(conn: sqlite3.Connection, batch: Checked, *, source: str = "", turns: Turns | None = None
                  ) -> Applier:
    """Apply one checked batch completely (inside the caller's transaction)."""
    applier = Applier(conn, batch.schema, source=source, turns=turns)
    applier.apply(batch)
    applier.finish()
    return applier


def apply_ops(conn: sqlite3.Connection, ops: list[Op], *, schema: Schema, source: str = "") -> Applier:
    """Check ``ops`` (the operations of a changeset, as :func:`sync.changeset.encode` takes them) and apply them."""
    raws: list[Any] = []
    for op, table, row, key, stamp in ops:
        if op == "del":
            raws.append({"op": op, "table": table, "key": key, "hlc": stamp})
        else:
            raws.append({"op": op, "table": table, "row": {k: value_out(v) for k, v in (row or {}).items()}})
    return apply_checked(conn, check_ops(raws, schema, newer=False), source=source)

