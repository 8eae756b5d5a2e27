"""A conversation as chat-completions messages.

The history is replayed in the order it happened: for each earlier exchange,
the tool results it carried back (``role: tool``), its prompt (``user``), then
what the model said and the tools it called (``assistant``). Simulated turns
are replayed like any other. A system message is sent at the start and again
wherever the system prompt changed.
"""

from __future__ import annotations

import json
from typing import Any

from ..records import Part, Response

__all__ = ["build_messages", "exchange_messages", "without_inline_bytes"]


def _arguments_text(arguments: Any) -> str:
    if arguments is None:
        return "{}"
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


def _tool_results(parts: list[Part]) -> list[dict[str, Any]]:
    out = []
    for p in parts:
        if p.type == "tool_result":
            content = p.text if p.text is not None else (f"Error: {p.error}" if p.error else "")
            message: dict[str, Any] = {"role": "tool", "tool_call_id": p.tool_call_id or "", "content": content}
            if p.tool_name:
                message["name"] = p.tool_name
            out.append(message)
    return out


def _assistant(r: Response) -> dict[str, Any] | None:
    calls = [
        {
            "id": p.tool_call_id or f"call_{i}",
            "type": "function",
            "function": {"name": p.tool_name or "", "arguments": _arguments_text(p.arguments)},
        }
        for i, p in enumerate(r.parts)
        if p.type == "tool_call" and p.role == "assistant"
    ]
    if r.response is None and not calls:
        return None
    message: dict[str, Any] = {"role": "assistant", "content": r.response}
    if calls:
        message["tool_calls"] = calls
    return message


def exchange_messages(
    *, prompt: str | None, system: str | None, parts: list[Part], current_system: str | None
) -> list[dict[str, Any]]:
    """The messages one outgoing exchange adds (system when changed, tool results, prompt)."""
    out: list[dict[str, Any]] = []
    if system and system != current_system:
        out.append({"role": "system", "content": system})
    out.extend(_tool_results(parts))
    sent = [_attachment(p) for p in parts if p.type == "attachment" and p.attachment is not None]
    files = [a for a in sent if a is not None]
    if files:
        text = [{"type": "text", "text": prompt}] if prompt else []
        out.append({"role": "user", "content": [*files, *text]})
    elif prompt is not None:
        out.append({"role": "user", "content": prompt})
    return out


def _attachment(part: Part) -> dict[str, Any] | None:
    """An attachment as a content part: images as ``image_url``, anything else as ``file``."""
    a = part.attachment
    if a is None or (a.content is None and not a.url):
        return None
    mime = a.mime_type or "application/octet-stream"
    if a.content is None:
        url = a.url or ""
    else:
        import base64

        url = f"data:{mime};base64,{base64.b64encode(a.content).decode()}"
    if mime.startswith("image/"):
        return {"type": "image_url", "image_url": {"url": url}}
    name = (a.path or a.url or "attachment").rstrip("/").rpartition("/")[2] or "attachment"
    return {"type": "file", "file": {"filename": name, "file_data": url}}


def build_messages(
    history: list[Response], *, prompt: str | None, system: str | None, parts: list[Part]
) -> tuple[list[dict[str, Any]], int]:
    """Every message to send, and how many of them replay ``history``."""
    messages: list[dict[str, Any]] = []
    current: str | None = None
    for r in history:
        messages += exchange_messages(prompt=r.prompt, system=r.system, parts=r.parts, current_system=current)
        current = r.system or current
        reply = _assistant(r)
        if reply is not None:
            messages.append(reply)
    replayed = len(messages)
    messages += exchange_messages(prompt=prompt, system=system, parts=parts, current_system=current)
    return messages, replayed


def without_inline_bytes(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` with each ``data:`` URL cut to its type: the bytes are stored once, as the attachment."""
    def cut(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: cut(v) for k, v in value.items()}
        if isinstance(value, list):
            return [cut(v) for v in value]
        if isinstance(value, str) and value.startswith("data:") and ";base64," in value:
            return value.partition(",")[0] + ",..."
        return value

    return [cut(m) for m in messages]
