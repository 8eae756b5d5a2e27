"""The records localfirst stores: a response, its ordered parts, attachments.

The same shape goes in (``localfirst log --json``, :meth:`Store.log`) and comes
out (``logs list --json``), so a response read out can be logged again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BadInput

TYPE_CHECKING = False  # typing is not imported at run time: it costs start-up (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Attachment", "Part", "Response", "PART_TYPES", "ROLES", "check_extras", "url_attachment_id"]

PART_TYPES = ("text", "reasoning", "tool_call", "tool_result", "attachment")
# "user": sent with the prompt (tool results, attachments); "assistant": returned.
ROLES = ("user", "assistant")


@dataclass
class Attachment:
    """Bytes keyed by their sha256, with what is known of where they came from."""

    content: bytes | None
    mime_type: str | None = None
    path: str | None = None
    url: str | None = None
    id: str = ""
    size: int = 0

    def __post_init__(self) -> None:
        if self.content is not None:
            import hashlib  # only paid by commands that store attachments

            self.id = hashlib.sha256(self.content).hexdigest()
            self.size = len(self.content)

    def to_json(self, *, with_content: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "mime_type": self.mime_type,
            "size": self.size,
            "path": self.path,
            "url": self.url,
        }
        if with_content and self.content is not None:
            import base64

            out["content_base64"] = base64.b64encode(self.content).decode()
        return out

    @classmethod
    def from_json(cls, data: Any, *, where: str = "attachment") -> Attachment:
        if not isinstance(data, dict):
            raise BadInput(f"{where} must be an object")
        mime = data.get("mime_type")
        if data.get("content_base64") is not None:
            import base64

            try:
                content = base64.b64decode(data["content_base64"], validate=True)
            except (ValueError, TypeError) as exc:
                raise BadInput(f"{where}: content_base64 is not valid base64") from exc
            return cls(content, mime, data.get("path"), data.get("url"))
        if data.get("path"):
            path = Path(str(data["path"])).expanduser()
            try:
                content = path.read_bytes()
            except OSError as exc:
                raise BadInput(f"{where}: cannot read {path}: {exc.strerror}") from exc
            return cls(content, mime or _guess_mime(path), str(path), data.get("url"))
        if data.get("url"):
            return cls(None, mime, None, str(data["url"]), id=url_attachment_id(str(data["url"])))
        raise BadInput(f"{where} needs content_base64, path or url")


def url_attachment_id(url: str) -> str:
    import hashlib

    # An attachment known only by URL is keyed by the hash of the URL itself.
    return hashlib.sha256(("url:" + url).encode()).hexdigest()


def _guess_mime(path: Path) -> str | None:
    import mimetypes

    return mimetypes.guess_type(path.name)[0]


@dataclass
class Part:
    """One ordered piece of an exchange."""

    type: str
    role: str = "assistant"
    text: str | None = None
    tool_call_id: str | None = None
    tool_name: str | None = None
    arguments: Any = None
    error: str | None = None
    attachment: Attachment | None = None
    extras: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "role": self.role}
        if self.type in ("text", "reasoning"):
            out["text"] = self.text
        elif self.type == "tool_call":
            out.update(tool_call_id=self.tool_call_id, name=self.tool_name, arguments=self.arguments)
        elif self.type == "tool_result":
            out.update(tool_call_id=self.tool_call_id, name=self.tool_name, output=self.text, error=self.error)
        elif self.type == "attachment" and self.attachment is not None:
            out["attachment"] = self.attachment.to_json()
        if self.extras:
            out["extras"] = self.extras
        return out

    @classmethod
    def from_json(cls, data: Any, *, where: str = "part") -> Part:
        if not isinstance(data, dict):
            raise BadInput(f"{where} must be an object")
        kind = data.get("type")
        if kind not in PART_TYPES:
            raise BadInput(f"{where}: type must be one of {', '.join(PART_TYPES)}")
        default_role = "user" if kind in ("tool_result", "attachment") else "assistant"
        role = data.get("role", default_role)
        if role not in ROLES:
            raise BadInput(f"{where}: role must be 'user' or 'assistant'")
        part = cls(type=kind, role=role, extras=check_extras(data.get("extras"), f"{where}.extras"))
        if kind in ("text", "reasoning"):
            part.text = _string(data.get("text"), f"{where}.text", required=True)
        elif kind == "tool_call":
            part.tool_call_id = _string(data.get("tool_call_id"), f"{where}.tool_call_id")
            part.tool_name = _string(data.get("name"), f"{where}.name", required=True)
            part.arguments = data.get("arguments")
        elif kind == "tool_result":
            part.tool_call_id = _string(data.get("tool_call_id"), f"{where}.tool_call_id")
            part.tool_name = _string(data.get("name"), f"{where}.name")
            output = data.get("output")
            part.text = output if output is None or isinstance(output, str) else json.dumps(output)
            part.error = _string(data.get("error"), f"{where}.error")
        else:
            part.attachment = Attachment.from_json(data.get("attachment", data), where=where)
        return part


def _string(value: Any, where: str, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise BadInput(f"{where} is required")
        return None
    if not isinstance(value, str):
        raise BadInput(f"{where} must be a string")
    return value


def _obj(value: Any, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadInput(f"{where} must be an object")
    return value


def check_extras(value: Any, where: str = "extras") -> dict[str, Any] | None:
    """Extras keys are namespaced by whoever wrote them: ``"anthropic:cache_control"``."""
    extras = _obj(value, where)
    for key in extras or {}:
        ns, sep, name = key.partition(":")
        if not (ns and sep and name):
            raise BadInput(f"{where} key {key!r} must be namespaced, like \"anthropic:cache_control\"")
    return extras


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise BadInput(f"{where} must be true or false")
    return value


def _time(value: Any) -> str | None:
    """An ISO time, normalised to the stored UTC form."""
    text = _string(value, "datetime_utc")
    if text is None:
        return None
    from .timeutil import normalise

    try:
        return normalise(text)
    except ValueError:
        raise BadInput(f"datetime_utc {text!r} is not an ISO time (2026-11-20T09:30:00Z)") from None


def _int(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"{where} must be an integer")
    return value


@dataclass
class Response:
    """One exchange: a prompt and what came back, with everything around it."""

    model: str
    prompt: str | None = None
    response: str | None = None
    system: str | None = None
    id: str | None = None
    conversation_id: str | None = None
    conversation_name: str | None = None
    # The conversation's model, as stored with it (read back, never written from here).
    conversation_model: str | None = None
    resolved_model: str | None = None
    prompt_json: Any = None
    options: dict[str, Any] | None = None
    response_json: Any = None
    reasoning: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    token_details: dict[str, Any] | None = None
    duration_ms: int | None = None
    datetime_utc: str | None = None
    finish_reason: str | None = None
    simulated: bool = False
    extras: dict[str, Any] | None = None
    parts: list[Part] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The documented, stable JSON shape of ``logs list --json``.

        Every key of ``llm logs list --json`` (llm 0.36), with the same
        meaning, then localfirst's own; docs/llm.md lists where a value differs.
        """
        extras = self.extras or {}
        return {
            "id": self.id,
            "model": self.model,
            "resolved_model": self.resolved_model,
            "options_json": self.options or {},
            "conversation_id": self.conversation_id,
            "duration_ms": self.duration_ms,
            "datetime_utc": self.datetime_utc,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "token_details": self.token_details,
            "conversation_name": self.conversation_name,
            "conversation_model": self.conversation_model,
            "schema_json": extras.get("llm:schema"),
            "prompt": self.prompt,
            "system": self.system,
            "response": self.response,
            "reasoning": self.reasoning,
            "prompt_json": self.prompt_json,
            "response_json": self.response_json,
            "prompt_fragments": _fragments_json(self.prompt, extras.get("llm:fragments"), system=False),
            "system_fragments": _fragments_json(self.system, extras.get("llm:system_fragments"), system=True),
            "tools": [_tool_json(t) for t in extras.get("llm:tools") or [] if isinstance(t, (str, dict))],
            "tool_calls": [_tool_call_json(p) for p in self.parts if p.type == "tool_call"],
            "tool_results": [_tool_result_json(p) for p in self.parts if p.type == "tool_result"],
            "attachments": [_attachment_json(p.attachment) for p in self.parts
                            if p.type == "attachment" and p.attachment is not None],
            # localfirst's own keys.
            "options": self.options,
            "finish_reason": self.finish_reason,
            "simulated": self.simulated,
            "template": _template_json(extras),
            "extras": self.extras,
            "parts": [p.to_json() for p in self.parts],
        }

    @classmethod
    def from_json(cls, data: Any, *, model: str | None = None, default_model: str | None = None) -> Response:
        """Read one exchange as given to ``localfirst log --json``.

        ``model`` (``-m``) overrides the document's model; ``default_model``
        (a continued conversation's) is used when neither names one.
        Required: a model and at least one of
        ``prompt``, ``response`` or ``parts``. ``usage`` may hold the token
        counts; ``attachments`` are added as parts of the prompt.
        """
        if not isinstance(data, dict):
            raise BadInput("the exchange must be a JSON object")
        chosen = model or data.get("model") or default_model
        if not chosen or not isinstance(chosen, str):
            raise BadInput("the exchange needs a model: a \"model\" field or -m")
        if not any(data.get(k) is not None for k in ("prompt", "response", "parts")):
            raise BadInput("the exchange needs at least one of \"prompt\", \"response\" or \"parts\"")
        usage = _obj(data.get("usage"), "usage") or {}
        parts_in = data.get("parts") or []
        if not isinstance(parts_in, list):
            raise BadInput("parts must be a list")
        parts = [Part.from_json(p, where=f"parts[{i}]") for i, p in enumerate(parts_in)]
        atts = data.get("attachments") or []
        if not isinstance(atts, list):
            raise BadInput("attachments must be a list")
        for i, a in enumerate(atts):
            parts.insert(i, Part(type="attachment", role="user",
                                 attachment=Attachment.from_json(a, where=f"attachments[{i}]")))
        cid = _string(data.get("conversation_id"), "conversation_id")
        rid = _string(data.get("id"), "id")
        return cls(
            model=chosen,
            id=rid,
            prompt=_string(data.get("prompt"), "prompt"),
            response=_string(data.get("response"), "response"),
            system=_string(data.get("system"), "system"),
            conversation_id=cid,
            conversation_name=_string(data.get("conversation_name"), "conversation_name"),
            resolved_model=_string(data.get("resolved_model"), "resolved_model"),
            prompt_json=data.get("prompt_json"),
            options=_obj(data.get("options"), "options"),
            response_json=data.get("response_json"),
            reasoning=_string(data.get("reasoning"), "reasoning"),
            input_tokens=_int(data.get("input_tokens", usage.get("input_tokens")), "input_tokens"),
            output_tokens=_int(data.get("output_tokens", usage.get("output_tokens")), "output_tokens"),
            token_details=_obj(data.get("token_details", usage.get("details")), "token_details"),
            duration_ms=_int(data.get("duration_ms"), "duration_ms"),
            datetime_utc=_time(data.get("datetime_utc")),
            finish_reason=_string(data.get("finish_reason"), "finish_reason"),
            simulated=_bool(data.get("simulated", False), "simulated"),
            extras=check_extras(data.get("extras")),
            parts=parts,
        )


