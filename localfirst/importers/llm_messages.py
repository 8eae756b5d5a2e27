"""Reading llm's message store: ``threads``, ``turns``, ``messages`` and ``parts``.

Messages are content-addressed and shared between threads; a turn is
delimited by two hashes. As ``llm logs`` does, a turn's own input is the
trailing run of user and tool messages up to ``parent_message_hash``, its
output is what lies between that and ``tip_message_hash``, and its system
prompt is the first message of its chain when that is a system message.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from .llm_rows import Attachments, Problem, Thread, Turn, dumps, json_text, ulid, utc
from .llm_source import LlmSource

__all__ = ["turn_ids", "read_messages", "message_tree", "MessageTree"]

_CHUNK = 500


def turn_ids(source: LlmSource) -> Iterator[str]:
    return (r[0] for r in source.conn.execute("SELECT id FROM turns") if r[0] is not None)


def message_tree(source: LlmSource) -> MessageTree:
    """Parent links and roles of messages, read batch by batch, with chain roots remembered from one to the next."""
    return _Tree(source)


def read_messages(
    source: LlmSource, atts: Attachments, problems: list[str], *, tree: MessageTree | None = None
) -> tuple[dict[str, Thread], list[Turn]]:
    """Turns whose ids are in ``temp._lf_want``, as rows of ours."""
    q = source.conn.execute
    c = source.col
    rows = q(
        "SELECT t.id, t.thread_id, t.parent_message_hash, t.tip_message_hash, t.model, "
        + ", ".join(c("turns", n, "t") for n in (
            "resolved_model", "options_json", "schema_id", "input_tokens", "output_tokens",
            "token_details", "duration_ms", "datetime_utc", "response_json"))
        + ", " + ", ".join(_valid(source, "turns", n, "t") for n in ("options_json", "token_details", "response_json"))
        + " FROM temp._lf_want w CROSS JOIN turns t ON t.id = w.id ORDER BY t.id"
    ).fetchall()
    if not rows:
        return {}, []
    tree = tree or _Tree(source)
    tree.load({h for row in rows for h in (row[2], row[3]) if h is not None})
    segments = {}
    for row in rows:
        segments[row[0]] = tree.segments(row[2], row[3])
    needed = {h for inp, out, system in segments.values() for h in (*inp, *out, *([system] if system else []))}
    parts = _Parts(source, needed, atts, problems)
    threads = _threads(source)
    extras = _turn_extras(source)
    out_threads: dict[str, Thread] = {}
    turns: list[Turn] = []
    for row in rows:
        try:
            turn = _turn(row, segments[row[0]], parts, extras)
        except Problem as exc:
            problems.append(f"llm turn {row[0]}: {exc}")
            continue
        v = turn.values
        cid = v["conversation_id"]
        if cid not in out_threads:
            name, created = threads.get(cid, (None, None))
            try:
                created_utc = utc(created, "thread time") if created else v["datetime_utc"]
            except Problem:
                created_utc = v["datetime_utc"]
            out_threads[cid] = Thread(cid, name, v["model"], min(created_utc, v["datetime_utc"]))
        turns.append(turn)
    return out_threads, turns


class _Tree:
    """Parent links and roles of the messages a batch of turns needs, and memoised chain roots.

    Only the chains of the current batch are held, so memory follows the
    batch and not the file: ``load`` reads them in one recursive query that
    stops at the ends of the previous batch's turns, whose roots are
    remembered. A walk that passes such a stop reads the rest of its chain
    on demand, so the result is the same as with the whole tree in memory.
    """

    def __init__(self, source: LlmSource) -> None:
        self.conn = source.conn
        self.node: dict[str, tuple[str | None, str | None] | None] = {}  # None: no such message
        self._root: dict[str, str] = {}
        self._ends: set[str] = set()
        for table in ("_lf_stop", "_lf_start"):
            self.conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table} (hash TEXT PRIMARY KEY)")

    def load(self, ends: set[str]) -> None:
        """Read the chains above ``ends`` (the parent and tip hashes of a batch's turns)."""
        self._root = {h: self._root[h] for h in self._ends if h in self._root}
        self._ends = ends
        self.node = {}
        self._fill("_lf_stop", self._root)
        self._read(ends)

    def _fill(self, table: str, hashes: Iterable[str]) -> None:
        self.conn.execute(f"DELETE FROM temp.{table}")
        self.conn.executemany(f"INSERT OR IGNORE INTO temp.{table} (hash) VALUES (?)", [(h,) for h in hashes])

    def _read(self, starts: Iterable[str]) -> None:
        self._fill("_lf_start", starts)
        # Each step reads a message once, its parent link and role with it. UNION
        # (not UNION ALL) ends a walk at a message already reached: a cycle too.
        for h, found, parent, role in self.conn.execute(
            "WITH RECURSIVE up(h, found, parent, role) AS ("
            "SELECT s.hash, m.hash IS NOT NULL, m.parent_hash, m.role FROM temp._lf_start s "
            "LEFT JOIN messages m ON m.hash = s.hash "
            "UNION SELECT up.parent, m.hash IS NOT NULL, m.parent_hash, m.role FROM up "
            "LEFT JOIN messages m ON m.hash = up.parent "
            "WHERE up.parent IS NOT NULL AND up.h NOT IN (SELECT hash FROM temp._lf_stop)) "
            "SELECT h, found, parent, role FROM up"
        ):
            self.node[h] = (parent, role) if found else None

    def get(self, h: str) -> tuple[str | None, str | None] | None:
        """``(parent, role)`` of message ``h``, or None when llm's file has no such message."""
        if h not in self.node:
            self._read([h])  # above a stop: the rest of that chain
        return self.node.get(h)

    def role(self, h: str) -> str | None:
        node = self.get(h)
        return None if node is None else node[1]

    def root(self, start: str) -> str:
        path: list[str] = []
        seen: set[str] = set()
        h = start
        while True:
            if h in self._root:
                top = self._root[h]
                break
            path.append(h)
            seen.add(h)
            node = self.get(h)
            up = None if node is None else node[0]
            if up is None or up in seen or self.get(up) is None:
                top = h
                break
            h = up
        for item in path:
            self._root[item] = top
        return top

    def segments(self, parent: str | None, tip: str | None) -> tuple[list[str], list[str], str | None]:
        inputs: list[str] = []
        seen: set[str] = set()
        h = parent
        while h is not None and h not in seen:
            node = self.get(h)
            if node is None or node[1] not in ("user", "tool"):
                break
            inputs.append(h)
            seen.add(h)
            h = node[0]
        inputs.reverse()
        outputs: list[str] = []
        seen = set()
        h = tip
        while h is not None and h != parent and h not in seen:
            node = self.get(h)
            if node is None:
                break
            outputs.append(h)
            seen.add(h)
            h = node[0]
        outputs.reverse()
        start = parent or tip
        system = None
        if start is not None and self.get(start) is not None:
            top = self.root(start)
            if self.role(top) == "system":
                system = top
        return inputs, outputs, system


class _Parts:
    """Parsed parts of the needed messages, with fragments and attachments resolved."""

    def __init__(self, source: LlmSource, needed: set[str], atts: Attachments, problems: list[str]) -> None:
        self.by_message: dict[str, list[tuple[str, str | None, str | None, dict[str, Any] | None]]] = (
            defaultdict(list))
        self.bad: dict[str, str] = {}
        q = source.conn.execute
        q("CREATE TEMP TABLE IF NOT EXISTS _lf_msgs (hash TEXT PRIMARY KEY)")
        q("DELETE FROM temp._lf_msgs")
        source.conn.executemany("INSERT OR IGNORE INTO temp._lf_msgs (hash) VALUES (?)", [(h,) for h in needed])
        # CROSS JOIN keeps the batch's short list outside: SQLite knows nothing of
        # a temp table's size and would otherwise scan every part of the file.
        select = ("SELECT p.message_hash, p.position, p.type, " + source.col("parts", "tool_name", "p")
                  + ", p.text, p.payload FROM temp._lf_msgs m CROSS JOIN parts p ON p.message_hash = m.hash")
        fragment_ids: set[int] = set()
        attachment_ids: set[str] = set()
        # Unordered: sorting every part's text in SQLite costs more than
        # putting the few parts of each message in order afterwards.
        positions: dict[str, list[int]] = defaultdict(list)
        for h, position, kind, tool, text, payload in q(select):
            if h not in needed:
                continue
            data = None
            if payload:
                try:
                    data = json.loads(payload)
                except ValueError:
                    self.bad[h] = f"a {kind} part's payload is not valid JSON"
                    continue
                if not isinstance(data, dict):
                    self.bad[h] = f"a {kind} part's payload is not an object"
                    continue
                for piece in data.get("text_ref") or []:
                    if isinstance(piece, dict) and isinstance(piece.get("fragment"), int):
                        fragment_ids.add(piece["fragment"])
                for ref in _attachment_refs(data):
                    attachment_ids.add(ref)
            self.by_message[h].append((kind, tool, text, data))
            positions[h].append(position if isinstance(position, int) else 0)
        for h, order in positions.items():
            if len(order) > 1 and order != sorted(order):
                ranked = sorted(range(len(order)), key=order.__getitem__)
                self.by_message[h] = [self.by_message[h][i] for i in ranked]
        self.fragments = _load(source, "SELECT id, content FROM fragments WHERE id IN ({})", fragment_ids)
        self.attachments: dict[str, str] = {}
        if attachment_ids and source.has("attachments", "id"):
            cols = ", ".join(source.col("attachments", n) for n in ("type", "path", "url", "content"))
            for aid, mime, path, url, content in _rows(
                    source, f"SELECT id, {cols} FROM attachments WHERE id IN ({{}})", attachment_ids):
                try:
                    self.attachments[aid] = atts.add(aid, mime, path, url, content)
                except Problem as exc:
                    problems.append(f"llm attachment {aid}: {exc}")

    def text(self, text: str | None, data: dict[str, Any] | None) -> str:
        if text is not None:
            return text
        if data is None:
            return ""
        if "text_ref" in data:
            return "".join(
                p["literal"] if "literal" in p else self.fragments.get(p.get("fragment"), "")
                for p in data["text_ref"] if isinstance(p, dict))
        value = data.get("text")
        return value if isinstance(value, str) else ""

    def attachment(self, ref: str) -> str:
        if ref not in self.attachments:
            raise Problem(f"attachment {ref} is not in the attachments table")
        return self.attachments[ref]


def _attachment_refs(data: dict[str, Any]) -> list[str]:
    refs = []
    att = data.get("attachment")
    if isinstance(att, dict) and isinstance(att.get("id"), str):
        refs.append(att["id"])
    for item in data.get("attachments") or []:
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            refs.append(item["id"])
    return refs


def _valid(source: LlmSource, table: str, name: str, alias: str) -> str:
    return f'json_valid({alias}."{name}")' if source.has(table, name) else "NULL"


def _rows(source: LlmSource, sql: str, keys: set[Any]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    items = sorted(keys, key=str)
    for i in range(0, len(items), _CHUNK):
        chunk = items[i:i + _CHUNK]
        out += source.conn.execute(sql.format(", ".join("?" * len(chunk))), chunk).fetchall()
    return out


def _load(source: LlmSource, sql: str, keys: set[Any]) -> dict[Any, Any]:
    if not keys or not source.has("fragments", "id", "content"):
        return {}
    return {k: v for k, v in _rows(source, sql, keys)}


def _threads(source: LlmSource) -> dict[str, tuple[str | None, str | None]]:
    if not source.has("threads", "id"):
        return {}
    sql = (f"SELECT id, {source.col('threads', 'name')}, {source.col('threads', 'datetime_utc')} FROM threads "
           "WHERE id IN (SELECT thread_id FROM temp._lf_want w CROSS JOIN turns t ON t.id = w.id)")
    return {str(r[0]).lower(): (r[1], r[2]) for r in source.conn.execute(sql) if r[0] is not None}


def _turn_extras(source: LlmSource) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = defaultdict(dict)
    q = source.conn.execute
    if source.has("turn_fragments", "turn_id", "fragment_id", "kind") and source.has("fragments", "hash"):
        for tid, kind, hash_, src in q(
            f"SELECT tf.turn_id, tf.kind, f.hash, {source.col('fragments', 'source', 'f')} FROM temp._lf_want w "
            "CROSS JOIN turn_fragments tf ON tf.turn_id = w.id JOIN fragments f ON f.id = tf.fragment_id "
            'ORDER BY tf.turn_id, tf.kind, tf."order"'):
            key = "llm:system_fragments" if kind == "system" else "llm:fragments"
            out[tid].setdefault(key, []).append({"hash": hash_, "source": src})
    if source.has("turn_tools", "turn_id", "tool_id") and source.has("tools", "id", "name"):
        for tid, name in q("SELECT tt.turn_id, t.name FROM temp._lf_want w "
                           "CROSS JOIN turn_tools tt ON tt.turn_id = w.id JOIN tools t ON t.id = tt.tool_id "
                           "ORDER BY tt.turn_id, t.name"):
            out[tid].setdefault("llm:tools", []).append(name)
    if source.has("schemas", "id", "content") and source.has("turns", "schema_id"):
        for tid, content in q("SELECT t.id, s.content FROM temp._lf_want w CROSS JOIN turns t ON t.id = w.id "
                              "JOIN schemas s ON s.id = t.schema_id"):
            try:
                out[tid]["llm:schema"] = json.loads(content)
            except (TypeError, ValueError):
                out[tid]["llm:schema"] = content
    return out


def _turn(row: tuple[Any, ...], segment: tuple[list[str], list[str], str | None], parts: _Parts,
          extras: dict[str, dict[str, Any]]) -> Turn:
    (tid, thread, _parent, _tip, model, resolved, options_json, _schema, in_tok, out_tok, token_details,
     duration, when, response_json, options_ok, details_ok, response_ok) = row
    inputs, outputs, system_hash = segment
    for h in (*inputs, *outputs, *([system_hash] if system_hash else [])):
        if h in parts.bad:
            raise Problem(parts.bad[h])
    rid = ulid(tid, "id")
    prompt: list[str] = []
    response: list[str] = []
    reasoning: list[str] = []
    out_parts: list[tuple[Any, ...]] = []
    for h in inputs:
        for kind, tool, text, data in parts.by_message.get(h, []):
            if kind == "text":
                prompt.append(parts.text(text, data))
            else:
                out_parts += _part("user", kind, tool, text, data, parts)
    replies: list[tuple[Any, ...]] = []
    for h in outputs:
        for kind, tool, text, data in parts.by_message.get(h, []):
            if kind == "text":
                response.append(parts.text(text, data))
            elif kind == "reasoning":
                reasoning.append(parts.text(text, data))
            replies += _part("assistant", kind, tool, text, data, parts)
    # Plain text alone is the response column; parts keep the order only
    # when there is more to it (reasoning, tool calls, generated files).
    if any(p[1] != "text" for p in replies):
        out_parts += replies
    system = None
    if system_hash:
        system = "".join(parts.text(t, d) for k, _, t, d in parts.by_message.get(system_hash, []) if k == "text")
    values = {
        "id": rid, "conversation_id": ulid(thread, "thread_id") if thread else rid,
        "model": model or "unknown", "resolved_model": resolved, "prompt": "".join(prompt) or None,
        "system": system or None, "prompt_json": None,
        "options_json": json_text(options_json, "options_json", empty_is_null=True, valid=options_ok),
        "response": "".join(response) or None,
        "response_json": json_text(response_json, "response_json", valid=response_ok),
        "reasoning": "".join(reasoning) or None, "input_tokens": in_tok, "output_tokens": out_tok,
        "token_details": json_text(token_details, "token_details", empty_is_null=True, valid=details_ok),
        "duration_ms": duration, "datetime_utc": utc(when, "datetime_utc"),
        "finish_reason": None, "simulated": 0, "extras": dumps(extras.get(tid) or None),
    }
    return Turn(values, out_parts)


def _part(role: str, kind: str, tool: str | None, text: str | None, data: dict[str, Any] | None,
          parts: _Parts) -> list[tuple[Any, ...]]:
    d = data or {}
    meta: dict[str, Any] = {}
    if d.get("provider_metadata"):
        meta["llm:provider_metadata"] = d["provider_metadata"]
    if d.get("server_executed"):
        meta["llm:server_executed"] = True
    if d.get("redacted"):
        meta["llm:redacted"] = True
    extras = dumps(meta or None)
    call_id = d.get("tool_call_id")
    if kind in ("text", "reasoning"):
        return [(role, kind, parts.text(text, data), None, None, None, None, None, extras)]
    if kind == "tool_call":
        return [(role, "tool_call", None, call_id, d.get("name") or tool, dumps(d.get("arguments")), None, None,
                 extras)]
    if kind == "tool_result":
        output = d.get("output")
        if output is not None and not isinstance(output, str):
            output = json.dumps(output, ensure_ascii=False)
        out: list[tuple[Any, ...]] = [
            (role, "tool_result", output, call_id, d.get("name") or tool, None, d.get("exception"), None, extras)]
        for ref in _attachment_refs(d):
            out.append((role, "attachment", None, call_id, None, None, None, parts.attachment(ref), None))
        return out
    if kind == "attachment":
        return [(role, "attachment", None, None, None, None, None, parts.attachment(ref), extras)
                for ref in _attachment_refs(d)]
    raise Problem(f"a part of type {kind!r} is not one this version knows")


MessageTree = _Tree
