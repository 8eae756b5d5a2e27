"""``localfirst import llm``: bring llm's logs into the store, incrementally.

llm's database is opened read-only. Its response and turn ids (ULIDs,
lower-cased) become ours, so importing again compares ids and imports only
what is new: no local bookkeeping, and a response deleted here (it has a
tombstone) is not brought back. What is new is written in batches, each in
one transaction; plain INSERTs, so the change-capture triggers see them
like any other write.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..db import insert_rows, translate
from ..errors import Interrupted
from ..store import PART_COLUMNS, RESPONSE_COLUMNS, Store, conversation_name
from ..textutil import plural
from .llm_legacy import legacy_ids, read_legacy
from .llm_messages import MessageTree, message_tree, read_messages, turn_ids
from .llm_rows import Attachments, Thread, Turn
from .llm_source import LlmSource, default_llm_dir, default_llm_path, open_llm

if TYPE_CHECKING:
    from ..template_files import ImportResult

__all__ = ["ImportReport", "import_llm", "import_llm_templates"]

Progress = Callable[[int, int], None]
# A batch as read from llm's file: its conversations, turns and attachments.
_Batch = tuple[dict[str, Thread], list[Turn], Attachments]
# Responses read and written per transaction.
_BATCH = 5000
_INSERT_RESPONSES = f"INSERT OR IGNORE INTO responses ({', '.join(RESPONSE_COLUMNS)}, rowid)"
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


def import_llm(store: Store, path: str | Path | None = None, *, progress: Progress | None = None,
               batch: int = _BATCH, busy_timeout_ms: int | None = None) -> ImportReport:
    """Import what is new in llm's database at ``path`` (default: llm's own).

    The new responses are read and written ``batch`` at a time, each batch in
    one transaction (the next one read while one is written), so memory
    stays flat whatever the size of llm's file and an interrupted import
    keeps the batches it wrote: the next run imports only the rest.
    ``progress(done, total)`` is called after each batch; ``busy_timeout_ms``
    bounds the wait while llm holds its write lock.
    """
    source = open_llm(path if path is not None else default_llm_path(), busy_timeout_ms=busy_timeout_ms)
    # The per-batch id lists (temp tables on both sides) stay in memory: a
    # batch's worth, and never a temporary file per batch.
    source.conn.execute("PRAGMA temp_store = MEMORY")
    store.conn.execute("PRAGMA temp_store = MEMORY")
    report = ImportReport(source.path, skipped_tables=list(source.skipped))
    done = 0
    try:
        _plan(store, source, report)
        total = store.conn.execute("SELECT count(*) FROM temp._lf_new").fetchone()[0]
        tree: MessageTree | None = None

        def read(generation: int, llm_ids: list[str]) -> _Batch:
            nonlocal tree
            _want(source.conn, llm_ids)
            atts = Attachments()
            if generation == 0:
                tree = tree or message_tree(source)
                threads, turns = read_messages(source, atts, report.problems, tree=tree)
            else:
                threads, turns = read_legacy(source, atts, report.problems)
            return threads, turns, atts

        # Batch n+1 is read from llm's file (a connection of its own) in a
        # thread while batch n is written: SQLite lets go of Python's lock
        # while it works on either.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="localfirst-import") as reader:
            held: tuple[Future[_Batch], int] | None = None  # read (or being read), not yet written
            for generation in (0, 1):
                after = ""
                while chunk := store.conn.execute(
                    "SELECT key, llm_id FROM temp._lf_new WHERE gen = ? AND key > ? ORDER BY key LIMIT ?",
                    [generation, after, batch],
                ).fetchall():
                    after = chunk[-1][0]
                    following = (reader.submit(read, generation, [llm_id for _, llm_id in chunk]), len(chunk))
                    if held is not None:
                        done = _write_read(store, held, report, done, total, progress)
                    held = following
            if held is not None:
                _write_read(store, held, report, done, total, progress)
    except sqlite3.Error as exc:
        # Reading llm's file failed part way: it is damaged, or llm is rewriting it.
        raise translate(exc, source.path) from exc
    except KeyboardInterrupt:
        raise Interrupted(
            f"import interrupted: {report.imported} responses were imported in whole batches, nothing "
            "half-written; run it again to import the rest"
        ) from None
    finally:
        source.close()
        store.conn.execute("DROP TABLE IF EXISTS temp._lf_new")
    return report


def _write_read(store: Store, held: tuple[Future[_Batch], int], report: ImportReport, done: int, total: int,
                progress: Progress | None) -> int:
    """Write one batch once it is read (its reading's error is raised here); the responses done."""
    threads, turns, atts = held[0].result()
    if turns:
        _write(store, threads, turns, atts, report)
    done += held[1]
    if progress is not None:
        progress(done, total)
    return done


def _plan(store: Store, source: LlmSource, report: ImportReport) -> None:
    """List the ids to import in ``temp._lf_new`` of the store's connection, and count the others.

    The comparison with what is here runs in SQLite, so that a million ids
    are never held in Python at once. An id in both of llm's generations is
    read from the newer one, as llm itself shows it.
    """
    conn = store.conn
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS _lf_new (key TEXT PRIMARY KEY, llm_id, gen INTEGER NOT NULL) "
                 "WITHOUT ROWID")
    conn.execute("DELETE FROM temp._lf_new")
    for gen, (generation, label, ids_of) in enumerate((
        (source.messages, "threads/turns", turn_ids),
        (source.legacy, "conversations/responses", legacy_ids),
    )):
        if not generation:
            continue
        report.generations.append(label)
        conn.executemany("INSERT OR IGNORE INTO temp._lf_new (key, llm_id, gen) VALUES (lower(CAST(? AS TEXT)), ?, ?)",
                         ((llm_id, llm_id, gen) for llm_id in ids_of(source)))
    report.found = conn.execute("SELECT count(*) FROM temp._lf_new").fetchone()[0]
    report.already = conn.execute("DELETE FROM temp._lf_new WHERE key IN (SELECT id FROM responses)").rowcount
    report.deleted = conn.execute(
        "DELETE FROM temp._lf_new WHERE key IN (SELECT key FROM tombstones WHERE tbl = 'responses')").rowcount


