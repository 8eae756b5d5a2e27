"""Text renderings of stored records for the terminal. No I/O here."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from .records import Part, Response
from .store import Conversation, Status

TYPE_CHECKING = False  # typing is not imported at run time: it costs start-up (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "responses_markdown", "responses_short", "markdown_blocks", "short_lines", "json_array",
    "conversations_table", "status_text", "truncate",
]


def truncate(text: str | None, width: int = 100) -> str:
    if not text:
        return ""
    one = " ".join(text.split())
    return one if len(one) <= width else one[: width - 1] + "…"


def _when(r: Response) -> str:
    return (r.datetime_utc or "")[:19].replace("T", " ")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


def _part(p: Part, short: bool) -> str:
    clip = truncate if short else (lambda t, w=0: t or "")
    if p.type == "tool_call":
        return f"### Tool call: {p.tool_name} ({p.tool_call_id or 'no id'})\n\n```json\n{clip(_json(p.arguments))}\n```"
    if p.type == "tool_result":
        head = f"### Tool result: {p.tool_name or ''} ({p.tool_call_id or 'no id'})"
        body = f"\n\n```\n{clip(p.text)}\n```" if p.text else ""
        err = f"\n\nError: {p.error}" if p.error else ""
        return head + body + err
    if p.type == "attachment" and p.attachment is not None:
        a = p.attachment
        where = a.path or a.url or ""
        return f"### Attachment: {a.mime_type or 'unknown type'}, {a.size} bytes {where}".rstrip()
    return ""


def responses_markdown(responses: Iterable[Response], *, truncate_text: bool = False) -> str:
    return "\n\n".join(markdown_blocks(responses, truncate_text=truncate_text))


def markdown_blocks(responses: Iterable[Response], *, truncate_text: bool = False) -> Iterator[str]:
    """One Markdown block per response, as it is read: ``responses_markdown`` joins them with a blank line."""
    clip = truncate if truncate_text else (lambda t, w=0: t or "")
    for r in responses:
        lines = [f"# {_when(r)}    conversation: {r.conversation_id} id: {r.id}", ""]
        model = r.model if not r.resolved_model or r.resolved_model == r.model else f"{r.model} ({r.resolved_model})"
        lines.append(f"Model: **{model}**" + ("  (simulated)" if r.simulated else ""))
        if r.options:
            lines += ["", "Options: " + json.dumps(r.options, ensure_ascii=False)]
        if r.system:
            lines += ["", "## System", "", clip(r.system)]
        lines += ["", "## Prompt", "", clip(r.prompt)]
        user_parts = [_part(p, truncate_text) for p in r.parts if p.role == "user"]
        lines += [x for b in user_parts if b for x in ("", b)]
        if r.reasoning:
            lines += ["", "## Reasoning", "", clip(r.reasoning)]
        lines += ["", "## Response", "", clip(r.response)]
        tool_parts = [_part(p, truncate_text) for p in r.parts if p.role == "assistant"]
        lines += [x for b in tool_parts if b for x in ("", b)]
        if r.input_tokens is not None or r.output_tokens is not None:
            lines += ["", f"Tokens: {r.input_tokens or 0} input, {r.output_tokens or 0} output"]
        yield "\n".join(lines)


def responses_short(responses: Iterable[Response]) -> str:
    return "\n".join(short_lines(responses))


def short_lines(responses: Iterable[Response]) -> Iterator[str]:
    """The lines of ``responses_short``, a response at a time."""
    for r in responses:
        out: list[str] = []
        out.append(f"- model: {r.model}")
        out.append(f"  datetime: {r.datetime_utc}")
        out.append(f"  conversation: {r.conversation_id}")
        out.append(f"  id: {r.id}")
        out.append(f"  prompt: {json.dumps(truncate(r.prompt), ensure_ascii=False)}")
        calls = [p.tool_name for p in r.parts if p.type == "tool_call"]
        if calls:
            out.append(f"  tool_calls: {json.dumps(calls)}")
        atts = sum(1 for p in r.parts if p.type == "attachment")
        if atts:
            out.append(f"  attachments: {atts}")
        yield "\n".join(out)


def json_array(items: Iterable[Any]) -> Iterator[str]:
    """The text of ``json.dumps(list(items), ensure_ascii=False, indent=2)``, an item at a time.

    JSON text never holds a raw newline inside a string, so indenting every
    line of an item by two spaces nests it exactly as the whole list would.
    """
    first = True
    for item in items:
        text = json.dumps(item, ensure_ascii=False, indent=2).replace("\n", "\n  ")
        yield ("[\n  " if first else ",\n  ") + text
        first = False
    yield "[]" if first else "\n]"


def conversations_table(conversations: list[Conversation]) -> str:
    if not conversations:
        return "No conversations."
    rows = [("ID", "LAST", "RESPONSES", "MODEL", "NAME")]
    for c in conversations:
        rows.append((c.id, (c.last_utc or c.created_utc)[:16].replace("T", " "),
                     str(c.responses), c.model or "", c.name or ""))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(
        "  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4] for r in rows
    ).rstrip()


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def status_text(status: Status, *, logging_on: bool) -> str:
    return "\n".join([
        f"Logging is {'ON' if logging_on else 'OFF'} for prompts",
        f"Database: {status.path}",
        f"Conversations: {status.conversations}",
        f"Responses: {status.responses}",
        f"Attachments: {status.attachments}",
        f"File size: {_size(status.size_bytes)}",
    ])
