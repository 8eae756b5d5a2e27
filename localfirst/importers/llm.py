"""``localfirst import llm``: bring llm's logs into the store, incrementally.

llm's database is opened read-only. Its response and turn ids (ULIDs,
lower-cased) become ours, so importing again compares ids and imports only
what is new: no local bookkeeping, and a response deleted here (it has a
tombstone) is not brought back. Everything new is written in one transaction
with ``executemany``; plain INSERTs, so the change-capture triggers see them
like any other write.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..db import insert_rows, translate
from ..store import PART_COLUMNS, RESPONSE_COLUMNS, Store, conversation_name
from ..textutil import plural
from .llm_legacy import legacy_ids, read_legacy
from .llm_messages import read_messages, turn_ids
from .llm_rows import Attachments, Thread, Turn
from .llm_source import LlmSource, default_llm_dir, default_llm_path, open_llm

if TYPE_CHECKING:
    from ..template_files import ImportResult

__all__ = ["ImportReport", "import_llm", "import_llm_templates"]

Progress = Callable[[int, int], None]
_BATCH = 1000
_INSERT_RESPONSES = f"INSERT OR IGNORE INTO responses ({', '.join(RESPONSE_COLUMNS)})"
_INSERT_PART = (
    f"INSERT OR IGNORE INTO parts ({', '.join(PART_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(PART_COLUMNS))})"
)


@dataclass
class ImportReport:
    """What an import found, wrote and left, and why."""

    source: str
    generations: list[str] = field(default_factory=list)
    found: int = 0
    imported: int = 0
    conversations: int = 0
    attachments: int = 0
    already: int = 0
    deleted: int = 0
    problems: list[str] = field(default_factory=list)
    skipped_tables: list[tuple[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source, "generations": self.generations, "found": self.found,
            "imported": self.imported, "conversations": self.conversations,
            "attachments": self.attachments, "already_imported": self.already,
            "deleted_here": self.deleted, "problems": self.problems,
            "skipped_tables": [{"table": t, "reason": r} for t, r in self.skipped_tables],
        }

    def summary(self) -> str:
        schemas = " and ".join(self.generations) or "no tables we know"
        lines = [
            f"Read {self.source} ({schemas}): {plural(self.found, 'response')}.",
            f"Imported {plural(self.imported, 'response')} in {plural(self.conversations, 'new conversation')}, "
            f"{plural(self.attachments, 'new attachment')}.",
        ]
        if self.already:
            lines.append(f"Skipped {self.already} already imported.")
        if self.deleted:
            lines.append(f"Skipped {self.deleted} deleted in localfirst.")
        for table, reason in self.skipped_tables:
            lines.append(f"Skipped table {table}: {reason}.")
        for problem in self.problems:
            lines.append(f"Skipped {problem}.")
        return "\n".join(lines)


def import_llm(store: Store, path: str | Path | None = None, *, progress: Progress | None = None) -> ImportReport:
    """Import what is new in llm's database at ``path`` (default: llm's own).

    ``progress(done, total)`` is called as responses are written.
    """
    source = open_llm(path if path is not None else default_llm_path())
    have = {r[0] for r in store.conn.execute("SELECT id FROM responses")}
    gone = {r[0] for r in store.conn.execute("SELECT key FROM tombstones WHERE tbl = 'responses'")}
    try:
        report, threads, turns, atts = _read(source, have, gone)
    except sqlite3.Error as exc:
        # Reading llm's file failed part way: it is damaged, or llm is rewriting it.
        raise translate(exc, source.path) from exc
    finally:
        source.close()
    if turns:
        _write(store, threads, turns, atts, report, progress)
    return report


def _read(source: LlmSource, have: set[str], gone: set[str]
          ) -> tuple[ImportReport, dict[str, Thread], list[Turn], Attachments]:
    """Find the new ids, then read only their rows, as rows of ours."""
    report = ImportReport(source.path, skipped_tables=list(source.skipped))
    new_turns: list[str] = []
    new_legacy: list[str] = []
    seen: set[str] = set()
    for generation, label, ids_of, bucket in (
        (source.messages, "threads/turns", turn_ids, new_turns),
        (source.legacy, "conversations/responses", legacy_ids, new_legacy),
    ):
        if not generation:
            continue
        report.generations.append(label)
        for llm_id in ids_of(source):
            key = str(llm_id).lower()
            if key in seen:
                # llm itself shows the turn when an id is in both generations.
                continue
            seen.add(key)
            if key in have:
                report.already += 1
            elif key in gone:
                report.deleted += 1
            else:
                bucket.append(llm_id)
    report.found = len(seen)
    atts = Attachments()
    threads: dict[str, Thread] = {}
    turns: list[Turn] = []
    for wanted, reader in ((new_turns, read_messages), (new_legacy, read_legacy)):
        if wanted:
            _want(source.conn, wanted)
            found_threads, found_turns = reader(source, atts, report.problems)
            for cid, thread in found_threads.items():
                known = threads.get(cid)
                if known is None or thread.created_utc < known.created_utc:
                    threads[cid] = thread
            turns += found_turns
    return report, threads, turns, atts


def _want(conn: Any, llm_ids: list[str]) -> None:
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS _lf_want (id TEXT PRIMARY KEY)")
    conn.execute("DELETE FROM temp._lf_want")
    conn.executemany("INSERT OR IGNORE INTO temp._lf_want (id) VALUES (?)", [(i,) for i in llm_ids])


def _write(store: Store, threads: dict[str, Thread], turns: list[Turn], atts: Attachments,
           report: ImportReport, progress: Progress | None) -> None:
    turns.sort(key=lambda t: (t.values["datetime_utc"], t.values["id"]))
    first_prompt: dict[str, str | None] = {}
    for t in turns:
        first_prompt.setdefault(t.values["conversation_id"], t.values["prompt"])
    total = len(turns)
    with store.write() as conn:
        report.conversations = conn.executemany(
            "INSERT OR IGNORE INTO conversations (id, name, model, created_utc) VALUES (?, ?, ?, ?)",
            [(t.id, t.name or conversation_name(first_prompt.get(t.id)), t.model, t.created_utc)
             for t in threads.values()],
        ).rowcount
        report.attachments = conn.executemany(
            "INSERT OR IGNORE INTO attachments (id, mime_type, size, content, path, url) VALUES (?, ?, ?, ?, ?, ?)",
            list(atts.rows.values()),
        ).rowcount
        for start in range(0, total, _BATCH):
            batch = turns[start:start + _BATCH]
            report.imported += insert_rows(conn, _INSERT_RESPONSES, [
                tuple(t.values[c] for c in RESPONSE_COLUMNS) for t in batch], width=len(RESPONSE_COLUMNS))
            conn.executemany(_INSERT_PART, [
                (t.values["id"], ordinal, *part) for t in batch for ordinal, part in enumerate(t.parts)])
            if progress is not None:
                progress(min(start + _BATCH, total), total)


def import_llm_templates(store: Store, directory: str | Path | None = None) -> ImportResult:
    """``import llm --templates``: llm's template folder (default: llm's own) into the library."""
    from ..template_files import import_templates  # PyYAML only on this path

    folder = Path(directory) if directory is not None else default_llm_dir() / "templates"
    return import_templates(store, folder)
