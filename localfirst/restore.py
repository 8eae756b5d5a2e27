"""``localfirst import jsonl``: put back what ``export --format jsonl`` wrote, exactly.

A line is a response in the shape of ``logs list --json`` (see
``docs/cli.md``), plus what a restore needs beyond it: on the first line of
each conversation its row (``"conversation"``: id, name, model, created_utc,
name_hlc), and the bytes of every attachment held (``content_base64``). A full
export ends with one line per template (``"template"`` and its
``"versions"``).

The file is untrusted: every line is checked before it is applied, and a line
that fails makes the whole import fail with nothing applied (one transaction).
An id already here, or deleted here (it has a tombstone), is skipped, so
importing twice changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from . import hlc, ids
from .db import insert_rows
from .errors import BadInput
from .records import PART_TYPES, ROLES, url_attachment_id
from .store import PART_COLUMNS, RESPONSE_COLUMNS, Store

__all__ = ["import_jsonl", "import_jsonl_path", "ImportResult", "CONVERSATION_KEYS", "TEMPLATE_KEYS", "VERSION_KEYS",
           "LABEL_KEYS"]

BATCH = 2000

RESPONSE_KEYS = frozenset({
    "id", "conversation_id", "conversation_name", "model", "resolved_model", "prompt", "system", "prompt_json",
    "options", "response", "response_json", "reasoning", "input_tokens", "output_tokens", "token_details",
    "duration_ms", "datetime_utc", "finish_reason", "simulated", "extras", "parts", "conversation",
    # llm's keys of `logs list --json`, derived from the ones above (parts, extras, options): read past, as
    # the rows they come from are restored from their sources.
    "attachments", "conversation_model", "options_json", "prompt_fragments", "schema_json", "system_fragments",
    "template", "tool_calls", "tool_results", "tools",
})
CONVERSATION_KEYS = ("id", "name", "model", "created_utc", "name_hlc")
TEMPLATE_KEYS = ("id", "name", "created_utc")
LABEL_KEYS = ("label", "version_id", "hlc")
VERSION_KEYS = ("id", "hlc", "prompt", "system", "model", "options_json", "defaults_json", "extras",
                "created_utc")
_PART_KEYS = {
    "text": {"text"}, "reasoning": {"text"}, "tool_call": {"tool_call_id", "name", "arguments"},
    "tool_result": {"tool_call_id", "name", "output", "error"}, "attachment": {"attachment"},
}
_ATTACHMENT_KEYS = frozenset({"id", "mime_type", "size", "path", "url", "content_base64"})
_TIME_RE = re.compile(r"\d{4}-[01]\d-[0-3]\dT[0-2]\d:[0-5]\d:[0-6]\d\.\d{6}Z", re.ASCII)
_HLC_RE = re.compile(r"\d{13}\.\d{4}\.[0-9a-hjkmnp-tv-z]{26}", re.ASCII)
_SHA256_RE = re.compile(r"[0-9a-f]{64}", re.ASCII)
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}", re.ASCII)


@dataclass
class ImportResult:
    lines: int = 0
    added: dict[str, int] = field(default_factory=dict)
    present: int = 0
    deleted: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"lines": self.lines, "added": self.added, "already_here": self.present,
                "deleted_here": self.deleted}

    def summary(self, source: str) -> str:
        added = ", ".join(f"{n} {t}" for t, n in self.added.items() if n) or "nothing"
        return (f"Imported {source}: {self.lines} lines; added {added}; "
                f"skipped {self.present} already here, {self.deleted} deleted here")


class _Bad(Exception):
    """A value of the line being read is not what it must be."""


# -- checking one line -------------------------------------------------------


def _text(value: Any, what: str, *, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise _Bad(f"{what} must be a string")
    return value


def _int(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if type(value) is not int or not -(2**63) <= value < 2**63:
        raise _Bad(f"{what} must be an integer")
    return value


def _match(value: Any, pattern: re.Pattern[str], what: str, form: str) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise _Bad(f"{what} must be {form}")
    return value


def _stamp(value: Any, what: str) -> str:
    stamp = _match(value, _HLC_RE, what, "an HLC")
    if not hlc.plausible(stamp):
        raise _Bad(f"{what} is more than a day ahead of this machine's clock")
    return stamp


def _ulid(value: Any, what: str) -> str:
    if not isinstance(value, str) or not ids.is_id(value) or value != value.lower():
        raise _Bad(f"{what} must be a lower-case ULID")
    return value


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _object(value: Any, what: str, *, namespaced: bool = False) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _Bad(f"{what} must be an object")
    if namespaced:
        for key in value:
            ns, sep, name = key.partition(":")
            if not (ns and sep and name):
                raise _Bad(f"{what} key {key!r} must be namespaced, like \"anthropic:cache_control\"")
    return _json(value)


def _json_text(value: Any, what: str) -> str | None:
    """A *_json column given as its text: it must hold one JSON object."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Bad(f"{what} must be text holding a JSON object")
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):
        raise _Bad(f"{what} is not JSON") from None
    if not isinstance(parsed, dict):
        raise _Bad(f"{what} must hold a JSON object")
    return value


