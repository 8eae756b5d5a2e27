"""Opening a localfirst database: pragmas, checks and migrations."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from . import migrations
from .errors import DatabaseError, NotADatabase, SchemaTooNew

TYPE_CHECKING = False  # typing is not imported at run time: it costs start-up (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["connect", "open_database", "check_schema", "translate", "insert_rows"]

BUSY_TIMEOUT_MS = 60_000


def connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A raw connection in autocommit mode with the pragmas every caller needs.

    Writes take their own ``BEGIN IMMEDIATE`` so that concurrent writers wait
    on the busy timeout instead of failing with "database is locked".
    """
    target = str(path)
    try:
        if readonly:
            uri = Path(target).resolve().as_uri() + "?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        else:
            conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    except sqlite3.Error as exc:
        raise translate(exc, target) from exc
    return conn


def _primary_code(exc: sqlite3.Error) -> int | None:
    """SQLite's primary result code (the low byte of the extended one); None for errors of Python's own."""
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def translate(exc: sqlite3.Error, path: str) -> DatabaseError:
    """Turn an sqlite3 error on ``path`` into one of ours, by its SQLite result code."""
    code = _primary_code(exc)
    if code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
        return NotADatabase(f"{path} is not an SQLite database, or it is corrupt")
    if code == sqlite3.SQLITE_CANTOPEN:
        parent = Path(path).parent
        if not parent.exists():
            return DatabaseError(f"cannot open {path}: directory {parent} does not exist")
        return DatabaseError(f"cannot open {path}: check that it and its directory are readable and writable")
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return DatabaseError(f"{path} is locked by another process; try again when it has finished")
    if code == sqlite3.SQLITE_READONLY:
        return DatabaseError(f"cannot write to {path}: the file or its directory is read-only")
    return DatabaseError(f"{path}: {exc}")


def _applied(conn: sqlite3.Connection) -> list[str] | None:
    """Applied migration names, or None when the file has no localfirst schema."""
    known = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlite_migrations'"
    ).fetchone()
    if known is None:
        return None
    rows = conn.execute(
        "SELECT name FROM _sqlite_migrations WHERE migration_set = ?",
        [migrations.MIGRATION_SET],
    ).fetchall()
    return [r[0] for r in rows]


def check_schema(conn: sqlite3.Connection, path: str) -> list[str]:
    """Return the names of pending migrations; refuse foreign or newer files."""
    try:
        applied = _applied(conn)
        if applied is None:
            tables = conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
            ).fetchone()[0]
            if tables:
                raise NotADatabase(f"{path} is an SQLite database but not a localfirst one")
            return migrations.names()
    except sqlite3.Error as exc:
        raise translate(exc, path) from exc
    known = migrations.names()
    unknown = [n for n in applied if n not in known]
    if unknown:
        raise SchemaTooNew(
            f"{path} was written by a newer version of localfirst "
            f"(unknown migration {unknown[-1]}); upgrade localfirst to open it"
        )
    return [n for n in known if n not in applied]


def open_database(path: str | Path, *, create: bool = True, for_reading: bool = False) -> sqlite3.Connection:
    """Open (creating when allowed) the database file at ``path``; ``Store`` checks and migrates it.

    ``for_reading``: the caller only reads, so a file this process cannot
    write is opened read-only instead of failing.
    """
    target = str(path)
    p = Path(target)
    exists = False
    if target != ":memory:":
        try:
            if not p.parent.exists():
                raise DatabaseError(f"cannot open {target}: directory {p.parent} does not exist")
            exists = p.exists()
        except OSError as exc:  # a folder on the way that this process may not search
            raise DatabaseError(f"cannot open {target}: {exc.strerror or exc}") from exc
        if not create and not exists:
            raise DatabaseError(f"no database at {target}")
    conn = _open_for_reading(p) if for_reading and exists else connect(target)
    try:
        conn.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.Error as exc:
        conn.close()
        raise translate(exc, target) from exc
    return conn


