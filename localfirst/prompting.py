"""Running a prompt through a model and logging what came back."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from . import paths
from .models import PromptRequest, default_model_name, get_model
from .records import Response
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
) -> Response:
    """Answer ``prompt`` with ``model``, continuing a conversation when asked.

    The store is opened only when needed: to read the conversation being
    continued, or to log. A failed model call logs nothing; an interrupted
    stream is logged with ``extras["localfirst:interrupted"]``. ``extras``
    (namespaced keys) are added to the logged response.
    """
    log = log and logging_enabled()
    # A model named on the command line is checked before the store is touched.
    chosen = get_model(model) if model is not None else None
    store = open_store() if (log or continue_latest or cid) else None
    conversation = None
    history: list[Response] = []
    if store is not None:
        conversation = store.pick_conversation(continue_latest=continue_latest, cid=cid)
        if conversation is not None:
            history = store.history(conversation)
            if model is None:
                model = store.conversation_model(conversation)
    if chosen is None:
        chosen = get_model(model or default_model_name())
    request = PromptRequest(prompt=prompt, system=system, options=dict(options or {}), history=history,
                            stream=stream, timeout=timeout)
    started = time.perf_counter()
    response = chosen.execute(request, on_text=on_text)
    if response.duration_ms is None:
        response.duration_ms = int((time.perf_counter() - started) * 1000)
    response.conversation_id = conversation
    if extras:
        response.extras = {**(response.extras or {}), **extras}
    if log and store is not None:
        store.log(response)
    return response
