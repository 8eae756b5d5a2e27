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
from ..records import Part, Response
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
    """The conversation so far as llm's messages: the system prompt, then each prompt and answer."""
    import llm
    from llm.parts import AttachmentPart, Message, TextPart

    out: list[Any] = []
    system: str | None = None
    for r in history:
        if r.system and r.system != system:
            out.append(Message(role="system", parts=[TextPart(text=r.system)]))
            system = r.system
        sent: list[Any] = [
            AttachmentPart(attachment=llm.Attachment(type=p.attachment.mime_type, content=p.attachment.content,
                                                     url=p.attachment.url if p.attachment.content is None else None))
            for p in r.parts
            if p.type == "attachment" and p.attachment is not None
            and (p.attachment.content is not None or p.attachment.url)
        ]
        if r.prompt:
            sent.append(TextPart(text=r.prompt))
        if sent:
            out.append(Message(role="user", parts=sent))
        if r.response:
            out.append(Message(role="assistant", parts=[TextPart(text=r.response)]))
    return out


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
