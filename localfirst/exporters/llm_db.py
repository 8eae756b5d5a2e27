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
import os
import sqlite3
from dataclasses import dataclass
from itertools import groupby
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any

from ..db import insert_rows, translate
from ..errors import BadInput, DatabaseError, NotFound
from ..records import Attachment, Response
from ..store import Store
from .llm_schema import LLM_INDEXES, LLM_MIGRATIONS, LLM_SEARCH_TRIGGER, LLM_TABLES
from .llm_turns import LlmMessage, turn_messages

__all__ = ["export_llm", "LlmExport", "LlmWriter", "llm_time"]


@dataclass
class LlmExport:
    path: str
    conversations: int = 0
    responses: int = 0


# The tables LlmWriter gathers rows for, in the order flush writes them.
_INSERTS = {
    "messages": "INSERT INTO messages (hash, parent_hash, role)",
    "parts": "INSERT INTO parts (id, message_hash, position, type, tool_name, text, payload)",
    "part_attachments": 'INSERT INTO part_attachments (part_id, attachment_id, "order")',
    "turns": "INSERT INTO turns (id, thread_id, parent_message_hash, tip_message_hash, model, resolved_model, "
             "options_json, input_tokens, output_tokens, token_details, duration_ms, datetime_utc, response_json)",
    "turn_search": "INSERT INTO turn_search (turn_id, prompt, response)",
    "threads": "INSERT INTO threads (id, name, tip_message_hash, datetime_utc)",
}
_BY_HASH = {"messages": itemgetter(0)}
# Turns gathered before export_llm writes them: some 10 MB of rows. More turns a batch, fewer
# visits to each page of the index of messages, keyed by hash, but more memory.
_FLUSH = 5000


# One encoder for every hash: json.dumps with arguments builds a new one per call.
_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
# The string encoder _canonical itself uses (ensure_ascii=False), for the parts written out by hand.
_string = json.encoder.encode_basestring


