"""Running a prompt through a model and logging what came back."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from . import paths
from .errors import NotFound
from .inputs import Fragment, fragment_record, join_prompt, join_system
from .models import PromptRequest, default_model_name, get_model
from .records import Attachment, Part, Response
from .store import Store

__all__ = ["run_prompt", "logging_enabled", "set_logging"]


def logging_enabled() -> bool:
    return not paths.logs_off_path().exists()


def set_logging(enabled: bool) -> None:
    """Turn logging of prompts on or off on this machine (a ``logs-off`` file)."""
    if enabled:
        paths.logs_off_path().unlink(missing_ok=True)
    else:
        paths.ensure_home()
        paths.logs_off_path().touch()


def run_prompt(
    open_store: Callable[[], Store],
    prompt: str | None,
    *,
    model: str | None = None,
    system: str | None = None,
    options: dict[str, Any] | None = None,
    continue_latest: bool = False,
    cid: str | None = None,
    log: bool = True,
    on_text: Callable[[str], None] = lambda _text: None,
    stream: bool = True,
    timeout: float | None = None,
    extras: dict[str, Any] | None = None,
    attachments: list[Attachment] | None = None,
    fragments: list[Fragment] | None = None,
    system_fragments: list[Fragment] | None = None,
    key: str | None = None,
    earlier: list[Response] | None = None,
    schema: dict[str, Any] | None = None,
) -> Response:
    """Answer ``prompt`` with ``model``, continuing a conversation when asked.

    The store is opened only when needed: to read the conversation being
    continued, or to log. A failed model call logs nothing; an interrupted
    stream is logged with ``extras["localfirst:interrupted"]``. ``extras``
    (namespaced keys) are added to the logged response.

    ``fragments`` are sent ahead of the prompt and ``system_fragments``
    ahead of the system prompt (llm's rules, :mod:`localfirst.inputs`); the
    logged prompt is the text sent, and ``extras`` name the fragments
    (``llm:fragments``, ``llm:system_fragments``) as an import from llm does.
    ``attachments`` are sent with the prompt and stored with their bytes.
    ``key`` is used for this call only. ``earlier``: the turns so far of a
    conversation that is not logged (a chat with logging off).
    """
    log = log and logging_enabled()
    # A model named on the command line is checked before the store is touched.
    chosen = get_model(model) if model is not None else None
    store = open_store() if (log or continue_latest or cid) else None
    conversation = None
    history: list[Response] = list(earlier or [])
    if store is not None:
        conversation = store.pick_conversation(continue_latest=continue_latest, cid=cid)
        if conversation is not None:
            history = store.history(conversation)
            _load_attachments(store, history)
            if model is None:
                model = store.conversation_model(conversation)
    if chosen is None:
        chosen = get_model(model or default_model_name())
    parts = [Part(type="attachment", role="user", attachment=a) for a in attachments or []]
    request = PromptRequest(prompt=join_prompt(prompt, fragments or []),
                            system=join_system(system, system_fragments or []),
                            options=dict(options or {}), history=history, parts=parts,
                            stream=stream, timeout=timeout, key=key, schema=schema)
    started = time.perf_counter()
    response = chosen.execute(request, on_text=on_text)
    if response.duration_ms is None:
        response.duration_ms = int((time.perf_counter() - started) * 1000)
    response.conversation_id = conversation
    extras = dict(extras or {})
    if fragments:
        extras["llm:fragments"] = fragment_record(fragments)
    if system_fragments:
        extras["llm:system_fragments"] = fragment_record(system_fragments)
    if schema is not None:
        extras["llm:schema"] = schema
    if extras:
        response.extras = {**(response.extras or {}), **extras}
    if log and store is not None:
        store.log(response)
    return response


def _load_attachments(store: Store, history: list[Response]) -> None:
    """Give the history's attachments their bytes, so that a model sees them again."""
    for r in history:
        for p in r.parts:
            if p.attachment is not None and p.attachment.content is None and p.type == "attachment":
                try:
                    p.attachment.content = store.attachment_content(p.attachment.id)
                except NotFound:
                    pass  # known by URL only: sent as its URL
