"""Writing what llm's database lacks into it: threads, messages and turns, in llm's current schema.

A response becomes a turn with the same id, a conversation a thread with the
same id, so ``llm logs``, ``llm -c`` and ``--cid`` see them, and the next
import finds the ids it already has. Nothing llm wrote is rewritten: turns
and messages are only inserted (a message is content-addressed, so one that
exists is the same message), and a thread's tip moves only forward, to a
message that descends from where it pointed, so a fork llm made is left alone.
Each conversation is written in its own short transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from ..exporters.llm_db import LlmWriter, llm_time
from ..records import Response
from ..store import Store
from .target import LlmTarget

__all__ = ["llm_ids", "write_missing"]


def llm_ids(target: LlmTarget) -> set[str]:
    """Every response id llm's database holds, in either generation of its tables, lower-cased."""
    rows = target.read("SELECT lower(id) FROM turns UNION SELECT lower(id) FROM responses")
    return {str(r[0]) for r in rows if r[0] is not None}


def write_missing(store: Store, target: LlmTarget) -> int:
    """Write every response of the store that llm's database lacks; returns how many turns were written."""
    have = llm_ids(target)
    rows = store.conn.execute("SELECT id, conversation_id FROM responses").fetchall()
    wanted: dict[str, set[str]] = {}
    for rid, cid in rows:
        if rid not in have:
            wanted.setdefault(cid, set()).add(rid)
    written = 0
    for cid in sorted(wanted):
        written += _conversation(store, target, cid, wanted[cid])
    return written


def _conversation(store: Store, target: LlmTarget, cid: str, new: set[str]) -> int:
    history = store.history(cid)
    with target.write() as conn:
        # Read again under the write lock: what llm holds now is what counts.
        present: dict[str, str | None] = {}
        for rid, tip in conn.execute(
                "SELECT lower(id), tip_message_hash FROM turns WHERE lower(id) IN (SELECT value FROM json_each(?))",
                [_json([r.id for r in history])]):
            present[rid] = tip
        legacy = {r[0] for r in conn.execute(
            "SELECT lower(id) FROM responses WHERE lower(id) IN (SELECT value FROM json_each(?))",
            [_json(sorted(new))])}
        # A legacy-only row is left where it is: llm shows it from its old tables.
        todo = [r for r in history if r.id in new and r.id not in present and r.id not in legacy]
        if not todo:
            return 0
        todo_ids = {r.id for r in todo}
        keep = [r for r in history if r.id in present or r.id in todo_ids]
        writer = LlmWriter(conn, store)
        tip = writer.turns(keep, written=present)
        writer.flush()
        _place_thread(conn, history[0], tip)
        return len(todo)


def _place_thread(conn: sqlite3.Connection, first: Response, tip: str | None) -> None:
    row = conn.execute("SELECT tip_message_hash FROM threads WHERE id = ?", [first.conversation_id]).fetchone()
    if row is None:
        conn.execute(
            "INSERT INTO threads (id, name, tip_message_hash, forked_from, datetime_utc) VALUES (?, ?, ?, NULL, ?)",
            [first.conversation_id, first.conversation_name, tip, llm_time(first.datetime_utc)])
        return
    current = row[0]
    if tip is None or current == tip:
        return
    if current is None or _descends(conn, tip, current):
        conn.execute("UPDATE threads SET tip_message_hash = ? WHERE id = ? AND tip_message_hash IS ?",
                     [tip, first.conversation_id, current])


def _descends(conn: sqlite3.Connection, tip: str, ancestor: str) -> bool:
    """Whether ``ancestor`` is on the chain from ``tip`` to its root (UNION stops on a cycle)."""
    found = conn.execute(
        "WITH RECURSIVE up(h) AS (SELECT ? UNION SELECT m.parent_hash FROM messages m JOIN up ON m.hash = up.h "
        "WHERE m.parent_hash IS NOT NULL) SELECT 1 FROM up WHERE h = ? LIMIT 1", [tip, ancestor]).fetchone()
    return found is not None


def _json(values: Sequence[str | None]) -> str:
    return json.dumps([v for v in values if v is not None])