class _Written:
    """A Bloom filter of the message hashes written: "no" is certain, "maybe" asks the database.

    A few MB, whatever the size of the export, where a set of every hash
    grows with it, and a lookup in the file for every message costs a seek
    into an index keyed by hash.
    """

    BITS = 1 << 26  # 8 MB; one "maybe" in ~250 at two million messages

    def __init__(self) -> None:
        self.bits = bytearray(self.BITS // 8)

    def add(self, h: str) -> None:
        # Two slices of the string's own hash, which Python computed (and keeps) when the
        # hash went into a set: much cheaper than parsing the hex digest.
        x = hash(h)
        a, b = x & (self.BITS - 1), (x >> 26) & (self.BITS - 1)
        self.bits[a >> 3] |= 1 << (a & 7)
        self.bits[b >> 3] |= 1 << (b & 7)

    def __contains__(self, h: str) -> bool:
        x = hash(h)
        a, b = x & (self.BITS - 1), (x >> 26) & (self.BITS - 1)
        return bool(self.bits[a >> 3] & (1 << (a & 7))) and bool(self.bits[b >> 3] & (1 << (b & 7)))


def _llm_attachment_id(a: Attachment) -> str:
    if a.content is None and a.url and not a.path:
        return hashlib.sha256(json.dumps({"url": a.url}).encode()).hexdigest()
    return a.id


def message_hash(message: LlmMessage, parent: str | None) -> str:
    """llm's hash: blake2b-128 of the canonical JSON (sorted keys, no spaces) of the message and its parent.

    The JSON is joined from pieces, each part encoded on its own: with no
    spaces and sorted keys a value encodes the same alone as inside its
    container. Most parts are a text alone, written out here in key order.
    """
    parts = []
    for part, atts in zip(message.parts, message.attachments, strict=True):
        if not atts:
            text = part.get("text")
            if len(part) == 2 and type(text) is str and type(part["type"]) is str:
                parts.append(f'{{"text":{_string(text)},"type":{_string(part["type"])}}}')
            else:
                parts.append(_canonical(part))
            continue
        d = dict(part)
        canon = [{"id": _llm_attachment_id(a), "type": a.mime_type} for a in atts]
        if d["type"] == "attachment":
            d["attachment"] = canon[0]
        elif canon:
            d["attachments"] = canon
        parts.append(_canonical(d))
    text = (f'{{"message":{{"parts":[{",".join(parts)}],"role":{_string(message.role)}}},'
            f'"parent":{"null" if parent is None else _string(parent)}}}')
    return "b2:" + hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def export_llm(store: Store, path: str | Path, *, cid: str | None = None, since: str | None = None) -> LlmExport:
    """Write the store (or one conversation, or what is newer than ``since``) to a new llm database.

    The database is built under a temporary name beside ``path`` and renamed
    into place once complete, so ``path`` never holds half an export, even
    after a crash; the temporary file goes when the export fails.
    """
    target = Path(path).expanduser()
    if not target.parent.exists():
        raise BadInput(f"cannot write {target}: directory {target.parent} does not exist")
    if target.exists():
        raise BadInput(f"{target} already exists; export --format llm writes a new file")
    # Checked (an unknown --cid) before the file is made; read in chunks, a conversation at a time.
    responses = store.stream_responses(count=0, conversation_id=cid, since=since, by_conversation=True)
    result = LlmExport(str(target))
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        conn = sqlite3.connect(str(partial), isolation_level=None)
    except sqlite3.Error as exc:
        responses.close()
        raise translate(exc, str(target)) from exc
    try:
        # Renamed into place only once complete (and synced then): a crash leaves only the
        # temporary file, which nothing reads, so it needs no journal.
        conn.execute("PRAGMA page_size = 16384")  # fewer pages for rows of ~1 KB of text: less to do per row
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.executescript(LLM_TABLES)
        conn.execute("BEGIN")
        conn.executemany('INSERT INTO "_llm_migrations" (name, applied_at) VALUES (?, ?)',
                         [(n, "1970-01-01 00:00:00+00:00") for n in LLM_MIGRATIONS])
        writer = LlmWriter(conn, store, fresh=True)
        for _, group in groupby(responses, key=attrgetter("conversation_id")):
            conversation = list(group)
            writer.thread(conversation)
            result.conversations += 1
            result.responses += len(conversation)
            if writer.pending >= _FLUSH:
                writer.flush()
        writer.flush()
        for sql in LLM_INDEXES:
            conn.execute(sql)
        conn.execute("INSERT INTO turn_search_fts (turn_search_fts) VALUES ('rebuild')")  # then its trigger
        conn.execute(LLM_SEARCH_TRIGGER)
        conn.execute("COMMIT")
        conn.close()
        with open(partial, "rb") as done:
            os.fsync(done.fileno())
        os.replace(partial, target)
    except sqlite3.Error as exc:
        conn.close()
        partial.unlink(missing_ok=True)
        raise translate(exc, str(target)) from exc
    except OSError as exc:
        conn.close()
        partial.unlink(missing_ok=True)
        raise DatabaseError(f"cannot write {target}: {exc.strerror or exc}") from exc
    except BaseException:
        conn.close()
        partial.unlink(missing_ok=True)
        raise
    finally:
        responses.close()
    return result


def llm_time(utc_text: str | None) -> str | None:
    # llm writes "2026-11-20T22:38:14.128427+00:00"; ours ends in Z.
    return None if utc_text is None else utc_text.replace("Z", "+00:00")


class LlmWriter:
    """Writes conversations into an llm database as threads, messages and turns.

    Rows are gathered and written by ``flush``, a statement per table: an
    INSERT a row at a time costs a statement each, and the full-text index
    of ``turn_search`` a flush of its pending terms each. A message already
    in the database (an identical exchange elsewhere, or one llm wrote) is
    not written twice: messages are content-addressed. Parts are numbered
    here, from the highest id the database holds, so that their attachment
    links need not wait for SQLite to number them.
    """

    def __init__(self, conn: sqlite3.Connection, store: Store, *, fresh: bool = False) -> None:
        """``fresh``: the database holds only what this writer writes (a new export)."""
        self.conn = conn
        self.store = store
        self.known: set[str] = set()  # hashes gathered since the last flush
        self._written = _Written() if fresh else None
        self.attachments: set[str] = set()
        self.pending = 0  # turns gathered since the last flush
        self._part_id = conn.execute("SELECT coalesce(max(id), 0) FROM parts").fetchone()[0]
        self._rows: dict[str, list[tuple[Any, ...]]] = {name: [] for name in _INSERTS}

    def flush(self) -> None:
        """Write every row gathered so far (in the caller's transaction)."""
        for name, sql in _INSERTS.items():
            rows = self._rows[name]
            if not rows:
                continue
            if name == "turn_search" and self._written is None:  # llm's database: its full-text trigger
                insert_rows(self.conn, sql, rows, width=3)
            elif name in _BY_HASH:
                # In key order, each page of an index keyed by hash is visited once per flush.
                rows.sort(key=_BY_HASH[name])
                self.conn.executemany(f"{sql} VALUES ({', '.join('?' * len(rows[0]))})", rows)
            else:
                self.conn.executemany(f"{sql} VALUES ({', '.join('?' * len(rows[0]))})", rows)
            rows.clear()
        self.pending = 0
        self.known.clear()  # what was gathered is in the database now

    def thread(self, responses: list[Response]) -> None:
        first = responses[0]
        tip = self.turns(responses)
        self._rows["threads"].append(
            (first.conversation_id, first.conversation_name, tip, llm_time(first.datetime_utc)))

    def turns(self, responses: list[Response], *, written: dict[str, str | None] | None = None) -> str | None:
        """Gather the turns of one conversation, oldest first; returns the tip of the last.

        ``written`` maps the ids of turns the database already holds to their
        tips: those are not written again, and the next turn continues from
        the tip stored there. Nothing is written until ``flush``.
        """
        tip: str | None = None
        system: str | None = None
        # In a new export, a message whose parent was new when this walk wrote it is new
        # too: nothing else can have that parent yet. Only the messages a conversation
        # opens with (until one is new) can be there already and are looked for.
        new = False
        for r in responses:
            if written is not None and r.id in written:
                tip = written[r.id]
                system = r.system or system
                continue
            inputs, reply = turn_messages(r, system=system)
            system = r.system or system
            parent = tip
            for m in inputs:
                parent, new = self._ensure(m, parent, new)
            tip, new = self._ensure(reply, parent, new)
            self._turn(r, parent, tip)
        return tip

    def _ensure(self, m: LlmMessage, parent: str | None, parent_new: bool) -> tuple[str, bool]:
        """The hash of ``m`` (gathered for writing unless already there), and whether it is new."""
        h = message_hash(m, parent)
        if not parent_new:
            if h in self.known:
                return h, False
            if ((self._written is None or h in self._written)
                    and self.conn.execute("SELECT 1 FROM messages WHERE hash = ?", [h]).fetchone()):
                self.known.add(h)
                return h, False  # written before the last flush, here or by llm: content-addressed, so the same
        self.known.add(h)
        if self._written is not None:
            self._written.add(h)
        self._rows["messages"].append((h, parent, m.role))
        for position, (d, atts) in enumerate(zip(m.parts, m.attachments, strict=True)):
            if not atts and len(d) == 2 and d["type"] in ("text", "reasoning"):  # most parts: their text alone
                self._part_id += 1
                self._rows["parts"].append((self._part_id, h, position, d["type"], None, d["text"], None))
                continue
            payload = {k: v for k, v in d.items() if k != "type"}
            text = None
            if d["type"] in ("text", "reasoning"):
                text = payload.pop("text")
            ids = [self._attachment(a) for a in atts]
            if d["type"] == "attachment" and ids:
                payload["attachment"] = {"id": ids[0]}
            elif ids:
                payload["attachments"] = [{"id": i} for i in ids]
            self._part_id += 1
            self._rows["parts"].append((self._part_id, h, position, d["type"], payload.get("name"), text,
                                        json.dumps(payload) if payload else None))
            self._rows["part_attachments"] += [(self._part_id, aid, order) for order, aid in enumerate(ids)]
        return h, self._written is not None

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
        self._rows["turns"].append((
            r.id, r.conversation_id, parent, tip, r.model, r.resolved_model,
            json.dumps(r.options) if r.options else None, r.input_tokens, r.output_tokens,
            json.dumps(r.token_details) if r.token_details else None, r.duration_ms,
            llm_time(r.datetime_utc), json.dumps(r.response_json) if r.response_json is not None else None))
        if r.prompt or r.response:
            self._rows["turn_search"].append((r.id, r.prompt or "", r.response or ""))
        self.pending += 1