def _want(conn: Any, llm_ids: list[str]) -> None:
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS _lf_want (id TEXT PRIMARY KEY)")
    conn.execute("DELETE FROM temp._lf_want")
    conn.executemany("INSERT OR IGNORE INTO temp._lf_want (id) VALUES (?)", [(i,) for i in llm_ids])


def _write(store: Store, threads: dict[str, Thread], turns: list[Turn], atts: Attachments,
           report: ImportReport) -> None:
    """One batch in one transaction; counted in ``report`` once it is committed."""
    turns.sort(key=lambda t: (t.values["datetime_utc"], t.values["id"]))
    first_prompt: dict[str, str | None] = {}
    for t in turns:
        first_prompt.setdefault(t.values["conversation_id"], t.values["prompt"])
    with store.write() as conn:
        conversations = conn.executemany(
            "INSERT OR IGNORE INTO conversations (id, name, model, created_utc) VALUES (?, ?, ?, ?)",
            [(t.id, t.name or conversation_name(first_prompt.get(t.id)), t.model, t.created_utc)
             for t in threads.values()],
        ).rowcount
        attachments = conn.executemany(
            "INSERT OR IGNORE INTO attachments (id, mime_type, size, content, path, url) VALUES (?, ?, ?, ?, ?, ?)",
            list(atts.rows.values()),
        ).rowcount
        imported = insert_rows(conn, _INSERT_RESPONSES, [
            tuple(t.values[c] for c in RESPONSE_COLUMNS) for t in turns], width=len(RESPONSE_COLUMNS),
            numbered="responses")
        conn.executemany(_INSERT_PART, [
            (t.values["id"], ordinal, *part) for t in turns for ordinal, part in enumerate(t.parts)])
    # An interrupted batch is rolled back: what the interruption message
    # says was imported must not count it.
    report.conversations += conversations
    report.attachments += attachments
    report.imported += imported


def import_llm_templates(store: Store, directory: str | Path | None = None) -> ImportResult:
    """``import llm --templates``: llm's template folder (default: llm's own) into the library."""
    from ..template_files import import_templates  # PyYAML only on this path

    folder = Path(directory) if directory is not None else default_llm_dir() / "templates"
    return import_templates(store, folder)
