"""One response as the messages llm keeps for a turn.

llm stores a turn as its input messages (the system prompt when it changes,
a ``tool`` message holding the tool results the turn carried back, then the
user's text and attachments) followed by the assistant's reply (reasoning,
text, tool calls). The exporter and the bridge hash and write these; the
llm model path (:mod:`localfirst.models.via_llm`) hands them to llm as the
history of a continued conversation. One rule for both, so what a model is
sent is what ``llm -c`` would send from llm's own database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..records import Attachment, Part, Response

__all__ = ["LlmMessage", "turn_messages"]


@dataclass
class LlmMessage:
    role: str
    parts: list[dict[str, Any]] = field(default_factory=list)  # the dicts llm hashes
    attachments: list[list[Attachment]] = field(default_factory=list)  # per part
    # Per part: what llm keeps beside the part (provider_metadata, server_executed, redacted),
    # from an import's part extras. Not hashed: the exporter writes none of it.
    meta: list[dict[str, Any]] = field(default_factory=list)


def turn_messages(r: Response, *, system: str | None) -> tuple[list[LlmMessage], LlmMessage]:
    """The input messages and the reply of ``r``; ``system`` is the system prompt already sent before it."""
    inputs: list[LlmMessage] = []
    if r.system and r.system != system:
        inputs.append(LlmMessage("system", [{"type": "text", "text": r.system}], [[]], [{}]))
    results: list[Part] = []
    user: list[Part] = []
    out: list[Part] = []
    for p in r.parts:  # one pass: this runs for every response of an export
        if p.role == "assistant":
            out.append(p)
        elif p.role == "user":
            if p.type == "tool_result":
                results.append(p)
            elif p.type == "attachment":
                user.append(p)
    if results:
        inputs.append(_message("tool", results))
    if r.prompt or user or not inputs:
        msg = _message("user", user)
        msg.parts.insert(0, {"type": "text", "text": r.prompt or ""})
        msg.attachments.insert(0, [])
        msg.meta.insert(0, {})
        inputs.append(msg)
    reply = _message("assistant", out)
    if r.response and not any(p.type == "text" for p in out):
        reply.parts.append({"type": "text", "text": r.response})
        reply.attachments.append([])
        reply.meta.append({})
    if r.reasoning and not any(p.type == "reasoning" for p in out):
        reply.parts.insert(0, {"type": "reasoning", "text": r.reasoning})
        reply.attachments.insert(0, [])
        reply.meta.insert(0, {})
    return inputs, reply


def _message(role: str, parts: list[Part]) -> LlmMessage:
    msg = LlmMessage(role)
    for p in parts:
        d: dict[str, Any]
        atts: list[Attachment] = []
        if p.type in ("text", "reasoning"):
            d = {"type": p.type, "text": p.text or ""}
        elif p.type == "tool_call":
            d = {"type": "tool_call", "name": p.tool_name or "", "arguments": p.arguments or {}}
            if p.tool_call_id is not None:
                d["tool_call_id"] = p.tool_call_id
        elif p.type == "tool_result":
            d = {"type": "tool_result", "name": p.tool_name or "", "output": p.text or ""}
            if p.tool_call_id is not None:
                d["tool_call_id"] = p.tool_call_id
            if p.error is not None:
                d["exception"] = p.error
        elif p.type == "attachment" and p.attachment is not None:
            d = {"type": "attachment"}
            atts = [p.attachment]
        else:
            continue
        msg.parts.append(d)
        msg.attachments.append(atts)
        if not p.extras:
            msg.meta.append({})
            continue
        kept = {"provider_metadata": p.extras.get("llm:provider_metadata"),
                "server_executed": p.extras.get("llm:server_executed"), "redacted": p.extras.get("llm:redacted")}
        msg.meta.append({k: v for k, v in kept.items() if v})
    return msg