# -- llm's JSON shape (``llm logs list --json``) -----------------------------


def _attachment_json(a: Attachment) -> dict[str, Any]:
    # localfirst always keeps the bytes; they are not inlined in JSON.
    return {"id": a.id, "type": a.mime_type, "path": a.path, "url": a.url, "content": None,
            "content_length": a.size if a.id and a.size else None}


def _template_json(extras: dict[str, Any]) -> dict[str, Any] | None:
    """The template a response was made with: the exact version, and the team it came from."""
    name = extras.get("localfirst:template")
    if not isinstance(name, str):
        return None
    team = extras.get("localfirst:template_team")
    return {"name": name, "version_id": extras.get("localfirst:template_version"),
            "team": name.partition("/")[0] if team and "/" in name else None, "team_id": team}


def _tool_json(tool: Any) -> dict[str, Any]:
    if isinstance(tool, dict):
        return {"id": None, "hash": None, "name": None, "description": None, "input_schema": {},
                "instance": None, **tool}
    # An import from llm keeps the names of the tools a response offered.
    return {"id": None, "hash": None, "name": tool, "description": None, "input_schema": {}, "instance": None}


def _tool_call_json(p: Part) -> dict[str, Any]:
    return {"id": None, "tool_id": None, "name": p.tool_name, "arguments": p.arguments,
            "tool_call_id": p.tool_call_id, "server_executed": False}


