"""Models that llm and its plugins provide (llm-anthropic, llm-gemini, llm-ollama ...).

Used only when ``-m`` names a model that localfirst itself does not have and
llm is installed in the same environment: llm is imported here and nowhere
else. llm's model runs the exchange with llm's keys and options; localfirst
logs it (llm logs nothing of it). ``llm:NAME`` always means llm's model, for
a name that localfirst also uses (``llm:echo`` is llm-echo's model).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

from ..errors import BadInput, ConfigError, Interrupted, ModelError
from ..records import Attachment, Part, Response
from . import PromptRequest

__all__ = ["PREFIX", "llm_installed", "find_llm_model", "LlmModel", "history_messages", "llm_model_names"]

PREFIX = "llm:"


def llm_installed() -> bool:
    """Whether llm can be imported here; looks for it without importing it."""
    return importlib.util.find_spec("llm") is not None


def find_llm_model(name: str, *, logged_name: Callable[[str], str]) -> LlmModel | None:
    """llm's model called ``name`` (or one of its aliases); None when llm has none.

    ``logged_name(model_id)`` is the name to log it under: one that names
    this same model again when a conversation is continued.
    """
    if not llm_installed():
        return None
    import llm

    try:
        model = llm.get_model(name.removeprefix(PREFIX))
    except llm.UnknownModelError:
        return None
    return LlmModel(model, name=logged_name(str(model.model_id)))


def llm_model_names() -> list[tuple[str, list[str]]]:
    """Every model llm offers here, as (model id, aliases); empty without llm."""
    if not llm_installed():
        return []
    import llm

    return [(str(m.model.model_id), list(m.aliases)) for m in llm.get_models_with_aliases()]


def history_messages(history: list[Response]) -> list[Any]:
    """The conversation so far as llm's messages, as llm stores a thread and sends it on ``llm -c``.

    Per turn: the system prompt when it changes, the tool results the turn
    carried back (a ``tool`` message), the prompt with its attachments, then
    the reply: reasoning, text and the tool calls the model made. The same
    rule writes turns into llm's database (:mod:`localfirst.exporters.llm_turns`).
    As llm does, empty text is left out, and so is a message left with nothing.
    An attachment known by neither bytes nor URL cannot be sent and is left out.
    """
    from llm.parts import Message

    from ..exporters.llm_turns import turn_messages

    out: list[Any] = []
    system: str | None = None
    for r in history:
        inputs, reply = turn_messages(r, system=system)
        system = r.system or system
        for message in (*inputs, reply):
            parts = [p for d, atts, meta in zip(message.parts, message.attachments, message.meta, strict=True)
                     if (p := _llm_part(d, atts, meta)) is not None]
            if parts:
                out.append(Message(role=message.role, parts=parts))
    return out


def _llm_attachment(a: Attachment) -> Any:
    import llm

    if a.content is not None:
        return llm.Attachment(type=a.mime_type, content=a.content)
    if a.url:
        return llm.Attachment(type=a.mime_type, url=a.url)
    return None


def _llm_part(d: dict[str, Any], atts: list[Attachment], meta: dict[str, Any]) -> Any:
    """One of llm's parts for a part dict of :func:`turn_messages`; None for one with nothing to send.

    ``meta``: the provider's data llm kept with the part (a reasoning
    signature, say), whether the provider ran the tool and whether reasoning
    was withheld, given back as llm gives them from its own database.
    """
    from llm.parts import AttachmentPart, ReasoningPart, TextPart, ToolCallPart, ToolResultPart

    kind = d["type"]
    provider = meta.get("provider_metadata") if isinstance(meta.get("provider_metadata"), dict) else None
    server = meta.get("server_executed") is True
    if kind == "text":
        return TextPart(text=d["text"], provider_metadata=provider) if d["text"] else None
    if kind == "reasoning":
        redacted = meta.get("redacted") is True
        if not (d["text"] or redacted or provider):
            return None
        return ReasoningPart(text=d["text"], redacted=redacted, provider_metadata=provider)
    sendable = [x for x in (_llm_attachment(a) for a in atts) if x is not None]
    if kind == "attachment":
        return AttachmentPart(attachment=sendable[0], provider_metadata=provider) if sendable else None
    if kind == "tool_call":
        return ToolCallPart(name=d["name"], arguments=_arguments(d["arguments"]), tool_call_id=d.get("tool_call_id"),
                            server_executed=server, provider_metadata=provider)
    return ToolResultPart(name=d["name"], output=d["output"], tool_call_id=d.get("tool_call_id"),
                          exception=d.get("exception"), attachments=sendable, server_executed=server,
                          provider_metadata=provider)


def _arguments(value: Any) -> dict[str, Any]:
    """A tool call's arguments as the object llm's parts hold.

    A JSON text of an object (as some imports keep it) is decoded; anything
    else that is not an object is sent as ``{"value": ...}`` rather than dropped.
    """
    if isinstance(value, str):
        import json

        try:
            value = json.loads(value)
        except ValueError:
            pass
    if isinstance(value, dict):
        return value
    return {} if value is None else {"value": value}


class LlmModel:
    """One of llm's models, answering a :class:`PromptRequest`."""

    def __init__(self, model: Any, *, name: str) -> None:
        self.model = model
        self.name = name

    def execute(self, request: PromptRequest, *, on_text: Callable[[str], None]) -> Response:
        import llm
        import pydantic

        from .openai import Redactor

        redact = Redactor(request.key)
        attachments = [
            llm.Attachment(type=p.attachment.mime_type, content=p.attachment.content)
            for p in request.parts if p.type == "attachment" and p.attachment is not None
        ]
        conversation = self.model.conversation()
        if request.history:
            # What llm itself does for `llm -c`: the stored history, as messages.
            conversation.loaded_messages = history_messages(request.history)
        try:
            answer = conversation.prompt(
                request.prompt, system=request.system, attachments=attachments or None, key=request.key,
                stream=request.stream, schema=request.schema, **request.options,
            )
        except pydantic.ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']}" for e in exc.errors())
            raise BadInput(f"model {self.name!r}: {redact.text(problems)}") from None
        except ValueError as exc:  # attachments of a type the model does not take
            raise BadInput(f"model {self.name!r}: {redact.text(str(exc))}") from None
        pieces: list[str] = []
        interrupted = False
        try:
            for chunk in answer:
                text = redact.text(str(chunk))
                pieces.append(text)
                on_text(text)
            usage = answer.usage()
        except KeyboardInterrupt:
            if not pieces:
                raise Interrupted("interrupted before the model answered; nothing logged") from None
            interrupted, usage = True, None
        except llm.errors.NeedsKeyException as exc:
            raise ConfigError(f"model {self.name!r}: {redact.text(str(exc))}") from None
        except Exception as exc:
            # A plugin's SDK raises its own errors (HTTP status, network,
            # quota); llm's CLI shows their message, and so do we, redacted.
            message = " ".join(str(exc).split()) or type(exc).__name__
            raise ModelError(f"model {self.name!r}: {redact.text(message)}") from exc
        response = Response(
            model=self.name,
            resolved_model=answer.resolved_model or str(self.model.model_id),
            prompt=request.prompt,
            system=request.system,
            response="".join(pieces),
            options=dict(request.options) or None,
            input_tokens=usage.input if usage else None,
            output_tokens=usage.output if usage else None,
            token_details=usage.details if usage and usage.details else None,
            response_json=answer.response_json if not interrupted else None,
            parts=list(request.parts),
        )
        if not interrupted:
            for call in answer.tool_calls():
                response.parts.append(Part(type="tool_call", role="assistant", tool_call_id=call.tool_call_id,
                                           tool_name=call.name, arguments=call.arguments))
        response.extras = {"localfirst:interrupted": True} if interrupted else None
        redacted: Response = redact.value(response)
        return redacted
