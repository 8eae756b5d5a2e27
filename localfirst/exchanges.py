"""Recording an exchange that did not go through a model (``localfirst log``)."""

from __future__ import annotations

import json

from .errors import BadInput
from .records import Response
from .store import Store

__all__ = ["log_exchange", "parse_exchange"]


def parse_exchange(document: str, *, model: str | None = None, default_model: str | None = None) -> Response:
    """Read one exchange from a JSON document; see ``docs/cli.md`` for the shape."""
    try:
        data = json.loads(document)
    except ValueError as exc:
        raise BadInput(f"--json input is not valid JSON: {exc}") from None
    return Response.from_json(data, model=model, default_model=default_model)


def log_exchange(
    store: Store,
    *,
    model: str | None = None,
    prompt: str | None = None,
    response: str | None = None,
    system: str | None = None,
    continue_latest: bool = False,
    cid: str | None = None,
    simulated: bool = False,
    document: str | None = None,
) -> str:
    """Log one exchange from options, or from a JSON ``document``; returns its id.

    ``-c``/``--cid`` pick the conversation; without ``-m`` a continued
    conversation keeps its model.
    """
    conversation = store.pick_conversation(continue_latest=continue_latest, cid=cid)
    kept = store.conversation_model(conversation) if conversation is not None else None
    if document is not None:
        exchange = parse_exchange(document, model=model, default_model=kept)
        if conversation is not None:
            exchange.conversation_id = conversation
        if system is not None:
            exchange.system = system
        exchange.simulated = exchange.simulated or simulated
        return store.log(exchange)
    model = model or kept
    if not model:
        raise BadInput("name the model with -m/--model")
    if prompt is None and response is None:
        raise BadInput("give a prompt with -p or on stdin, or a response with -r")
    return store.log(Response(
        model=model, prompt=prompt, response=response, system=system,
        conversation_id=conversation, simulated=simulated,
    ))
