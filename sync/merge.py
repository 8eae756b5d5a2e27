"""Merging another localfirst database file into this one.

Every synced row has a globally unique key, so merging is "insert if absent"
for immutable rows, last writer wins by HLC for mutable fields (a
conversation's name), and tombstones win over rows: a key deleted in either
file is deleted in the result. The result is the same whichever file is
merged into which, and merging twice changes nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from localfirst import hlc
from localfirst.db import check_schema, connect, translate
from localfirst.errors import BadInput, DatabaseError, NotADatabase
from localfirst.store import Store

from .capture import guard

__all__ = ["merge_database", "MergeResult", "IMMUTABLE_TABLES"]

_DEAD_RESPONSES = "SELECT key FROM main.tombstones WHERE tbl = 'responses'"
_DEAD_CONVERSATIONS = "SELECT key FROM main.tombstones WHERE tbl = 'conversations'"
_DEAD_TEMPLATES = "SELECT key FROM main.tombstones WHERE tbl = 'templates'"

# Immutable tables in the order rows must land, each with the rows of the
# other file that may come in: nothing a tombstone names, nothing inside a
# deleted conversation or template, and only attachments a kept part uses.
IMMUTABLE_TABLES: tuple[tuple[str, str], ...] = (
    ("conversations", f"id NOT IN ({_DEAD_CONVERSATIONS})"),
    ("responses", f"id NOT IN ({_DEAD_RESPONSES}) AND conversation_id NOT IN ({_DEAD_CONVERSATIONS})"),
    ("parts", "response_id IN (SELECT id FROM main.responses)"),
    ("attachments", "id IN (SELECT attachment_id FROM main.parts WHERE attachment_id IS NOT NULL)"),
    ("templates", f"id NOT IN ({_DEAD_TEMPLATES})"),
    ("template_versions", f"template_id NOT IN ({_DEAD_TEMPLATES})"),
)
# Columns that are local to one file and never copied.
LOCAL_COLUMNS = {"rowid"}


@dataclass
class MergeResult:
    added: dict[str, int] = field(default_factory=dict)
    renamed: int = 0
    deleted: int = 0

    @property
    def total(self) -> int:
        return sum(self.added.values()) + self.renamed + self.deleted

    def summary(self, source: str) -> str:
        parts = [f"{n} {table}" for table, n in self.added.items()]
        return (
            f"Merged {source}: added {', '.join(parts)}; "
            f"{self.renamed} renames, {self.deleted} deletions applied"
        )


def _columns(conn: sqlite3.Connection, schema: str, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA {schema}.table_info({table})")]


def _check_other(path: Path) -> None:
    """Refuse a missing, foreign, corrupt or newer file before touching ours."""
    if not path.exists():
        raise BadInput(f"{path} does not exist")
    if path.is_dir():
        raise BadInput(f"{path} is a directory, not a database file")
    conn = connect(path, readonly=True)
    try:
        pending = check_schema(conn, str(path))
        try:
            verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.Error as exc:
            raise translate(exc, str(path)) from exc
        if verdict != "ok":
            detail = verdict.strip().splitlines()[-1]
            raise NotADatabase(f"{path} is corrupt ({detail}); nothing was merged")
    finally:
        conn.close()
    if "m001_initial" in pending:
        raise DatabaseError(f"{path} is empty: it holds no localfirst data")


def merge_database(store: Store | Callable[[], Store], other: str | Path) -> MergeResult:
    """Merge every row of the database at ``other`` into ``store``, in one transaction.

    ``store`` may be a function that opens it: the other file is checked
    first, so a refused merge does not even create our database.
    """
    path = Path(other).expanduser()
    _check_other(path)
    if not isinstance(store, Store):
        store = store()
    if store.path != ":memory:" and path.resolve() == Path(store.path).resolve():
        raise BadInput("cannot merge a database into itself")
    conn = store.conn
    uri = path.resolve().as_uri() + "?mode=ro"
    try:
        conn.execute("ATTACH DATABASE ? AS other", [uri])
    except sqlite3.Error as exc:
        raise translate(exc, str(path)) from exc
    result = MergeResult()
    try:
        with store.write(), guard(conn, "merge"):
            result.deleted = _merge_tombstones(conn)
            for table, keep in IMMUTABLE_TABLES:
                ours = _columns(conn, "main", table)
                theirs = set(_columns(conn, "other", table))
                cols = ", ".join(c for c in ours if c in theirs and c not in LOCAL_COLUMNS)
                if not cols:
                    continue  # the other file predates this table
                cur = conn.execute(
                    f"INSERT OR IGNORE INTO main.{table} ({cols}) SELECT {cols} FROM other.{table} WHERE {keep}"
                )
                result.added[table] = max(cur.rowcount, 0)
            result.renamed = _merge_names(conn)
            seen = conn.execute(
                "SELECT max(h) FROM (SELECT max(name_hlc) AS h FROM other.conversations "
                "UNION ALL SELECT max(hlc) FROM other.tombstones)"
            ).fetchone()[0]
            _observe(conn, seen, path)
            if _columns(conn, "other", "template_versions"):
                _observe(conn, conn.execute("SELECT max(hlc) FROM other.template_versions").fetchone()[0], path)
    finally:
        conn.execute("DETACH DATABASE other")
    return result


def _merge_tombstones(conn: sqlite3.Connection) -> int:
    """Take the other file's tombstones and delete here what any tombstone names.

    A deleted conversation takes every response in it along, also responses
    this file added to it that the deleting machine never saw.
    """
    conn.execute(
        "INSERT INTO main.tombstones (tbl, key, hlc) SELECT tbl, key, hlc FROM other.tombstones WHERE true "
        "ON CONFLICT (tbl, key) DO UPDATE SET hlc = max(hlc, excluded.hlc)"
    )
    doomed = (f"SELECT id FROM main.responses WHERE id IN ({_DEAD_RESPONSES}) "
              f"OR conversation_id IN ({_DEAD_CONVERSATIONS})")
    conn.execute(f"DELETE FROM main.parts WHERE response_id IN ({doomed})")
    deleted = conn.execute(f"DELETE FROM main.responses WHERE id IN ({doomed})").rowcount
    deleted += conn.execute(f"DELETE FROM main.conversations WHERE id IN ({_DEAD_CONVERSATIONS})").rowcount
    conn.execute(f"DELETE FROM main.template_versions WHERE template_id IN ({_DEAD_TEMPLATES})")
    deleted += conn.execute(f"DELETE FROM main.templates WHERE id IN ({_DEAD_TEMPLATES})").rowcount
    conn.execute("DELETE FROM main.attachments WHERE id NOT IN "
                 "(SELECT attachment_id FROM main.parts WHERE attachment_id IS NOT NULL)")
    return deleted


def _merge_names(conn: sqlite3.Connection) -> int:
    """Last writer wins per conversation name, by HLC (then by name, for a copied file)."""
    return conn.execute(
        "UPDATE main.conversations SET name = o.name, name_hlc = o.name_hlc "
        "FROM other.conversations AS o "
        "WHERE o.id = main.conversations.id AND (o.name_hlc > main.conversations.name_hlc "
        "OR (o.name_hlc = main.conversations.name_hlc "
        "AND coalesce(o.name, '') > coalesce(main.conversations.name, '')))"
    ).rowcount


def _observe(conn: sqlite3.Connection, seen: str | None, path: Path) -> None:
    """Move our clock past the other file's, unless its clock is far in the future."""
    if seen and not hlc.plausible(seen):
        raise DatabaseError(f"{path} holds edits stamped far in the future ({seen.split('.')[0]} ms): "
                            "the clock of the machine that wrote it is wrong; nothing was merged")
    hlc.observe(conn, seen)