def _keys(data: Any, allowed: Iterable[str], what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise _Bad(f"{what} must be a JSON object")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise _Bad(f"{what} has an unknown key {unknown[0]!r}")
    return data


def _attachment(data: Any, what: str) -> tuple[Any, ...]:
    data = _keys(data, _ATTACHMENT_KEYS, what)
    aid = _match(data.get("id"), _SHA256_RE, f"{what}.id", "a sha256 (64 lower-case hex digits)")
    size = _int(data.get("size"), f"{what}.size")
    if size is None or size < 0:
        raise _Bad(f"{what}.size must be a whole number of bytes")
    url = _text(data.get("url"), f"{what}.url")
    content = None
    if data.get("content_base64") is not None:
        try:
            content = base64.b64decode(_text(data["content_base64"], f"{what}.content_base64") or "",
                                       validate=True)
        except (binascii.Error, ValueError):
            raise _Bad(f"{what}.content_base64 is not valid base64") from None
        if hashlib.sha256(content).hexdigest() != aid:
            raise _Bad(f"{what}: the bytes do not match the attachment id {aid}")
        if len(content) != size:
            raise _Bad(f"{what}: size {size} is not the length of the bytes ({len(content)})")
    elif url is not None and data.get("path") is None and aid != url_attachment_id(url):
        raise _Bad(f"{what}: the id of an attachment known by URL must be the hash of its URL")
    return (aid, _text(data.get("mime_type"), f"{what}.mime_type"), size, content,
            _text(data.get("path"), f"{what}.path"), url)


def _part(rid: str, ordinal: int, data: Any, what: str) -> tuple[tuple[Any, ...], tuple[Any, ...] | None]:
    if not isinstance(data, dict):
        raise _Bad(f"{what} must be a JSON object")
    kind = data.get("type")
    if kind not in PART_TYPES:
        raise _Bad(f"{what}.type must be one of {', '.join(PART_TYPES)}")
    data = _keys(data, {"type", "role", "extras"} | _PART_KEYS[kind], what)
    role = data.get("role")
    if role not in ROLES:
        raise _Bad(f"{what}.role must be 'user' or 'assistant'")
    text = name = call = error = arguments = None
    attachment = None
    if kind in ("text", "reasoning"):
        text = _text(data.get("text"), f"{what}.text")
    elif kind == "tool_call":
        call, name = _text(data.get("tool_call_id"), f"{what}.tool_call_id"), _text(data.get("name"), f"{what}.name")
        arguments = _json(data.get("arguments"))
    elif kind == "tool_result":
        call, name = _text(data.get("tool_call_id"), f"{what}.tool_call_id"), _text(data.get("name"), f"{what}.name")
        text, error = _text(data.get("output"), f"{what}.output"), _text(data.get("error"), f"{what}.error")
    elif data.get("attachment") is not None:
        attachment = _attachment(data["attachment"], f"{what}.attachment")
    row = (rid, ordinal, role, kind, text, call, name, arguments, error,
           attachment[0] if attachment else None, _object(data.get("extras"), f"{what}.extras", namespaced=True))
    return row, attachment


@dataclass
class _Line:
    response: tuple[Any, ...]
    parts: list[tuple[Any, ...]]
    attachments: list[tuple[Any, ...]]
    conversation: tuple[Any, ...] | None


def _response(data: dict[str, Any]) -> _Line:
    data = _keys(data, RESPONSE_KEYS, "the response")
    rid = _ulid(data.get("id"), "id")
    cid = _ulid(data.get("conversation_id"), "conversation_id")
    model = _text(data.get("model"), "model", required=True)
    if not model:
        raise _Bad("model must not be empty")
    simulated = data.get("simulated", False)
    if not isinstance(simulated, bool):
        raise _Bad("simulated must be true or false")
    _text(data.get("conversation_name"), "conversation_name")
    values = {
        "id": rid, "conversation_id": cid, "model": model,
        "resolved_model": _text(data.get("resolved_model"), "resolved_model"),
        "prompt": _text(data.get("prompt"), "prompt"), "system": _text(data.get("system"), "system"),
        "prompt_json": _json(data.get("prompt_json")), "options_json": _object(data.get("options"), "options"),
        "response": _text(data.get("response"), "response"), "response_json": _json(data.get("response_json")),
        "reasoning": _text(data.get("reasoning"), "reasoning"),
        "input_tokens": _int(data.get("input_tokens"), "input_tokens"),
        "output_tokens": _int(data.get("output_tokens"), "output_tokens"),
        "token_details": _object(data.get("token_details"), "token_details"),
        "duration_ms": _int(data.get("duration_ms"), "duration_ms"),
        "datetime_utc": _match(data.get("datetime_utc"), _TIME_RE, "datetime_utc",
                               "a UTC time like 2026-11-20T22:33:18.123456Z"),
        "finish_reason": _text(data.get("finish_reason"), "finish_reason"), "simulated": int(simulated),
        "extras": _object(data.get("extras"), "extras", namespaced=True),
    }
    parts_in = data.get("parts") or []
    if not isinstance(parts_in, list):
        raise _Bad("parts must be a list")
    parts, attachments = [], []
    for i, p in enumerate(parts_in):
        row, att = _part(rid, i, p, f"parts[{i}]")
        parts.append(row)
        if att is not None:
            attachments.append(att)
    conversation = None
    if data.get("conversation") is not None:
        c = _keys(data["conversation"], CONVERSATION_KEYS, "conversation")
        if c.get("id") != cid:
            raise _Bad("conversation.id must be the response's conversation_id")
        stamp = c.get("name_hlc", "")
        if stamp != "":
            _stamp(stamp, "conversation.name_hlc")
        conversation = (cid, _text(c.get("name"), "conversation.name"), _text(c.get("model"), "conversation.model"),
                        _match(c.get("created_utc"), _TIME_RE, "conversation.created_utc", "a UTC time"), stamp)
    return _Line(tuple(values[c] for c in RESPONSE_COLUMNS), parts, attachments, conversation)


def _template(data: dict[str, Any]) -> tuple[tuple[Any, ...], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    data = _keys(data, {"template", "versions", "labels"}, "the template line")
    t = _keys(data["template"], TEMPLATE_KEYS, "template")
    tid = _ulid(t.get("id"), "template.id")
    row = (tid, _match(t.get("name"), _NAME_RE, "template.name", "a template name"),
           _match(t.get("created_utc"), _TIME_RE, "template.created_utc", "a UTC time"))
    versions = data.get("versions")
    if not isinstance(versions, list):
        raise _Bad("versions must be a list")
    out = []
    for i, v in enumerate(versions):
        v = _keys(v, VERSION_KEYS, f"versions[{i}]")
        out.append((
            _ulid(v.get("id"), f"versions[{i}].id"), tid, _stamp(v.get("hlc"), f"versions[{i}].hlc"),
            *(_text(v.get(k), f"versions[{i}].{k}") for k in ("prompt", "system", "model")),
            *(_json_text(v.get(k), f"versions[{i}].{k}") for k in ("options_json", "defaults_json", "extras")),
            _match(v.get("created_utc"), _TIME_RE, f"versions[{i}].created_utc", "a UTC time"),
        ))
    labels = data.get("labels", [])
    if not isinstance(labels, list):
        raise _Bad("labels must be a list")
    marks = []
    for i, lb in enumerate(labels):
        lb = _keys(lb, LABEL_KEYS, f"labels[{i}]")
        marks.append((tid, _match(lb.get("label"), _NAME_RE, f"labels[{i}].label", "a label name"),
                      _ulid(lb.get("version_id"), f"labels[{i}].version_id"),
                      _stamp(lb.get("hlc"), f"labels[{i}].hlc")))
    return row, out, marks


# -- applying ------------------------------------------------------------------

_INSERT_RESPONSE = f"INSERT INTO responses ({', '.join(RESPONSE_COLUMNS)}, rowid)"
_INSERT_PART = f"INSERT INTO parts ({', '.join(PART_COLUMNS)})"


class _Applier:
    def __init__(self, conn: sqlite3.Connection, result: ImportResult) -> None:
        self.conn = conn
        self.result = result
        self.conversations: set[str] = set()  # given by a line of this file
        self.seen: set[str] = set()  # response ids of this file
        self.lines: list[_Line] = []

    def count(self, table: str, n: int) -> None:
        self.result.added[table] = self.result.added.get(table, 0) + max(n, 0)

    def conversation(self, row: tuple[Any, ...]) -> None:
        self.conversations.add(row[0])
        if self._dead("conversations", row[0]):
            return
        hlc.observe(self.conn, row[4] or None)
        # The highest name_hlc names the conversation, as when two machines rename it.
        cur = self.conn.execute(
            "INSERT INTO conversations (id, name, model, created_utc, name_hlc) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET name = excluded.name, name_hlc = excluded.name_hlc "
            "WHERE excluded.name_hlc > name_hlc "
            "OR (excluded.name_hlc = name_hlc AND coalesce(excluded.name, '') > coalesce(name, ''))", row)
        self.count("conversations", cur.rowcount)

    def _dead(self, table: str, key: str) -> bool:
        return self.conn.execute("SELECT 1 FROM tombstones WHERE tbl = ? AND key = ?", [table, key]
                                 ).fetchone() is not None

    def response(self, line: _Line) -> None:
        rid = line.response[0]
        if rid in self.seen:
            raise _Bad(f"response {rid} is given twice in this file")
        self.seen.add(rid)
        self.lines.append(line)
        if len(self.lines) >= BATCH:
            self.flush()

    def flush(self) -> None:
        lines, self.lines = self.lines, []
        if not lines:
            return
        keys = json.dumps([line.response[0] for line in lines])
        here = {r[0] for r in self.conn.execute(
            "SELECT id FROM responses WHERE id IN (SELECT value FROM json_each(?))", [keys])}
        dead = {r[0] for r in self.conn.execute(
            "SELECT key FROM tombstones WHERE tbl = 'responses' AND key IN (SELECT value FROM json_each(?))", [keys])}
        dead |= {line.response[0] for line in lines if self._dead("conversations", line.response[1])}
        fresh = [line for line in lines if line.response[0] not in here | dead]
        self.result.present += len(here)
        self.result.deleted += len(dead - here)
        atts = {a[0]: a for line in fresh for a in line.attachments}
        self.count("attachments", insert_rows(
            self.conn, "INSERT INTO attachments (id, mime_type, size, content, path, url)", list(atts.values()),
            width=6, tail="ON CONFLICT DO NOTHING"))
        self.count("responses", insert_rows(self.conn, _INSERT_RESPONSE, [line.response for line in fresh],
                                            width=len(RESPONSE_COLUMNS), numbered="responses"))
        self.count("parts", insert_rows(self.conn, _INSERT_PART, [p for line in fresh for p in line.parts],
                                        width=len(PART_COLUMNS)))

    def template(self, row: tuple[Any, ...], versions: list[tuple[Any, ...]], labels: list[tuple[Any, ...]]) -> None:
        if self._dead("templates", row[0]):
            self.result.deleted += 1
            return
        if self.conn.execute("SELECT 1 FROM templates WHERE id = ? AND team IS NOT NULL", [row[0]]).fetchone():
            raise BadInput(f"template {row[0]} of the file is a team's template here: a file restores personal "
                           "templates only; nothing of the file was imported")
        self.count("templates", self.conn.execute(
            "INSERT INTO templates (id, name, created_utc) VALUES (?, ?, ?) ON CONFLICT DO NOTHING", row).rowcount)
        for v in versions:
            hlc.observe(self.conn, v[2])
            self.count("template_versions", self.conn.execute(
                "INSERT INTO template_versions (id, template_id, hlc, prompt, system, model, options_json, "
                "defaults_json, extras, created_utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                v).rowcount)
        for mark in labels:
            hlc.observe(self.conn, mark[3])
            self.count("template_labels", self.conn.execute(
                "INSERT INTO template_labels (template_id, label, version_id, hlc) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (template_id, label) DO UPDATE SET version_id = excluded.version_id, hlc = excluded.hlc "
                "WHERE excluded.hlc > template_labels.hlc", mark).rowcount)


def _lines(stream: Iterable[str]) -> Iterator[tuple[int, Any]]:
    for number, text in enumerate(stream, 1):
        if not text.strip():
            continue
        try:
            yield number, json.loads(text)
        except (ValueError, RecursionError):
            raise BadInput(f"line {number} is not JSON; nothing was imported") from None


def import_jsonl(store: Store, stream: Iterable[str]) -> ImportResult:
    """Apply every line of ``stream`` in one transaction; a bad line fails it all.

    A response's conversation must be given (``"conversation"``) on its own
    line or an earlier one.
    """
    result = ImportResult()
    with store.write() as conn:
        applier = _Applier(conn, result)
        for number, data in _lines(stream):
            result.lines += 1
            try:
                if isinstance(data, dict) and "template" in data and "id" not in data:
                    applier.template(*_template(data))
                    continue
                if not isinstance(data, dict):
                    raise _Bad("a line must be a JSON object")
                line = _response(data)
                if line.conversation is not None:
                    applier.conversation(line.conversation)
                elif line.response[1] not in applier.conversations:
                    raise _Bad(f"its conversation {line.response[1]} is not given on it or an earlier line")
                applier.response(line)
            except _Bad as exc:
                raise BadInput(f"line {number}: {exc}; nothing was imported") from None
        applier.flush()
    return result


def import_jsonl_path(store: Store | Callable[[], Store], path: str, *, stdin: TextIO | None = None) -> ImportResult:
    """Import the file at ``path`` (``-``: ``stdin``). ``store`` may be a function that opens it,
    so that a file that cannot be read does not create the database."""
    if path == "-":
        if stdin is None:
            raise BadInput("no standard input to read")
        stream: TextIO = stdin
    else:
        target = Path(path).expanduser()
        if not target.is_file():
            raise BadInput(f"{target} is not a file" if target.exists() else f"{target} does not exist")
        try:
            stream = target.open(encoding="utf-8")
        except OSError as exc:
            raise BadInput(f"cannot read {target}: {exc.strerror}") from exc
    try:
        return import_jsonl(store if isinstance(store, Store) else store(), stream)
    except UnicodeDecodeError:
        raise BadInput(f"{path} is not UTF-8 text; nothing was imported") from None
    finally:
        if stream is not stdin:
            stream.close()
