"""Reading chat-completions payloads into a Response: streamed chunks or one JSON body.

:class:`ChatReader` takes each decoded chunk of a stream (or one whole
non-streamed body) and keeps the text, the reasoning, the tool calls assembled
from their deltas (by their ``index``), the finish reason, the usage and the
model the server reports. Nothing here touches the network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import ModelError
from ..records import Part, Response

__all__ = ["ChatReader", "error_message"]

# Servers name streamed reasoning differently: DeepSeek and llama.cpp use
# reasoning_content, OpenRouter and Ollama use reasoning.
_REASONING_KEYS = ("reasoning_content", "reasoning")


def error_message(data: Any) -> str | None:
    """The human message inside an error body (``{"error": {"message": ...}}`` and variants)."""
    if not isinstance(data, dict):
        return None
    err = data.get("error", data.get("detail"))
    if isinstance(err, dict):
        msg = err.get("message") or err.get("msg")
        return str(msg) if msg else json.dumps(err, ensure_ascii=False)
    if isinstance(err, str):
        return err
    msg = data.get("message")
    return str(msg) if isinstance(msg, str) else None


@dataclass
class _ToolCall:
    id: str | None = None
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class ChatReader:
    """Accumulates one answer from a stream of chunks, or from one whole body."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.tools: dict[int, _ToolCall] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.model: str | None = None
        self.id: str | None = None
        self.fingerprint: str | None = None
        self.chunks = 0
        # The raw payload: the whole body, or the stream's chunks from the one
        # that carried the finish reason onwards (usually that and usage).
        self.final: list[Any] = []

    # -- input -------------------------------------------------------------

    def _meta(self, data: dict[str, Any]) -> None:
        if self.model is None and isinstance(data.get("model"), str):
            self.model = data["model"]
        if self.id is None and isinstance(data.get("id"), str):
            self.id = data["id"]
        if isinstance(data.get("system_fingerprint"), str):
            self.fingerprint = data["system_fingerprint"]
        if isinstance(data.get("usage"), dict):
            self.usage = data["usage"]

    @staticmethod
    def _check(data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise ModelError("the model server sent JSON that is not an object")
        message = error_message(data) if "error" in data else None
        if message is not None:
            raise ModelError(f"the model server reported an error: {message}")
        choices = data.get("choices", [])
        if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
            raise ModelError("the model server sent a chunk whose choices are not a list of objects")
        return data

    def feed(self, chunk: Any) -> str:
        """Take one streamed chunk; return the new text in it (maybe empty)."""
        data = self._check(chunk)
        self.chunks += 1
        self._meta(data)
        out = []
        for choice in data.get("choices", []):
            if choice.get("index", 0) != 0:
                continue  # n > 1 is not asked for; only the first choice is kept
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if isinstance(content, str) and content:
                self.text.append(content)
                out.append(content)
            for key in _REASONING_KEYS:
                value = delta.get(key)
                if isinstance(value, str) and value:
                    self.reasoning.append(value)
                    break
            for position, call in enumerate(delta.get("tool_calls") or []):
                self._tool_delta(call, position)
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
        if self.finish_reason is not None or self.final:
            self.final.append(data)
        return "".join(out)

    def _tool_delta(self, call: Any, position: int) -> None:
        if not isinstance(call, dict):
            raise ModelError("the model server sent a tool call delta that is not an object")
        index = call.get("index")
        if not isinstance(index, int):
            # Some servers omit the index: match by id, else the position.
            known = [i for i, t in self.tools.items() if call.get("id") and t.id == call.get("id")]
            index = known[0] if known else position
        tool = self.tools.setdefault(index, _ToolCall())
        if call.get("id") and tool.id is None:
            tool.id = str(call["id"])
        function = call.get("function") or {}
        name = function.get("name")
        if isinstance(name, str) and name and name != tool.name:
            # Most servers send the name once; a few split it over deltas.
            tool.name += name
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            tool.arguments.append(arguments)
        elif arguments is not None:
            tool.arguments.append(json.dumps(arguments, ensure_ascii=False))

    def read_body(self, body: Any) -> str:
        """Take a whole non-streamed response body; return its text."""
        data = self._check(body)
        self.chunks += 1
        self._meta(data)
        self.final = [data]
        choices = data.get("choices") or []
        if not choices:
            raise ModelError("the model server answered without any choices")
        choice = choices[0]
        message = choice.get("message") or {}
        content = message.get("content")
        if isinstance(content, str):
            self.text.append(content)
        for key in _REASONING_KEYS:
            if isinstance(message.get(key), str) and message[key]:
                self.reasoning.append(message[key])
                break
        for position, call in enumerate(message.get("tool_calls") or []):
            self._tool_delta({**call, "index": position} if isinstance(call, dict) else call, position)
        if choice.get("finish_reason"):
            self.finish_reason = str(choice["finish_reason"])
        return "".join(self.text)

    # -- output ------------------------------------------------------------

    def parts(self) -> list[Part]:
        """Reasoning first, then the tool calls in the order of their index."""
        out = []
        if self.reasoning:
            out.append(Part(type="reasoning", role="assistant", text="".join(self.reasoning)))
        for index in sorted(self.tools):
            tool = self.tools[index]
            raw = "".join(tool.arguments)
            try:
                arguments: Any = json.loads(raw) if raw else {}
            except ValueError:
                arguments = raw  # kept as sent; an interrupted call may be cut short
            out.append(Part(type="tool_call", role="assistant", tool_call_id=tool.id,
                            tool_name=tool.name, arguments=arguments))
        return out

    def response(self, *, model: str) -> Response:
        usage = self.usage or {}
        details = {k: v for k, v in usage.items()
                   if k not in ("prompt_tokens", "completion_tokens", "total_tokens") and v is not None}
        extras: dict[str, Any] = {}
        if self.id:
            extras["openai:id"] = self.id
        if self.fingerprint:
            extras["openai:system_fingerprint"] = self.fingerprint
        final: Any = self.final[0] if len(self.final) == 1 else (self.final or None)
        return Response(
            model=model,
            resolved_model=self.model,
            response="".join(self.text),
            reasoning="".join(self.reasoning) or None,
            input_tokens=_int(usage.get("prompt_tokens")),
            output_tokens=_int(usage.get("completion_tokens")),
            token_details=details or None,
            finish_reason=self.finish_reason,
            response_json=final,
            extras=extras or None,
            parts=self.parts(),
        )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
