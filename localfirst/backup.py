"""``localfirst backup PATH``: a consistent copy of the live database, without this machine's identity.

The copy is made with ``VACUUM INTO``: one read transaction, so it is
consistent while other processes write (WAL lets them go on), and compact.
It then loses what makes it this machine: its host id (a store restored from
it makes a new one on first use, so pushing from it is not a fork of this
machine) and the changeset built but not yet pushed under this id. Queued
keys stay queued: a restored copy pushes what this machine had not yet sent.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from .db import connect, translate
from .errors import BadInput, DatabaseError
from .store import Store

__all__ = ["backup", "BackupResult"]


@dataclass
class BackupResult:
    path: str
    size_bytes: int
    responses: int


def backup(store: Store, target: str | Path) -> BackupResult:
    """Write a copy of ``store`` to ``target`` (a new file); all of it or nothing."""
    path = Path(target).expanduser()
    if path.exists():
        raise BadInput(f"{path} exists; a backup is written to a new file")
    if not path.parent.is_dir():
        raise BadInput(f"cannot write {path}: directory {path.parent} does not exist")
    if store.path != ":memory:" and path.resolve() == Path(store.path).resolve():
        raise BadInput("cannot back a database up onto itself")
    partial = path.with_name(f".{path.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        try:
            store.conn.execute("VACUUM INTO ?", [str(partial)])
        except sqlite3.Error as exc:
            raise translate(exc, str(partial)) from exc
        copy = connect(partial)
        try:
            copy.execute("BEGIN IMMEDIATE")
            copy.execute("DELETE FROM meta WHERE key = 'host_id'")
            copy.execute("DELETE FROM sync_pending")
            copy.execute("COMMIT")
            responses = copy.execute("SELECT count(*) FROM responses").fetchone()[0]
        except sqlite3.Error as exc:
            raise translate(exc, str(partial)) from exc
        finally:
            copy.close()
        os.replace(partial, path)
    except OSError as exc:
        raise DatabaseError(f"cannot write {path}: {exc.strerror}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return BackupResult(str(path), path.stat().st_size, responses)
