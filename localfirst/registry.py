"""The registry of synced tables: the one place that knows how rows merge.

Each :class:`SyncedTable` says how a table is keyed, the kind of every synced
column (what a value from elsewhere must look like), which columns are
mutable and which HLC orders each of them, which tombstones remove its rows,
and what a row depends on. Everything else is derived from it:

- ``sync`` checks every value a changeset or another database file brings
  against these kinds, then applies it by these rules;
- :func:`bury` writes tombstones and removes what they name, for a local
  delete (``logs rm``, ``templates rm``) and for an applied one alike;
- :func:`capture_sql` gives the triggers that queue local writes for push.

Adding a synced table is one entry in ``TABLES`` plus a migration that
creates the table and its triggers (``capture_sql(BY_NAME[name])``); the
tests check that the registry, the schema and the triggers agree.

It lives beside the store, not in ``sync``, because local deletes follow
the same cascades and the store does not import sync.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

__all__ = [
    "Column", "SyncedTable", "TABLES", "BY_NAME", "TOMBSTONE_KINDS", "KINDS",
    "present", "bury", "remove_orphans", "capture_sql", "DERIVED_HLC",
]

# What a value of each kind must be (checked by sync before anything is applied):
#   ulid, sha256   a key or a reference, in its canonical lower-case text form
#   ordinal        an integer from 0 to 999,999 (a part's place in its response)
#   text           text (never bytes)
#   name           a template name (letters, digits, . _ -; it becomes a file name)
#   json           text holding one JSON value (finite numbers, bounded nesting)
#   object         text holding one JSON object
#   int            an integer within SQLite's 64-bit range
#   bool           0 or 1
#   blob           bytes
#   time           a UTC time as localfirst writes it: 2026-11-30T16:38:56.123456Z
#   hlc            a hybrid logical clock value (localfirst.hlc)
#   real           a finite number (no NaN, no infinity)
KINDS = frozenset({"ulid", "sha256", "ordinal", "text", "name", "json", "object", "int", "real", "bool", "blob",
                   "time", "hlc"})


@dataclass(frozen=True)
class Column:
    kind: str
    required: bool = False  # NOT NULL
    #: a mutable column's HLC column: last writer wins, then the greater value
    stamped_by: str | None = None
    #: what a row that does not name this column holds (the schema's DEFAULT)
    default: Any = None

    def __post_init__(self) -> None:
        assert self.kind in KINDS, self.kind


def _c(kind: str, *, required: bool = False, stamped_by: str | None = None, default: Any = None) -> Column:
    return Column(kind, required, stamped_by, default)


@dataclass(frozen=True)
class SyncedTable:
    """How one table syncs.

    ``key`` names the key columns (their kinds are in ``columns``).
    ``tombstones`` lists (tombstone table, column of this table holding its
    key): any of them removes the row and keeps it out for good. ``parent``
    is (table, column): a row lives only while that row does (a part and its
    response). ``carries`` maps a column to the table it references; a pushed
    row takes the referenced row along, so a changeset is self-contained.
    ``collected`` means a row lives only while some row references it (an
    attachment). ``local`` columns exist in one database only (never synced).
    ``prefer`` ranks two versions of one key before their hashes do.
    """

    name: str
    key: tuple[str, ...]
    columns: dict[str, Column]
    local: frozenset[str] = frozenset()
    tombstones: tuple[tuple[str, str], ...] = ()
    parent: tuple[str, str] | None = None
    carries: dict[str, str] = field(default_factory=dict)
    collected: bool = False
    #: when two versions of one key differ, the one with more of these
    #: columns set wins before hashes are compared (an attachment's bytes)
    prefer: tuple[str, ...] = ()

    @cached_property
    def mutable(self) -> dict[str, str]:
        """Each mutable column with the HLC column that orders it."""
        return {n: c.stamped_by for n, c in self.columns.items() if c.stamped_by}

    @cached_property
    def stamps(self) -> frozenset[str]:
        """HLC columns: the local clock moves past every value applied."""
        return frozenset(n for n, c in self.columns.items() if c.kind == "hlc")

    @cached_property
    def immutable(self) -> tuple[str, ...]:
        """Columns that never change once written: two rows of one key must agree on them."""
        moving = set(self.mutable) | set(self.mutable.values())
        return tuple(n for n in self.columns if n not in moving and n not in self.key)

    @cached_property
    def op(self) -> str:
        """``set`` for rows with mutable fields (upsert, per-field LWW), else ``put``."""
        return "set" if self.mutable else "put"


# In the order rows are applied (a parent before its children).
TABLES: tuple[SyncedTable, ...] = (
    SyncedTable(
        "conversations", ("id",),
        {
            "id": _c("ulid", required=True), "name": _c("text", stamped_by="name_hlc"), "model": _c("text"),
            "created_utc": _c("time", required=True), "name_hlc": _c("hlc", required=True, default=""),
        },
        tombstones=(("conversations", "id"),),
    ),
    SyncedTable(
        "attachments", ("id",),
        {
            "id": _c("sha256", required=True), "mime_type": _c("text"), "size": _c("int", required=True),
            "content": _c("blob"), "path": _c("text"), "url": _c("text"),
        },
        collected=True, prefer=("content",),
    ),
    # A deleted conversation takes every response in it along, also those
    # another machine added before it heard of the delete.
    SyncedTable(
        "responses", ("id",),
        {
            "id": _c("ulid", required=True), "conversation_id": _c("ulid", required=True),
            "model": _c("text", required=True), "resolved_model": _c("text"), "prompt": _c("text"),
            "system": _c("text"), "prompt_json": _c("json"), "options_json": _c("object"),
            "response": _c("text"), "response_json": _c("json"), "reasoning": _c("text"),
            "input_tokens": _c("int"), "output_tokens": _c("int"), "token_details": _c("json"),
            "duration_ms": _c("int"), "datetime_utc": _c("time", required=True), "finish_reason": _c("text"),
            "simulated": _c("bool", required=True, default=0), "extras": _c("object"),
        },
        local=frozenset({"rowid"}),
        tombstones=(("responses", "id"), ("conversations", "conversation_id")),
    ),
    SyncedTable(
        "parts", ("response_id", "ordinal"),
        {
            "response_id": _c("ulid", required=True), "ordinal": _c("ordinal", required=True),
            "role": _c("text", required=True), "type": _c("text", required=True), "text": _c("text"),
            "tool_call_id": _c("text"), "tool_name": _c("text"), "arguments_json": _c("json"),
            "error": _c("text"), "attachment_id": _c("sha256"), "extras": _c("object"),
        },
        tombstones=(("responses", "response_id"),),
        parent=("responses", "response_id"), carries={"attachment_id": "attachments"},
    ),
    SyncedTable(
        "templates", ("id",),
        {"id": _c("ulid", required=True), "name": _c("name", required=True),
         "created_utc": _c("time", required=True), "team": _c("ulid")},
        tombstones=(("templates", "id"),),
    ),
    SyncedTable(
        "template_versions", ("id",),
        {
            "id": _c("ulid", required=True), "template_id": _c("ulid", required=True),
            "hlc": _c("hlc", required=True), "prompt": _c("text"), "system": _c("text"), "model": _c("text"),
            "options_json": _c("object"), "defaults_json": _c("object"), "extras": _c("object"),
            "created_utc": _c("time", required=True),
        },
        # A version travels with its template's row, so that a team library's
        # changeset proves which team every version it holds belongs to.
        tombstones=(("templates", "template_id"),), carries={"template_id": "templates"},
    ),
    # A label (production, staging ...) points at one version of its template;
    # moving it is an edit like renaming a conversation: last writer wins.
    SyncedTable(
        "template_labels", ("template_id", "label"),
        {
            "template_id": _c("ulid", required=True), "label": _c("name", required=True),
            "version_id": _c("ulid", required=True, stamped_by="hlc"), "hlc": _c("hlc", required=True),
        },
        tombstones=(("templates", "template_id"),), carries={"template_id": "templates"},
    ),
)
BY_NAME = {t.name: t for t in TABLES}
# Names a tombstone may carry, with the kind of key each takes.
TOMBSTONE_KINDS = {
    tbl: t.columns[col].kind for t in TABLES for tbl, col in t.tombstones if tbl == t.name and col in t.key
}


# The HLC of a tombstone that follows from another one (a response in a
# deleted conversation): the same on every machine, and older than any real
# edit, so a real deletion of the same key keeps its own HLC.
DERIVED_HLC = "0000000000000.0000." + "0" * 26


def present(conn: sqlite3.Connection, schema: str = "main") -> list[SyncedTable]:
    """The registered tables a database has, in registry order."""
    names = {r[0] for r in conn.execute(f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table'")}
    return [t for t in TABLES if t.name in names]


def _children(parent: str) -> list[SyncedTable]:
    return [t for t in TABLES if t.parent and t.parent[0] == parent]


def _delete(conn: sqlite3.Connection, table: SyncedTable, where: str, params: list[tuple[str]]) -> int:
    """Delete the rows of ``table`` matching ``where`` (one ``?``), children first."""
    for child in _children(table.name):
        _, col = child.parent or ("", "")
        key = table.key[0]
        _delete(conn, child, f"{col} IN (SELECT {key} FROM {table.name} WHERE {where})", params)
    return max(conn.executemany(f"DELETE FROM {table.name} WHERE {where}", params).rowcount, 0)


def bury(conn: sqlite3.Connection, dead: Iterable[tuple[str, str, str]], *,
         tables: frozenset[str] | None = None, orphans: bool = True) -> dict[str, int]:
    """Record tombstones (table, key, hlc) and remove every row they name.

    A tombstone keeps the newest HLC it was given. The removal follows the
    registry: rows a tombstone names through any of their columns, their
    children, then (unless ``orphans`` is false: the caller does it later)
    collected rows nothing uses any more. Inside the caller's write
    transaction; returns how many rows of each table named by a tombstone went.
    """
    dead = list(dead)
    gone: dict[str, int] = {}
    if not dead:
        return gone
    conn.executemany(
        "INSERT INTO tombstones (tbl, key, hlc) VALUES (?, ?, ?) "
        "ON CONFLICT (tbl, key) DO UPDATE SET hlc = max(hlc, excluded.hlc)",
        dead,
    )
    for table in TABLES:
        if tables is not None and table.name not in tables:
            continue
        for tbl, col in table.tombstones:
            keys = [(key,) for t, key, _ in dead if t == tbl]
            if not keys:
                continue
            if col not in table.key and table.name in TOMBSTONE_KINDS:
                # A row removed through another row's tombstone (a response in
                # a deleted conversation) gets its own, so no version of it
                # comes back later under another conversation.
                conn.executemany(
                    f"INSERT INTO tombstones (tbl, key, hlc) SELECT '{table.name}', {table.key[0]}, ? "
                    f"FROM {table.name} WHERE {col} = ? ON CONFLICT (tbl, key) DO NOTHING",
                    [(DERIVED_HLC, k) for (k,) in keys],
                )
                # Queued even while a pull applies (capture is paused then):
                # a machine that never saw the row learns of its tombstone
                # too, so every machine ends with the same ones.
                conn.executemany(
                    f"INSERT OR REPLACE INTO sync_changes (tbl, key) SELECT 'tombstones', "
                    f"json_array('{table.name}', t.{table.key[0]}) FROM {table.name} t "
                    f"WHERE t.{col} = ? AND EXISTS (SELECT 1 FROM sync_remotes)",
                    keys,
                )
            gone[table.name] = gone.get(table.name, 0) + _delete(conn, table, f"{col} = ?", keys)
    if orphans:
        remove_orphans(conn, tables=tables)
    return gone


def _referrers(target: str) -> list[tuple[str, str]]:
    return [(t.name, col) for t in TABLES for col, to in t.carries.items() if to == target]


def remove_orphans(conn: sqlite3.Connection, *, tables: frozenset[str] | None = None,
                   candidates: Iterable[str] | None = None) -> None:
    """Remove collected rows (attachments) that nothing references.

    ``candidates`` limits the check to those keys; without it every row is checked.
    """
    keys = None if candidates is None else sorted(set(candidates))
    for table in TABLES:
        if not table.collected or (tables is not None and table.name not in tables):
            continue
        key = table.key[0]
        unused = " AND ".join(
            f"{key} NOT IN (SELECT {c} FROM {t} WHERE {c} IS NOT NULL)" for t, c in _referrers(table.name)
        ) or "true"
        if keys is None:
            conn.execute(f"DELETE FROM {table.name} WHERE {unused}")
        elif keys:
            conn.execute(f"DELETE FROM {table.name} WHERE {key} IN (SELECT value FROM json_each(?)) AND {unused}",
                         [json.dumps(keys)])


def key_sql(table: SyncedTable, row: str = "new") -> str:
    """The SQL expression of a row's key as the outbox stores it (a JSON array when composite)."""
    if len(table.key) == 1:
        return f"{row}.{table.key[0]}"
    return "json_array(" + ", ".join(f"{row}.{c}" for c in table.key) + ")"