def _tool_result_json(p: Part) -> dict[str, Any]:
    extras = p.extras or {}
    return {"id": None, "tool_id": None, "name": p.tool_name, "output": p.text, "tool_call_id": p.tool_call_id,
            "exception": p.error, "server_executed": p.role == "assistant",
            "instance": extras.get("llm:instance"), "attachments": []}


def _fragments_json(text: str | None, records: Any, *, system: bool) -> list[dict[str, Any]]:
    """llm's fragment objects, each with its content read back out of the text that was sent.

    A prompt is sent as the fragments then the prompt, one per line; a system
    prompt as the stripped fragments then the system prompt, a blank line
    apart (llm's rules). Each piece is checked against the fragment's hash;
    one that cannot be proved (and every one after it) has ``content`` null.
    """
    if not isinstance(records, list):
        return []
    out: list[dict[str, Any]] = []
    pos: int | None = 0
    for record in records:
        if not isinstance(record, dict):
            continue
        wanted = record.get("hash")
        content: str | None = None
        if isinstance(wanted, str) and pos is not None:
            find = _system_piece if system else _prompt_piece
            content, pos = find(text or "", pos, wanted)
        item: dict[str, Any] = {"hash": wanted, "content": content, "aliases": []}
        if record.get("source") is not None:
            item["source"] = record["source"]
        out.append(item)
    return out


def _sha256(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _prompt_piece(text: str, pos: int, wanted: str) -> tuple[str | None, int | None]:
    """The fragment at ``pos`` whose hash is ``wanted`` (it ends at a line end), and where the next starts."""
    import hashlib

    # One running hash, copied at each line end: linear in the text.
    running = hashlib.sha256()
    cursor = pos
    while True:
        end = text.find("\n", cursor)
        stop = len(text) if end == -1 else end
        running.update(text[cursor:stop].encode("utf-8"))
        if running.copy().hexdigest() == wanted:
            return text[pos:stop], stop + 1
        if end == -1:
            return None, None
        running.update(b"\n")
        cursor = end + 1


def _system_piece(text: str, pos: int, wanted: str) -> tuple[str | None, int | None]:
    """The stripped system fragment at ``pos``: proved when it, or it with the usual final newline, has the hash."""
    end = text.find("\n\n", pos)
    end = len(text) if end == -1 else end
    piece = text[pos:end]
    for candidate in (piece, piece + "\n"):
        if _sha256(candidate) == wanted:
            return candidate, end + 2
    return None, None
