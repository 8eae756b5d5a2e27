"""``export --format llm``: a database in llm's current schema that ``llm logs -d`` reads.

Each conversation becomes a thread and a chain of content-addressed
messages; each response a turn delimited by the hash of its last input
message and of its output message. Hashes follow llm's rule (blake2b-128 of
the canonical JSON of the message and its parent), so messages llm would
share are shared here too.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from itertools import groupby
from operator import attrgetter
from pathlib import Path
from typing import Any

from ..db import translate
from ..errors import BadInput, NotFound
from ..records import Attachment, Response
from ..store import Store
from .llm_schema import LLM_MIGRATIONS, LLM_SCHEMA
from .llm_turns import LlmMessage, turn_messages

__all__ = ["export_llm", "LlmExport", "LlmWriter", "llm_time"]


@dataclass
class LlmExport:
    path: str
    conversations: int = 0
    responses: int = 0


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _llm_attachment_id(a: Attachment) -> str:
    if a.content is None and a.url and not a.path:
        return hashlib.sha256(json.dumps({"url": a.url}).encode()).hexdigest()
    return a.id


def message_hash(message: LlmMessage, parent: str | None) -> str:
    parts = []
    for part, atts in zip(message.parts, message.attachments, strict=True):
        d = dict(part)
        canon = [{"id": _llm_attachment_id(a), "type": a.mime_type} for a in atts]
        if d["type"] == "attachment":
            d["attachment"] = canon[0]
        elif canon:
            d["attachments"] = canon
        parts.append(d)
    digest = hashlib.blake2b(_canonical({"parent": parent, "message": {"role": message.role, "parts": parts}})
                             .encode(), digest_size=16).hexdigest()
    return "b2:" + digest


def export_llm(store: Store, path: str | Path, *, cid: str | None = None, since: str | None = None) -> LlmExport:
    """Write the store (or one conversation, or what is newer than ``since``) to a new llm database."""
    target = Path(path).expanduser()
    if not target.parent.exists():
        raise BadInput(f"cannot write {target}: directory {target.parent} does not exist")
    if target.exists():
        raise BadInput(f"{target} already exists; export --format llm writes a new file")
    # Checked (an unknown --cid) before the file is made; read in chunks, a conversation at a time.
    responses = store.stream_responses(count=0, conversation_id=cid, since=since, by_conversation=True)
    result = LlmExport(str(target))
    try:
        conn = sqlite3.connect(str(target), isolation_level=None)
    except sqlite3.Error as exc:
        raise translate(exc, str(target)) from exc
    try:
        conn.executescript(LLM_SCHEMA)
        conn.execute("BEGIN")
        conn.executemany('INSERT INTO "_llm_migrations" (name, applied_at) VALUES (?, ?)',
                         [(n, "1970-01-01 00:00:00+00:00") for n in LLM_MIGRATIONS])
        writer = LlmWriter(conn, store)
        for _, group in groupby(responses, key=attrgetter("conversation_id")):
            conversation = list(group)
            writer.thread(conversation)
            result.conversations += 1
            result.responses += len(conversation)
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        conn.close()
        target.unlink(missing_ok=True)
        raise translate(exc, str(target)) from exc
    except BaseException:
        conn.close()
        target.unlink(missing_ok=True)
        raise
    finally:
        responses.close()
    conn.close()
    return result


def llm_time(utc_text: str | None) -> str | None:
    # llm writes "2026-11-20T22:38:14.128427+00:00"; ours ends in Z.
    return None if utc_text is None else utc_text.replace("Z", "+00:00")


class LlmWriter:
    """Writes conversations into an llm database as threads, messages and turns."""

    def __init__(self, conn: sqlite3.Connection, store: Store) -> None:
        self.conn = conn
        self.store = store
        self.known: set[str] = set()
        self.attachments: set[str] = set()

    def thread(self, responses: list[Response]) -> None:
        first = responses[0]
        tip = self.turns(responses)
        self.conn.execute(
            'INSERT INTO threads (id, name, tip_message_hash, forked_from, datetime_utc) VALUES (?, ?, ?, NULL, ?)',
            [first.conversation_id, first.conversation_name, tip, llm_time(first.datetime_utc)])

    def turns(self, responses: list[Response], *, written: dict[str, str | None] | None = None) -> str | None:
        """Write the turns of one conversation, oldest first; returns the tip of the last.

        ``written`` maps the ids of turns the database already holds to their
        tips: those are not written again, and the next turn continues from
        the tip stored there.
        """
        tip: str | None = None
        system: str | None = None
        for r in responses:
            if written is not None and r.id in written:
                tip = written[r.id]
                system = r.system or system
                continue
            inputs, reply = turn_messages(r, system=system)
            system = r.system or system
            parent = tip
            for m in inputs:
                parent = self._ensure(m, parent)
            tip = self._ensure(reply, parent)
            self._turn(r, parent, tip)
        return tip

    def _ensure(self, m: LlmMessage, parent: str | None) -> str:
        h = message_hash(m, parent)
        if h in self.known:
            return h
        self.known.add(h)
        self.conn.execute("INSERT INTO messages (hash, parent_hash, role, provider_metadata) VALUES (?, ?, ?, NULL)",
                          [h, parent, m.role])
        for position, (d, atts) in enumerate(zip(m.parts, m.attachments, strict=True)):
            payload = {k: v for k, v in d.items() if k != "type"}
            text = None
            if d["type"] in ("text", "reasoning"):
                text = payload.pop("text")
            ids = [self._attachment(a) for a in atts]
            if d["type"] == "attachment" and ids:
                payload["attachment"] = {"id": ids[0]}
            elif ids:
                payload["attachments"] = [{"id": i} for i in ids]
            cur = self.conn.execute(
                "INSERT INTO parts (message_hash, position, type, tool_name, text, payload) VALUES (?, ?, ?, ?, ?, ?)",
                [h, position, d["type"], payload.get("name"), text, json.dumps(payload) if payload else None])
            for order, aid in enumerate(ids):
                self.conn.execute('INSERT INTO part_attachments (part_id, attachment_id, "order") VALUES (?, ?, ?)',
                                  [cur.lastrowid, aid, order])
        return h

    def _attachment(self, a: Attachment) -> str:
        aid = _llm_attachment_id(a)
        if aid not in self.attachments:
            self.attachments.add(aid)
            try:
                content = self.store.attachment_content(a.id)
            except NotFound:
                content = None  # a part naming an attachment this store does not hold: exported without bytes
            self.conn.execute("INSERT OR IGNORE INTO attachments (id, type, path, url, content) VALUES (?, ?, ?, ?, ?)",
                              [aid, a.mime_type, a.path, a.url, content])
        return aid

    def _turn(self, r: Response, parent: str | None, tip: str) -> None:
        self.conn.execute(
            "INSERT INTO turns (id, thread_id, parent_message_hash, tip_message_hash, model, resolved_model, "
            "options_json, schema_id, input_tokens, output_tokens, token_details, duration_ms, datetime_utc, "
            "response_json) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?)",
            [r.id, r.conversation_id, parent, tip, r.model, r.resolved_model,
             json.dumps(r.options) if r.options else None, r.input_tokens, r.output_tokens,
             json.dumps(r.token_details) if r.token_details else None, r.duration_ms,
             llm_time(r.datetime_utc), json.dumps(r.response_json) if r.response_json is not None else None])
        if r.prompt or r.response:
            self.conn.execute("INSERT INTO turn_search (turn_id, prompt, response) VALUES (?, ?, ?)",
                              [r.id, r.prompt or "", r.response or ""])
