"""Which of the databases Datasette has open are localfirst's.

The plugin is loaded by any ``datasette`` run in an environment where
localfirst is installed, beside whatever databases that run opens. It acts
only on a localfirst database: one whose schema has ``responses``, its
full-text index ``responses_fts`` and ``conversations``, and whose
``_sqlite_migrations`` records migrations of localfirst's own set. llm's
``logs.db`` has the first three but keeps its migrations in
``_llm_migrations``; another sqlite-utils project's migrations carry another
set's name.

The answer is found once per database, on a read-only connection of its own,
and kept for as long as Datasette holds that database (a file that becomes a
localfirst database while Datasette runs is seen as one after a restart).
"""

from __future__ import annotations

import sqlite3
import weakref
from pathlib import Path
from typing import Any

from ..migrations import MIGRATION_SET

__all__ = ["is_localfirst_file", "localfirst_database", "localfirst_databases"]

_TABLES = ("responses", "responses_fts", "conversations", "_sqlite_migrations")

# Datasette's Database objects, weakly: a database removed from Datasette takes its answer with it.
_known: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def is_localfirst_file(path: str | Path, *, immutable: bool = False) -> bool:
    """True when the SQLite file at ``path`` holds a localfirst schema; it is only read.

    Anything that cannot be read as SQLite (a missing or foreign file, a
    corrupt one) is not a localfirst database.
    """
    uri = Path(path).resolve().as_uri() + ("?immutable=1" if immutable else "?mode=ro")
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error:
        return False
    try:
        found = conn.execute(
            f"SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ({', '.join('?' * len(_TABLES))})",
            _TABLES,
        ).fetchone()[0]
        if found != len(_TABLES):
            return False
        return conn.execute("SELECT 1 FROM _sqlite_migrations WHERE migration_set = ? LIMIT 1",
                            [MIGRATION_SET]).fetchone() is not None
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def _is_localfirst(db: Any) -> bool:
    try:
        return _known[db]
    except KeyError:
        pass
    path = getattr(db, "path", None)
    found = (not db.is_memory and path is not None
             and is_localfirst_file(path, immutable=not db.is_mutable))
    _known[db] = found
    return found


def localfirst_database(datasette: Any, name: str | None) -> Any | None:
    """Datasette's database called ``name`` when it is a localfirst database, else None."""
    db = datasette.databases.get(name) if name is not None else None
    return db if db is not None and _is_localfirst(db) else None


def localfirst_databases(datasette: Any) -> list[Any]:
    """The localfirst databases among those Datasette has open, in its order."""
    return [db for db in list(datasette.databases.values()) if _is_localfirst(db)]
