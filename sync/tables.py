"""The registry of synced tables: what sync may read, write and delete.

Each entry says how a table is keyed, which of its columns are mutable (and
which HLC column orders each of them), which columns are local to one
database, and which tombstone removes its rows. Every other column of the live
table is synced by name, so a column added by a later migration syncs without
a change here.

To sync a new table: add a :class:`SyncedTable` to ``TABLES`` and, in a new
migration, its capture triggers with ``_m020_capture`` (see ``m020_sync`` in
``localfirst/migrations.py``: one AFTER INSERT trigger, plus AFTER UPDATE OF
the mutable columns and their HLC columns when there are any).
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field

__all__ = [
    "SyncedTable", "TABLES", "BY_NAME", "TOMBSTONE_TABLES", "TOMBSTONE_KINDS", "present", "columns",
    "check_key_value", "HLC_RE",
]

ULID_RE = re.compile(r"^[0-7][0-9a-hjkmnp-tv-z]{25}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
HLC_RE = re.compile(r"^\d{13}\.\d{4}\.[0-9a-hjkmnp-tv-z]{26}$")


@dataclass(frozen=True)
class SyncedTable:
    """How one table syncs.

    ``key`` maps each key column to its kind (``ulid``, ``sha256`` or
    ``ordinal``); the key is checked before any SQL is built from it.
    ``mutable`` maps a mutable column to the HLC column that orders it (last
    writer wins, then the greater value on equal HLCs). ``tombstones`` lists
    (tombstone tbl, column of this table holding its key): any of them
    removes the row and keeps it out. ``parent`` is (table, column): a row
    lives only while that row does (a part and its response). ``carries``
    maps a column to the table it references; a pushed row takes the
    referenced row along, so a changeset is self-contained. ``collected``
    means a row lives only while some row references it (an attachment).
    ``observed`` names HLC columns the local clock must move past.
    """

    name: str
    key: dict[str, str]
    mutable: dict[str, str] = field(default_factory=dict)
    local: frozenset[str] = frozenset()
    tombstones: tuple[tuple[str, str], ...] = ()
    parent: tuple[str, str] | None = None
    carries: dict[str, str] = field(default_factory=dict)
    collected: bool = False
    observed: frozenset[str] = frozenset()

    @property
    def op(self) -> str:
        """``set`` for rows with mutable fields (upsert, per-field LWW), else ``put``."""
        return "set" if self.mutable else "put"


# In the order rows are applied (a parent before its children).
TABLES: tuple[SyncedTable, ...] = (
    SyncedTable(
        "conversations", {"id": "ulid"}, mutable={"name": "name_hlc"},
        tombstones=(("conversations", "id"),),
    ),
    SyncedTable("attachments", {"id": "sha256"}, collected=True),
    # A deleted conversation takes every response in it along, also those
    # another machine added before it heard of the delete.
    SyncedTable(
        "responses", {"id": "ulid"}, local=frozenset({"rowid"}),
        tombstones=(("responses", "id"), ("conversations", "conversation_id")),
    ),
    SyncedTable(
        "parts", {"response_id": "ulid", "ordinal": "ordinal"}, tombstones=(("responses", "response_id"),),
        parent=("responses", "response_id"), carries={"attachment_id": "attachments"},
    ),
    # Templates sync where the database has them (migration m010_templates).
    SyncedTable("templates", {"id": "ulid"}, tombstones=(("templates", "id"),)),
    SyncedTable(
        "template_versions", {"id": "ulid"}, tombstones=(("templates", "template_id"),),
        observed=frozenset({"hlc"}),
    ),
)
BY_NAME = {t.name: t for t in TABLES}
# Names a ``del`` operation may carry, with the kind of key each takes.
TOMBSTONE_KINDS = {
    tbl: t.key[col] for t in TABLES for tbl, col in t.tombstones if tbl == t.name and col in t.key
}
TOMBSTONE_TABLES = frozenset(TOMBSTONE_KINDS)


def present(conn: sqlite3.Connection) -> list[SyncedTable]:
    """The registered tables this database has, in registry order."""
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return [t for t in TABLES if t.name in names]


def columns(conn: sqlite3.Connection, table: SyncedTable) -> list[str]:
    """The synced columns of ``table`` in this database, in schema order."""
    names = [r[1] for r in conn.execute(f"PRAGMA main.table_info({table.name})")]
    return [n for n in names if n not in table.local]


def check_key_value(kind: str, value: object) -> bool:
    """Whether ``value`` is a valid key part of this kind (never a path or SQL)."""
    if kind == "ulid":
        return isinstance(value, str) and ULID_RE.fullmatch(value) is not None
    if kind == "sha256":
        return isinstance(value, str) and SHA256_RE.fullmatch(value) is not None
    if kind == "ordinal":
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1_000_000
    raise AssertionError(kind)
