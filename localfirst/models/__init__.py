"""Models that answer prompts.

A model takes a :class:`PromptRequest` (the prompt plus the conversation so
far) and returns a :class:`~localfirst.records.Response`, calling ``on_text``
with each piece of text as it arrives. ``echo`` is built in and offline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import NotFound
from ..records import Part, Response

__all__ = [
    "Model", "PromptRequest", "EchoModel", "get_model", "builtin_models", "default_model_name", "DEFAULT_MODEL",
]

DEFAULT_MODEL = "echo"


@dataclass
class PromptRequest:
    prompt: str | None
    system: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    history: list[Response] = field(default_factory=list)
    parts: list[Part] = field(default_factory=list)
    # How to call an HTTP model: stream server-sent events, and how long to
    # wait for the next byte (None: the model's configured time-out).
    stream: bool = True
    timeout: float | None = None
    # An API key for this call only (--key): used, never stored or logged.
    key: str | None = None
    # A JSON schema the answer must follow (a template's schema_object).
    schema: dict[str, Any] | None = None


class Model(Protocol):
    name: str

    def execute(self, request: PromptRequest, *, on_text: Callable[[str], None]) -> Response:
        """Answer ``request``; call ``on_text`` with text as it arrives."""
        ...


class EchoModel:
    """Answers with the prompt itself. Needs no network; good for demos and tests."""

    name = "echo"

    def execute(self, request: PromptRequest, *, on_text: Callable[[str], None]) -> Response:
        text = request.prompt or ""
        on_text(text)
        words = len(text.split())
        history_words = sum(len((r.prompt or "").split()) + len((r.response or "").split())
                            for r in request.history)
        return Response(
            model=self.name,
            resolved_model=self.name,
            prompt=request.prompt,
            system=request.system,
            response=text,
            options=request.options or None,
            input_tokens=words + history_words + len((request.system or "").split()),
            output_tokens=words,
            finish_reason="stop",
            parts=list(request.parts),
        )


def builtin_models() -> dict[str, Model]:
    return {"echo": EchoModel()}


def get_model(name: str) -> Model:
    """The model called ``name``: built in, configured in ``models.toml``, else one of llm's.

    llm's models are looked for only when localfirst has no model of that
    name and llm is installed beside localfirst; ``llm:NAME`` asks llm directly.
    """
    from .via_llm import PREFIX, find_llm_model, llm_installed

    models = builtin_models()
    if not name.startswith(PREFIX):
        if name in models:
            return models[name]
        from .config import load_config

        configured = load_config().models
        if name in configured:
            from .openai import OpenAIChatModel

            return OpenAIChatModel(configured[name])
    found = find_llm_model(name, logged_name=_logged_name)
    if found is not None:
        return found
    if name.startswith(PREFIX):
        if not llm_installed():
            raise NotFound(f"unknown model {name!r}: llm is not installed beside localfirst")
        raise NotFound(f"llm has no model {name.removeprefix(PREFIX)!r} (see `llm models`)")
    from .config import load_config

    known = ", ".join(sorted([*models, *load_config().models]))
    also = "; or any of llm's models (`llm models`)" if llm_installed() else ""
    raise NotFound(f"unknown model {name!r}; known models: {known} (add one with `localfirst models add`){also}")


def _logged_name(model_id: str) -> str:
    """The name an llm model is logged under: its id, or ``llm:ID`` when localfirst uses that id itself."""
    from .config import load_config
    from .via_llm import PREFIX

    if model_id in builtin_models() or model_id in load_config().models:
        return PREFIX + model_id
    return model_id


def default_model_name() -> str:
    """The model used without ``-m``: ``models default``, else ``echo``."""
    from .config import config_path, load_config

    if not config_path().exists():
        return DEFAULT_MODEL
    return load_config().default or DEFAULT_MODEL
