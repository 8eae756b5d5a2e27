"""Merging another localfirst database file into this one.

The other file is untrusted input like a changeset: its rows are read as
operations, checked value by value against the registry, and applied by the
one merge engine (:mod:`sync.apply`) under the capture guard, all in one
transaction. So merging follows the same rules as a pull: insert if absent,
last writer wins by HLC for mutable fields, tombstones win over rows, the
same key with other content converges to the smaller canonical hash. The
result is the same whichever file is merged into which, and merging twice
changes nothing.

Rows the merge brings are queued for every remote, so they reach the other
machines on the next sync (sending a remote a row it already has is harmless).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from localfirst import migrations
from localfirst.db import check_schema, connect, translate
from localfirst.errors import BadInput, CorruptObject, DatabaseError, NotADatabase, NotFound
from localfirst.registry import TABLES, SyncedTable, present
from localfirst.store import Store
from localfirst.textutil import plural

from .apply import Applier
from .capture import guard
from .check import Bad, Checked, Schema, check_del, check_rows, defaults
from .team import check_scope

__all__ = ["merge_database", "MergeResult"]

BATCH = 5000


@dataclass
class MergeResult:
    added: dict[str, int] = field(default_factory=dict)
    renamed: int = 0
    deleted: int = 0
    conflicts: int = 0

    @property
    def total(self) -> int:
        return sum(self.added.values()) + self.renamed + self.deleted

    def summary(self, source: str) -> str:
        parts = [plural(n, table.removesuffix("s").replace("_", " "), table.replace("_", " "))
                 for table, n in self.added.items()]
        text = (
            f"Merged {source}: added {', '.join(parts)}; "
            f"{plural(self.renamed, 'rename')}, {plural(self.deleted, 'deletion')} applied"
        )
        if self.conflicts:
            text += (f"; {plural(self.conflicts, 'key')} held other content here (each machine keeps the same one; "
                     "see `localfirst remote status`)")
        return text


def _check_other(path: Path) -> None:
    """Refuse a missing, foreign, corrupt or newer file before touching ours."""
    if not path.exists():
        raise NotFound(f"{path} does not exist")
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
        # A view or a virtual table under a synced table's name would run
        # whatever its author wrote (a recursive query that never ends).
        kinds = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type IN ('table', 'view')"))
        for name in [*(t.name for t in TABLES), "tombstones"]:
            sql = kinds.get(name)
            if sql is not None and not sql.lstrip().upper().startswith("CREATE TABLE"):
                raise NotADatabase(f"{path}: {name} is not a plain table there; nothing was merged")
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
    try:
        with store.write():
            schema = Schema(conn, len(migrations.names()))
            with guard(conn, "merge"):
                applier = Applier(conn, schema, source=f"merge {path.name}", queue=True)
                batches = _batches(conn, schema)
                try:
                    for batch in batches:
                        check_scope(conn, batch, None, where=path.name)
                        applier.apply(batch)
                except Bad as exc:
                    raise DatabaseError(f"{path}: {exc}; nothing was merged") from None
                except CorruptObject as exc:
                    raise DatabaseError(f"{exc}; nothing was merged") from None
                except sqlite3.Error as exc:
                    raise translate(exc, str(path)) from exc
                finally:
                    batches.close()  # its open cursor on the other file would keep it attached
                applier.finish()
    finally:
        try:
            conn.execute("DETACH DATABASE other")
        except sqlite3.Error:
            pass  # still in use by a statement being torn down: it goes with the connection
    return MergeResult(
        {t.name: applier.added.get(t.name, 0) for t in present(conn) if t.name in schema.tables},
        applier.changed, applier.deleted, len(applier.conflicts),
    )


def _batches(conn: sqlite3.Connection, schema: Schema) -> Generator[Checked, None, None]:
    """The other file's tombstones, then its rows table by table, as checked batches.

    What this file already holds as it is (the same row, an equal or newer
    tombstone) is left out by SQL: merging a file again reads almost nothing.
    """
    # A file merges in a person's own history: a team's templates (and their deletions) come
    # from that team's library only, signed, never from a file.
    teams = "team" in {r[1] for r in conn.execute("PRAGMA other.table_info(tombstones)")}
    cur = conn.execute(
        "SELECT tbl, key, hlc FROM other.tombstones o WHERE NOT EXISTS (SELECT 1 FROM main.tombstones m "
        "WHERE m.tbl = o.tbl AND m.key = o.key AND m.hlc >= o.hlc)" + (" AND o.team IS NULL" if teams else "")
    )
    try:
        yield from _tombstone_batches(cur, schema)
    finally:
        cur.close()
    theirs = {t.name for t in present(conn, "other")}
    for table in present(conn):
        if table.name not in theirs or table.name not in schema.tables:
            continue  # the other file predates this table
        yield from _table_batches(conn, schema, table)


def _tombstone_batches(cur: sqlite3.Cursor, schema: Schema) -> Iterator[Checked]:
    while rows := cur.fetchmany(BATCH):
        batch = Checked(schema)
        for tbl, key, stamp in rows:
            try:
                batch.dels.append(check_del(tbl, key, stamp))
            except Bad as exc:
                raise Bad(f"tombstones: {exc}") from None
        yield batch


def _table_batches(conn: sqlite3.Connection, schema: Schema, table: SyncedTable) -> Iterator[Checked]:
    order = schema.columns[table.name]
    live = {r[1] for r in conn.execute(f"PRAGMA other.table_info({table.name})")}
    picked = [c for c in order if c in live]
    missing = [k for k in table.key if k not in live]
    if missing:
        raise Bad(f"{table.name} has no column {missing[0]!r} there")
    join = " AND ".join(f"m.{c} = o.{c}" if c in table.key else f"m.{c} IS o.{c}" for c in picked)
    personal = ""
    if "team" in {r[1] for r in conn.execute("PRAGMA other.table_info(templates)")}:
        if table.name == "templates":
            personal = " AND o.team IS NULL"
        elif "template_id" in table.columns:
            personal = " AND o.template_id NOT IN (SELECT id FROM other.templates WHERE team IS NOT NULL)"
    cur = conn.execute(
        f"SELECT {', '.join('o.' + c for c in picked)} FROM other.{table.name} o "
        f"WHERE NOT EXISTS (SELECT 1 FROM main.{table.name} m WHERE {join}){personal}"
    )
    try:
        yield from _row_batches(cur, schema, table, picked, order)
    finally:
        cur.close()


def _row_batches(cur: sqlite3.Cursor, schema: Schema, table: SyncedTable, picked: list[str],
                 order: tuple[str, ...]) -> Iterator[Checked]:
    live = set(picked)
    fill = defaults(table, order)
    where = [picked.index(c) if c in live else -1 for c in order]
    while rows := cur.fetchmany(BATCH):
        if len(picked) != len(order):
            rows = [tuple(r[i] if i >= 0 else d for i, d in zip(where, fill, strict=True)) for r in rows]
        try:
            check_rows(schema, table, rows)
        except Bad as exc:
            key = ", ".join(str(rows[exc.index][order.index(k)]) for k in table.key)
            raise Bad(f"{table.name} row {key[:80]}: {exc}") from None
        yield Checked(schema, rows={table.name: rows})
