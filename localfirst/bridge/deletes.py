"""Deletes made in localfirst (here or on another machine), carried into llm's database.

llm has no delete of its own. A tombstoned response removes its turn (and
its row in llm's older ``responses`` table) with the rows that hang off it;
a tombstoned conversation removes its thread and every turn in it. Messages
are shared by content, so a message goes only when no remaining turn or
thread reaches it; while a later turn of the same conversation remains, the
messages before it stay, because they are that turn's history. Attachments
no longer used by anything go too. Batches of ``BATCH`` turns, each one
short transaction.
"""

from __future__ import annotations

import json
import sqlite3

from ..store import Store
from .target import LlmTarget

__all__ = ["remove_deleted"]

BATCH = 200

_DOOMED = "SELECT value FROM json_each(?)"
_TURN_CHILDREN = ("turn_search", "turn_fragments", "turn_tools", "tool_instantiations")
_RESPONSE_CHILDREN = ("prompt_attachments", "prompt_fragments", "system_fragments", "tool_responses",
                      "tool_calls")


def remove_deleted(store: Store, target: LlmTarget) -> int:
    """Remove from llm's database what the store has tombstones for; returns how many responses went."""
    dead_responses = {r[0] for r in store.conn.execute("SELECT key FROM tombstones WHERE tbl = 'responses'")}
    dead_threads = {r[0] for r in store.conn.execute("SELECT key FROM tombstones WHERE tbl = 'conversations'")}
    if not dead_responses and not dead_threads:
        return 0
    rows = target.read(
        "SELECT lower(id), lower(thread_id) FROM turns UNION ALL "
        "SELECT lower(id), lower(conversation_id) FROM responses")
    doomed = sorted({str(rid) for rid, tid in rows if rid in dead_responses or tid in dead_threads})
    threads = sorted({str(r[0]) for r in target.read("SELECT lower(id) FROM threads UNION "
                                                     "SELECT lower(id) FROM conversations")} & dead_threads)
    removed = 0
    for start in range(0, len(doomed), BATCH):
        with target.write() as conn:
            removed += _remove(conn, [str(r) for r in doomed[start:start + BATCH]], [])
    if threads:
        with target.write() as conn:
            removed += _remove(conn, [], threads)
    return removed


def _remove(conn: sqlite3.Connection, response_ids: list[str], thread_ids: list[str]) -> int:
    rids, tids = json.dumps(response_ids), json.dumps(thread_ids)
    turns = [r[0] for r in conn.execute(
        f"SELECT id FROM turns WHERE lower(id) IN ({_DOOMED}) OR lower(thread_id) IN ({_DOOMED})", [rids, tids])]
    legacy = [r[0] for r in conn.execute(
        f"SELECT id FROM responses WHERE lower(id) IN ({_DOOMED}) OR lower(conversation_id) IN ({_DOOMED})",
        [rids, tids])]
    ids_turns, ids_legacy = json.dumps(turns), json.dumps(legacy)
    touched = [r[0] for r in conn.execute(
        f"SELECT DISTINCT thread_id FROM turns WHERE id IN ({_DOOMED})", [ids_turns])]
    # Messages these turns reach and attachments their rows name: candidates
    # for removal once the turns are gone.
    for temp in ("_lf_candidates (hash TEXT PRIMARY KEY)", "_lf_attachments (id TEXT PRIMARY KEY)"):
        conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {temp}")
        conn.execute(f"DELETE FROM temp.{temp.split()[0]}")
    conn.execute(
        "WITH RECURSIVE up(h) AS ("
        f" SELECT tip_message_hash FROM turns WHERE id IN ({_DOOMED}) AND tip_message_hash IS NOT NULL"
        " UNION SELECT m.parent_hash FROM messages m JOIN up ON m.hash = up.h WHERE m.parent_hash IS NOT NULL)"
        " INSERT OR IGNORE INTO temp._lf_candidates SELECT h FROM up", [ids_turns])
    old_tips = {r[0] for r in conn.execute(
        f"SELECT tip_message_hash FROM turns WHERE id IN ({_DOOMED})", [ids_turns])}
    for table in _TURN_CHILDREN:
        conn.execute(f"DELETE FROM {table} WHERE turn_id IN ({_DOOMED})", [ids_turns])
    conn.execute(f"DELETE FROM turns WHERE id IN ({_DOOMED})", [ids_turns])
    conn.execute("INSERT OR IGNORE INTO temp._lf_attachments SELECT attachment_id FROM prompt_attachments "
                 f"WHERE response_id IN ({_DOOMED}) AND attachment_id IS NOT NULL", [ids_legacy])
    for table in _RESPONSE_CHILDREN:
        conn.execute(f"DELETE FROM {table} WHERE response_id IN ({_DOOMED})", [ids_legacy])
    conn.execute("DELETE FROM tool_results_attachments WHERE tool_result_id IN "
                 f"(SELECT id FROM tool_results WHERE response_id IN ({_DOOMED}))", [ids_legacy])
    conn.execute(f"DELETE FROM tool_results WHERE response_id IN ({_DOOMED})", [ids_legacy])
    conn.execute(f"DELETE FROM responses WHERE id IN ({_DOOMED})", [ids_legacy])
    _settle_threads(conn, touched, thread_ids, old_tips)
    _collect_messages(conn)
    return len(set(turns) | set(legacy))


