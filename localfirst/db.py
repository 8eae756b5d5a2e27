"""Opening a localfirst database: pragmas, checks and migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from . import migrations
from .errors import DatabaseError, NotADatabase, SchemaTooNew

__all__ = ["connect", "open_database", "check_schema", "translate"]

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


def translate(exc: sqlite3.Error, path: str) -> DatabaseError:
    """Turn an sqlite3 error on ``path`` into one of ours."""
    text = str(exc)
    if any(sign in text for sign in ("not a database", "malformed", "corrupt", "Could not decode")):
        return NotADatabase(f"{path} is not an SQLite database, or it is corrupt")
    if "unable to open" in text:
        parent = Path(path).parent
        if not parent.exists():
            return DatabaseError(f"cannot open {path}: directory {parent} does not exist")
        return DatabaseError(f"cannot open {path}: check that it and its directory are readable and writable")
    if "readonly" in text or "read-only" in text:
        return DatabaseError(f"cannot write to {path}: the file or its directory is read-only")
    return DatabaseError(f"{path}: {text}")


def _applied(conn: sqlite3.Connection) -> list[str] | None:
    """Applied migration names, or None when the file has no localfirst schema."""
    try:
        rows = conn.execute(
            "SELECT name FROM _sqlite_migrations WHERE migration_set = ?",
            [migrations.MIGRATION_SET],
        ).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
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


def open_database(path: str | Path, *, create: bool = True) -> sqlite3.Connection:
    """Open (and, when needed, create and migrate) the database at ``path``."""
    target = str(path)
    p = Path(target)
    if target != ":memory:":
        if not p.parent.exists():
            raise DatabaseError(f"cannot open {target}: directory {p.parent} does not exist")
        if not create and not p.exists():
            raise DatabaseError(f"no database at {target}")
    conn = connect(target)
    try:
        pending = check_schema(conn, target)
        if pending:
            migrate(conn, target)
        conn.execute("PRAGMA synchronous = NORMAL")
    except BaseException:
        conn.close()
        raise
    return conn


def migrate(conn: sqlite3.Connection, path: str) -> None:
    """Apply pending migrations under the write lock, safe against racing processes."""
    try:
        if path != ":memory:":
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
        raise translate(exc, path) from exc