def _trigger(table: str, key: str, *, on: str, name: str) -> str:
    # A trigger does nothing while a guard row exists (sync applying remote
    # changes, a merge), so rows that came from elsewhere are not pushed back
    # as ours, nor with no remote to push to. A key is queued once for every
    # remote (each remote keeps the id it has pushed up to); INSERT OR
    # REPLACE gives a re-queued key a new id, so a changeset built before
    # the write does not count it as sent.
    return f"""
        CREATE TRIGGER sync_capture_{table}_{name} AFTER {on} ON {table}
        WHEN NOT EXISTS (SELECT 1 FROM sync_guard) AND EXISTS (SELECT 1 FROM sync_remotes)
        BEGIN
            INSERT OR REPLACE INTO sync_changes (tbl, key) VALUES ('{table}', {key});
        END;
    """


def capture_sql(table: SyncedTable | None) -> str:
    """The triggers that queue every local write of ``table`` (None: the tombstones) for push.

    One AFTER INSERT trigger, and one AFTER UPDATE OF the mutable columns and
    their HLCs when the table has any. A migration that syncs a new table runs
    this for it; an applied migration keeps what it created.
    """
    if table is None:
        key = "json_array(new.tbl, new.key)"
        return (_trigger("tombstones", key, on="INSERT", name="insert")
                + _trigger("tombstones", key, on="UPDATE OF hlc", name="update"))
    sql = _trigger(table.name, key_sql(table), on="INSERT", name="insert")
    if table.mutable:
        moving = ", ".join(c for pair in table.mutable.items() for c in pair)
        sql += _trigger(table.name, key_sql(table), on=f"UPDATE OF {moving}", name="update")
    return sql