def _open_for_reading(p: Path) -> sqlite3.Connection:
    """A connection that can read ``p`` whether or not this process may write it or its directory.

    Reading a WAL database normally needs its -shm file, which SQLite creates
    next to it; in a directory we cannot write, a file whose -wal is gone
    (every committed page is in the main file) is opened as immutable.
    """
    target = str(p)
    conn = connect(target)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        conn.close()
        code = _primary_code(exc)
        if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN) and _wal_pending(p):
            raise DatabaseError(
                f"cannot read {target}: its -wal file holds changes that can only be read with write access "
                "to its directory (or after a process that has it opens the database once)"
            ) from exc
        if code != sqlite3.SQLITE_READONLY:
            raise translate(exc, target) from exc
        try:
            conn = sqlite3.connect(p.resolve().as_uri() + "?immutable=1", uri=True, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as again:
            raise translate(again, target) from again
    return conn


def _wal_pending(p: Path) -> bool:
    """Whether ``p`` has a non-empty -wal file, whose pages an immutable reader would miss."""
    try:
        return os.path.getsize(str(p) + "-wal") > 0
    except OSError:
        return False


def migrate(conn: sqlite3.Connection, path: str) -> None:
    """Apply pending migrations under the write lock, safe against racing processes."""
    try:
        if path != ":memory:":
            if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
                # A new file: pages that deletes free (pushed outbox rows)
                # can be handed back (sync.capture.reclaim). Only possible
                # before the first table exists.
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            if check_schema(conn, path):
                migrations.apply(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        if _primary_code(exc) == sqlite3.SQLITE_READONLY and _has_schema(conn):
            raise DatabaseError(
                f"{path} was written by an older version of localfirst and must be upgraded to be "
                "used, but the file or its directory is read-only"
            ) from exc
        raise translate(exc, path) from exc


def _has_schema(conn: sqlite3.Connection) -> bool:
    try:
        return _applied(conn) is not None
    except sqlite3.Error:
        return False


def insert_rows(
    conn: sqlite3.Connection, head: str, rows: Sequence[Sequence[Any]], *, width: int, tail: str = "",
    numbered: str = "",
) -> int:
    """Run ``head SELECT ... tail`` once for all ``rows``; returns the rows it changed.

    ``head`` is an ``INSERT ... INTO table (columns)`` naming ``width``
    columns, and one more, ``rowid``, when ``numbered`` names the table whose
    full-text locator each row gets, numbered past the largest one there (the
    ``responses_rowid`` trigger would otherwise rewrite each row to number
    it); ``tail`` is an optional ``ON CONFLICT`` clause. The rows go through
    a staging table so that one statement writes them all: FTS5 flushes its
    pending index after every statement, so an ``executemany`` of one-row
    INSERTs into a table with a full-text trigger costs about three times as
    much as the same rows in one statement.
    """
    if not rows:
        return 0
    after = f"(SELECT coalesce(max(rowid), 0) FROM main.{numbered})" if numbered else ""
    if len(rows) == 1:
        marks = ", ".join("?" * width)
        if numbered:
            return conn.execute(f"{head} SELECT {marks}, {after} + 1 WHERE true {tail}", rows[0]).rowcount
        return conn.execute(f"{head} VALUES ({marks}) {tail}", rows[0]).rowcount
    cols = ", ".join(f"c{i}" for i in range(width))
    stage = f"_stage_{width}"
    conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} ({cols})")
    conn.executemany(f"INSERT INTO temp.{stage} VALUES ({', '.join('?' * width)})", rows)
    # The staging table is empty before each use, so its rowids number these
    # rows 1, 2, ... in order (a window function over them would first copy
    # every row into a buffer of its own).
    more = f", {after} + rowid" if numbered else ""
    try:
        # "WHERE true" keeps an ON CONFLICT tail from parsing as a join.
        return conn.execute(f"{head} SELECT {cols}{more} FROM temp.{stage} WHERE true ORDER BY rowid {tail}").rowcount
    finally:
        conn.execute(f"DELETE FROM temp.{stage}")
