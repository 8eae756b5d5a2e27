"""The registry of synced tables, as sync sees it.

The registry itself is ``localfirst.registry`` (the store's local deletes
follow it too, and the store does not import sync); this module adds what
only sync needs: the live columns of a table and the key checks.
"""

from __future__ import annotations

import sqlite3

from localfirst.registry import BY_NAME, TABLES, TOMBSTONE_KINDS, SyncedTable, present

from .check import HLC_RE, check_key_value

__all__ = [
    "SyncedTable", "TABLES", "BY_NAME", "TOMBSTONE_TABLES", "TOMBSTONE_KINDS", "present", "columns",
    "check_key_value", "HLC_RE",
]

TOMBSTONE_TABLES = frozenset(TOMBSTONE_KINDS)


def columns(conn: sqlite3.Connection, table: SyncedTable, schema: str = "main") -> list[str]:
    """The registered columns of ``table`` that this database has, in registry order."""
    live = {r[1] for r in conn.execute(f"PRAGMA {schema}.table_info({table.name})")}
    return [c for c in table.columns if c in live]