def _settle_threads(conn: sqlite3.Connection, touched: list[str], dead: list[str], old_tips: set[str]) -> None:
    """A thread left without turns goes; one that pointed at a removed turn points at its newest remaining one."""
    for tid in touched:
        if tid is None:
            continue
        latest = conn.execute("SELECT tip_message_hash FROM turns WHERE thread_id = ? ORDER BY id DESC LIMIT 1",
                              [tid]).fetchone()
        if latest is None:
            dead = [*dead, str(tid).lower()]
            continue
        current = conn.execute("SELECT tip_message_hash FROM threads WHERE id = ?", [tid]).fetchone()
        if current is not None and current[0] in old_tips:
            conn.execute("UPDATE threads SET tip_message_hash = ? WHERE id = ?", [latest[0], tid])
    gone = json.dumps(dead)
    conn.execute(f"UPDATE threads SET forked_from = NULL WHERE lower(forked_from) IN ({_DOOMED})", [gone])
    conn.execute(f"DELETE FROM threads WHERE lower(id) IN ({_DOOMED})", [gone])
    conn.execute(f"DELETE FROM conversations WHERE lower(id) IN ({_DOOMED}) AND id NOT IN "
                 "(SELECT conversation_id FROM responses WHERE conversation_id IS NOT NULL)", [gone])


def _collect_messages(conn: sqlite3.Connection) -> None:
    """Remove the candidate messages nothing reaches any more, their parts, and attachments left unused."""
    if conn.execute("SELECT 1 FROM temp._lf_candidates LIMIT 1").fetchone() is not None:
        conn.execute(
            "WITH RECURSIVE live(h) AS ("
            " SELECT tip_message_hash FROM turns UNION SELECT parent_message_hash FROM turns"
            " UNION SELECT tip_message_hash FROM threads"
            " UNION SELECT m.parent_hash FROM messages m JOIN live ON m.hash = live.h)"
            " DELETE FROM temp._lf_candidates WHERE hash IN (SELECT h FROM live WHERE h IS NOT NULL)")
    parts = "SELECT id FROM parts WHERE message_hash IN (SELECT hash FROM temp._lf_candidates)"
    conn.execute(f"INSERT OR IGNORE INTO temp._lf_attachments SELECT attachment_id FROM part_attachments "
                 f"WHERE part_id IN ({parts})")
    conn.execute(f"DELETE FROM part_attachments WHERE part_id IN ({parts})")
    conn.execute(f"DELETE FROM part_fragments WHERE part_id IN ({parts})")
    conn.execute("DELETE FROM parts WHERE message_hash IN (SELECT hash FROM temp._lf_candidates)")
    conn.execute("DELETE FROM messages WHERE hash IN (SELECT hash FROM temp._lf_candidates)")
    conn.execute(
        "DELETE FROM attachments WHERE id IN (SELECT id FROM temp._lf_attachments) "
        "AND id NOT IN (SELECT attachment_id FROM part_attachments WHERE attachment_id IS NOT NULL) "
        "AND id NOT IN (SELECT attachment_id FROM prompt_attachments WHERE attachment_id IS NOT NULL) "
        "AND id NOT IN (SELECT attachment_id FROM tool_results_attachments WHERE attachment_id IS NOT NULL)")
