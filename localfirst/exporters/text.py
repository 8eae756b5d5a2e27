"""``export --format jsonl|markdown``: responses as JSON lines or as readable transcripts."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any, TextIO

from ..errors import NotFound
from ..records import Part, Response
from ..store import Store

__all__ = ["write_jsonl", "write_markdown", "write_templates"]


_CONVERSATION = ("id", "name", "model", "created_utc", "name_hlc")


def _as_text(columns: Iterable[str]) -> str:
    """Whatever another program stored, a line holds text (as the records do)."""
    return ", ".join(f"CAST({c} AS TEXT)" for c in columns)


def write_jsonl(responses: Iterable[Response], out: TextIO, *, store: Store | None = None) -> int:
    """One object per line, in the shape of ``logs list --json``; returns the count.

    With ``store``, each line also carries what ``import jsonl`` needs to
    recreate it exactly (``localfirst.restore``): its conversation's row on
    the conversation's first line, and the bytes of its attachments.
    """
    count = 0
    seen: set[str] = set()
    for r in responses:
        line = r.to_json()
        if store is not None:
            _complete(store, r, line, seen)
        out.write(json.dumps(line, ensure_ascii=False) + "\n")
        count += 1
    return count


def _complete(store: Store, r: Response, line: dict[str, Any], seen: set[str]) -> None:
    cid = r.conversation_id or ""
    if cid not in seen:
        seen.add(cid)
        rows = store.text_rows(f"SELECT {_as_text(_CONVERSATION)} FROM conversations WHERE id = ?",
                               [cid])
        if rows:
            line["conversation"] = dict(zip(_CONVERSATION, rows[0], strict=True))
    for part in line["parts"]:
        att = part.get("attachment")
        if att is not None:
            try:
                content = store.attachment_content(att["id"])
            except NotFound:  # a damaged file: the part names a row that is not there
                continue
            if content is not None:
                att["content_base64"] = base64.b64encode(content).decode()


def write_templates(store: Store, out: TextIO) -> int:
    """One line per personal template with all its versions and labels (``import jsonl`` reads them)."""
    from ..restore import LABEL_KEYS, TEMPLATE_KEYS, VERSION_KEYS

    count = 0
    # Personal templates only: a team's live in the team's library (a restore never files them as one's own).
    for row in store.text_rows(f"SELECT {_as_text(TEMPLATE_KEYS)} FROM templates WHERE team IS NULL "
                               "ORDER BY created_utc, id"):
        versions = store.text_rows(f"SELECT {_as_text(VERSION_KEYS)} FROM template_versions WHERE template_id = ? "
                                   "ORDER BY hlc, id", [row[0]])
        labels = store.text_rows(f"SELECT {_as_text(LABEL_KEYS)} FROM template_labels WHERE template_id = ? "
                                 "ORDER BY label", [row[0]])
        line = {"template": dict(zip(TEMPLATE_KEYS, row, strict=True)),
                "versions": [dict(zip(VERSION_KEYS, v, strict=True)) for v in versions],
                "labels": [dict(zip(LABEL_KEYS, lb, strict=True)) for lb in labels]}
        out.write(json.dumps(line, ensure_ascii=False) + "\n")
        count += 1
    return count


def write_markdown(responses: Iterable[Response], out: TextIO) -> int:
    """A transcript per conversation, oldest first, tool calls and results included."""
    count = 0
    current: str | None = None
    for r in responses:
        if r.conversation_id != current:
            current = r.conversation_id
            if count:
                out.write("\n---\n\n")
            out.write(f"# {r.conversation_name or 'Conversation'}\n\nConversation `{current}`\n\n")
        out.write(_exchange(r))
        count += 1
    return count


def _fence(text: str) -> str:
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return ticks


def _block(text: str, lang: str = "") -> str:
    fence = _fence(text)
    return f"{fence}{lang}\n{text}\n{fence}\n\n"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


def _part(p: Part) -> str:
    if p.type == "tool_call":
        return f"**Tool call** `{p.tool_name}` ({p.tool_call_id or 'no id'}):\n\n" + _block(_json(p.arguments), "json")
    if p.type == "tool_result":
        head = f"**Tool result** `{p.tool_name or ''}` ({p.tool_call_id or 'no id'}):\n\n"
        body = _block(p.text) if p.text else ""
        err = f"Error: {p.error}\n\n" if p.error else ""
        return head + body + err
    if p.type == "attachment" and p.attachment is not None:
        a = p.attachment
        where = a.path or a.url or a.id
        return f"**Attachment** {a.mime_type or 'unknown type'}, {a.size} bytes: {where}\n\n"
    return ""


def _exchange(r: Response) -> str:
    when = (r.datetime_utc or "")[:19].replace("T", " ")
    model = r.model if not r.resolved_model or r.resolved_model == r.model else f"{r.model} ({r.resolved_model})"
    text = [f"## {when} · {model}\n\n", f"Response `{r.id}`\n\n"]
    if r.options:
        text.append(f"Options: `{json.dumps(r.options, ensure_ascii=False)}`\n\n")
    if r.system:
        text.append("### System\n\n" + r.system + "\n\n")
    text.append("### User\n\n" + (r.prompt or "") + "\n\n")
    text += [_part(p) for p in r.parts if p.role == "user"]
    if r.reasoning:
        text.append("### Reasoning\n\n" + r.reasoning + "\n\n")
    text.append("### Assistant\n\n" + (r.response or "") + "\n\n")
    text += [_part(p) for p in r.parts if p.role == "assistant"]
    if r.input_tokens is not None or r.output_tokens is not None:
        text.append(f"Tokens: {r.input_tokens or 0} input, {r.output_tokens or 0} output\n\n")
    return "".join(text)
