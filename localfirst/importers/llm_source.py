"""Finding and opening llm's ``logs.db`` read-only, and telling its schema apart.

llm has written two generations of tables: the older ``conversations`` /
``responses`` pair (up to 0.31) and the message store (``threads``, ``turns``,
``messages``, ``parts``; since 0.32). A database upgraded by llm holds both.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..db import connect, translate
from ..errors import DatabaseError, NotADatabase, NotFound

__all__ = ["LlmSource", "default_llm_dir", "default_llm_path", "open_llm"]

# Tables each generation needs, with the columns we cannot do without.
LEGACY_REQUIRED = {"responses": {"id", "model", "prompt", "response", "datetime_utc"}}
MESSAGES_REQUIRED = {
    "turns": {"id", "thread_id", "parent_message_hash", "tip_message_hash", "model", "datetime_utc"},
    "messages": {"hash", "parent_hash", "role"},
    "parts": {"id", "message_hash", "position", "type", "text", "payload"},
}
# Tables we read, or know and deliberately leave (search indexes, aliases,
# llm's own migration record): none of them is reported as skipped.
KNOWN_TABLES = {
    "_llm_migrations", "conversations", "responses", "attachments", "prompt_attachments",
    "fragments", "fragment_aliases", "prompt_fragments", "system_fragments", "schemas",
    "tools", "tool_responses", "tool_calls", "tool_results", "tool_instances",
    "tool_results_attachments", "threads", "turns", "messages", "parts", "part_attachments",
    "part_fragments", "turn_fragments", "turn_tools", "turn_search", "tool_instantiations",
}
_INTERNAL_SUFFIXES = ("_fts", "_fts_data", "_fts_idx", "_fts_docsize", "_fts_config", "_fts_content")


def default_llm_dir() -> Path:
    """llm's user directory: ``$LLM_USER_PATH``, else its platform directory."""
    env = os.environ.get("LLM_USER_PATH")
    if env:
        return Path(env).expanduser()
    # The directory click.get_app_dir("io.datasette.llm") gives, written out
    # so that importing does not need click.
    if sys.platform == "win32":
        base = os.environ.get("APPDATA") or str(Path.home() / "AppData" / "Roaming")
        return Path(base) / "io.datasette.llm"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "io.datasette.llm"
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "io.datasette.llm"


def default_llm_path() -> Path:
    return default_llm_dir() / "logs.db"


@dataclass
class LlmSource:
    """An open, read-only llm database and what we found in it."""

    path: str
    conn: sqlite3.Connection
    columns: dict[str, set[str]] = field(default_factory=dict)
    legacy: bool = False
    messages: bool = False
    # (table, reason) for every table or generation we leave alone.
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def has(self, table: str, *cols: str) -> bool:
        have = self.columns.get(table)
        return have is not None and all(c in have for c in cols)

    def col(self, table: str, name: str, alias: str = "") -> str:
        """``alias.name`` when the column exists in this version, else NULL."""
        prefix = f"{alias}." if alias else ""
        return f'{prefix}"{name}"' if self.has(table, name) else "NULL"

    def close(self) -> None:
        self.conn.close()


def open_llm(path: str | Path, *, busy_timeout_ms: int | None = None) -> LlmSource:
    """Open llm's database read-only and work out which generations it holds.

    ``busy_timeout_ms``: how long to wait while llm holds its write lock
    (default: as long as for our own database).

    Raises NotFound for a missing file and NotADatabase for a file that is not
    SQLite or not llm's. Tables of a schema we do not know are recorded in
    ``skipped``, never an error.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise NotFound(f"no llm database at {p}")
    if not p.is_file():
        raise NotADatabase(f"{p} is not a file")
    try:
        with p.open("rb") as fh:
            header = fh.read(100)
    except OSError as exc:
        raise DatabaseError(f"cannot read {p}: {exc.strerror}") from exc
    if header[:16] != b"SQLite format 3\x00":
        raise NotADatabase(f"{p} is not an SQLite database")
    conn = _connect_readonly(p, wal=header[18:20] == b"\x02\x02")
    source = LlmSource(str(p), conn)
    try:
        if busy_timeout_ms is not None:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        for table in tables:
            source.columns[table] = {r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')}
    except sqlite3.DatabaseError as exc:
        conn.close()
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            raise translate(exc, str(p)) from exc
        raise NotADatabase(f"{p} is not an SQLite database, or it is corrupt") from exc
    _detect(source, tables)
    return source


def _connect_readonly(p: Path, *, wal: bool) -> sqlite3.Connection:
    """Open without writing anything, not even the -wal and -shm files.

    A read-only connection to a WAL database creates both files when they are
    missing and cannot remove them again. When there is no -wal file every
    committed page is in the main file, so it is opened as immutable instead.
    """
    if not wal or Path(str(p) + "-wal").exists():
        return connect(p, readonly=True)
    try:
        return sqlite3.connect(p.resolve().as_uri() + "?immutable=1", uri=True, isolation_level=None,
                               check_same_thread=False)
    except sqlite3.Error as exc:
        raise translate(exc, str(p)) from exc


def _detect(source: LlmSource, tables: list[str]) -> None:
    if "tombstones" in tables and "_sqlite_migrations" in tables:
        # Ours has a responses table too; reading it as llm's would lose its parts.
        source.close()
        raise NotADatabase(f"{source.path} is a localfirst database, not llm's: use `localfirst merge` for it")
    llm_like = "_llm_migrations" in tables or any(t in tables for t in ("responses", "turns"))
    if not llm_like:
        source.close()
        raise NotADatabase(f"{source.path} is an SQLite database but not one written by llm")
    source.legacy = _generation(source, LEGACY_REQUIRED, "conversations/responses")
    source.messages = _generation(source, MESSAGES_REQUIRED, "threads/turns")
    for table in tables:
        if table not in KNOWN_TABLES and not table.endswith(_INTERNAL_SUFFIXES):
            source.skipped.append((table, "not part of an llm schema this version knows"))


def _generation(source: LlmSource, required: dict[str, set[str]], label: str) -> bool:
    present = [t for t in required if t in source.columns]
    if not present:
        return False
    for table, cols in required.items():
        missing = cols - source.columns.get(table, set())
        if missing:
            source.skipped.append(
                (table, f"the {label} tables lack {', '.join(sorted(missing))}; not imported"))
            return False
    return True

