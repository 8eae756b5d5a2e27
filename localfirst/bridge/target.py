"""llm's ``logs.db`` opened for writing: checked first, then written in short transactions.

Only llm's current schema is written: the file must record every llm
migration this version knows (``LLM_MIGRATIONS``) and no other, and hold the
columns the bridge writes. llm may be writing at the same moment; llm keeps
the default rollback journal, so every write here is one short
``BEGIN EXCLUSIVE`` transaction and waits for llm's lock at most the busy
timeout (``LOCALFIRST_LLM_TIMEOUT`` seconds, default 5: llm itself waits 5
seconds for ours). The journal mode and every other setting of the file
are left as llm set them.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..db import translate
from ..errors import BadInput, DatabaseError, SchemaTooNew
from ..exporters.llm_schema import LLM_MIGRATIONS
from ..importers.llm_source import open_llm

__all__ = ["LlmTarget", "busy_timeout_ms", "open_target"]

DEFAULT_TIMEOUT_S = 5.0

# The tables and columns the bridge writes or deletes from.
WRITES = {
    "threads": {"id", "name", "tip_message_hash", "forked_from", "datetime_utc"},
    "turns": {"id", "thread_id", "parent_message_hash", "tip_message_hash", "model", "resolved_model",
              "options_json", "schema_id", "input_tokens", "output_tokens", "token_details", "duration_ms",
              "datetime_utc", "response_json"},
    "messages": {"hash", "parent_hash", "role", "provider_metadata"},
    "parts": {"id", "message_hash", "position", "type", "tool_name", "text", "payload"},
    "part_attachments": {"part_id", "attachment_id", "order"},
    "attachments": {"id", "type", "path", "url", "content"},
    "turn_search": {"id", "turn_id", "prompt", "response"},
}


def busy_timeout_ms() -> int:
    """``LOCALFIRST_LLM_TIMEOUT`` (seconds) as milliseconds; a bad value is an error, not a guess."""
    raw = os.environ.get("LOCALFIRST_LLM_TIMEOUT")
    if raw is None or not raw.strip():
        return int(DEFAULT_TIMEOUT_S * 1000)
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 3600:
        raise BadInput(f"LOCALFIRST_LLM_TIMEOUT must be a number of seconds from 0 to 3600, not {raw!r}")
    return int(seconds * 1000)


class LlmTarget:
    """An open, checked, writable llm database."""

    def __init__(self, path: Path, conn: sqlite3.Connection, timeout_ms: int) -> None:
        self.path = path
        self.conn = conn
        self.timeout_ms = timeout_ms

    def close(self) -> None:
        self.conn.close()

    def error(self, exc: sqlite3.Error) -> DatabaseError:
        code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
        if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return DatabaseError(f"llm's database {self.path} stayed locked by another process for more than "
                                 f"{self.timeout_ms / 1000:g} s (LOCALFIRST_LLM_TIMEOUT); nothing was written, "
                                 "try again")
        return translate(exc, str(self.path))

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One short transaction: all of it lands, or none of it."""
        conn = self.conn
        try:
            # EXCLUSIVE, not IMMEDIATE: llm reads and then writes inside one
            # deferred transaction, and in the rollback journal a reader that
            # wants to write while we hold RESERVED is refused at once, with no
            # wait, to break the deadlock. With no reader left while we write,
            # llm only ever waits for us, within its busy timeout.
            conn.execute("BEGIN EXCLUSIVE")
        except sqlite3.Error as exc:
            raise self.error(exc) from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise self.error(exc) from exc
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def read(self, sql: str, params: list[object] | tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self.error(exc) from exc


def open_target(path: Path, *, own_db: str | None = None, timeout_ms: int | None = None) -> LlmTarget:
    """Check that ``path`` is llm's database in the schema we write, and open it for writing.

    Refuses (one error each): a missing file, one that is not SQLite, a
    localfirst database (``own_db`` is the store's own path), one written by
    an llm newer or older than the schema we know, and a file whose lock is
    held longer than the busy timeout.
    """
    timeout_ms = busy_timeout_ms() if timeout_ms is None else timeout_ms
    if own_db is not None and own_db != ":memory:" and _same_file(path, Path(own_db)):
        raise BadInput(f"{path} is localfirst's own database; link llm's logs.db (see `llm logs path`)")
    source = open_llm(path, busy_timeout_ms=timeout_ms)  # missing, not SQLite, not llm's, ours: refused here
    try:
        columns = dict(source.columns)
    finally:
        source.close()
    try:
        conn = sqlite3.connect(str(path), isolation_level=None, timeout=timeout_ms / 1000, check_same_thread=False)
    except sqlite3.Error as exc:
        raise translate(exc, str(path)) from exc
    target = LlmTarget(path, conn, timeout_ms)
    try:
        _check_schema(target, columns)
    except BaseException:
        target.close()
        raise
    return target


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _check_schema(target: LlmTarget, columns: dict[str, set[str]]) -> None:
    path = target.path
    if "_llm_migrations" not in columns:
        raise DatabaseError(f"{path} has no record of llm's migrations; run any llm command once (for "
                            "example `llm logs status`) so that llm brings it to its current schema")
    applied = [str(r[0]) for r in target.read("SELECT name FROM _llm_migrations")]
    known = set(LLM_MIGRATIONS)
    newer = [n for n in applied if n not in known]
    if newer:
        raise SchemaTooNew(f"{path} was written by a newer llm than this localfirst knows (migration "
                           f"{sorted(newer)[-1]}); upgrade localfirst, or `localfirst llm unlink` (`localfirst "
                           "import llm` still reads it)")
    missing = [n for n in LLM_MIGRATIONS if n not in applied]
    if missing:
        raise DatabaseError(f"{path} is in an older llm schema (without {missing[-1]}); run llm 0.36 or newer "
                            "once (for example `llm logs status`) so that it upgrades the file")
    for table, needed in WRITES.items():
        lacking = needed - columns.get(table, set())
        if lacking:
            raise DatabaseError(f"{path} does not have llm's current layout: table {table} lacks "
                                f"{', '.join(sorted(lacking))}")
