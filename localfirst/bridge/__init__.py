"""The two-way bridge with llm's own ``logs.db``.

While a store is linked to llm's database (``link``), each bridge run
imports what llm logged since the last one (the incremental ``import llm``),
writes into llm's database what it lacks (other machines' responses, in
llm's current schema and with the same ids), and removes from it what was
deleted in localfirst. ``around_sync`` runs the import before a sync and
the rest after it, so one ``localfirst sync`` carries llm's history both
ways. The link lives in the store's local ``meta`` table, which never syncs:
each machine links its own llm.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..errors import NotFound
from ..store import Store

__all__ = ["BridgeReport", "around_sync", "link", "linked_path", "run", "unlink", "remove_deleted_now"]

META_KEY = "llm_link"

T = TypeVar("T")


@dataclass
class BridgeReport:
    """What one bridge run moved between the store and llm's database."""

    path: str
    imported: int = 0
    written: int = 0
    removed: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "imported": self.imported, "written": self.written, "removed": self.removed}

    def summary(self) -> str:
        return (f"llm {self.path}: imported {_n(self.imported)} from llm, wrote {_n(self.written)} into it, "
                f"removed {_n(self.removed)} deleted in localfirst.")


def _n(count: int) -> str:
    return f"{count} response" + ("" if count == 1 else "s")


def linked_path(store: Store) -> Path | None:
    """The llm database this store is linked to, or None."""
    row = store.conn.execute("SELECT value FROM meta WHERE key = ?", [META_KEY]).fetchone()
    return Path(row[0]) if row else None


def link(store: Store, path: str | Path | None = None) -> Path:
    """Link the store to llm's database at ``path`` (default: llm's own), after checking it can be written."""
    from ..importers.llm_source import default_llm_path
    from .target import open_target

    target_path = Path(path).expanduser() if path is not None else default_llm_path()
    target_path = target_path.absolute()
    target = open_target(target_path, own_db=store.path)
    try:
        with target.write():
            pass  # the lock can be taken within the busy timeout
    finally:
        target.close()
    with store.write() as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = "
                     "excluded.value", [META_KEY, str(target_path)])
    return target_path


def unlink(store: Store) -> Path:
    """Forget the link; nothing is removed from either database."""
    was = linked_path(store)
    if was is None:
        raise NotFound("no llm database is linked; `localfirst llm link` links one")
    with store.write() as conn:
        conn.execute("DELETE FROM meta WHERE key = ?", [META_KEY])
    return was


def run(store: Store, *, inbound: bool = True, outbound: bool = True, write: bool = True) -> BridgeReport:
    """One bridge run with the linked database: import from llm, then remove deletes and write into it.

    ``inbound``: import; ``outbound``: remove what was deleted in localfirst,
    and (``write``) write what llm's database lacks.
    """
    from .target import open_target

    path = linked_path(store)
    if path is None:
        raise NotFound("no llm database is linked; `localfirst llm link` links one")
    report = BridgeReport(str(path))
    # Checked before anything moves, so a file llm has upgraded past what
    # we know stops the run instead of being half bridged.
    target = open_target(path, own_db=store.path)
    try:
        if inbound:
            from ..importers import import_llm

            report.imported = import_llm(store, path, busy_timeout_ms=target.timeout_ms).imported
        if outbound:
            from .deletes import remove_deleted
            from .outbound import write_missing

            report.removed = remove_deleted(store, target)
            if write:
                report.written = write_missing(store, target)
    finally:
        target.close()
    return report


def around_sync(store: Store, sync: Callable[[], T]) -> tuple[T, BridgeReport | None]:
    """``sync()``, with the linked llm database imported before and written after; without a link, just sync."""
    if linked_path(store) is None:
        return sync(), None
    report = run(store, outbound=False)
    result = sync()
    after = run(store, inbound=False)
    report.written, report.removed = after.written, after.removed
    return result, report


def remove_deleted_now(store: Store) -> int | None:
    """After a local delete: remove it from the linked llm database too (None when nothing is linked)."""
    if linked_path(store) is None:
        return None
    return run(store, inbound=False, write=False).removed
