"""What Datasette shows of a localfirst database: titles, descriptions, hidden tables, canned queries.

The one place these are written. The plugin hands them to Datasette for each
localfirst database it has open, whether ``localfirst serve`` or a plain
``datasette`` started it: descriptions and hidden tables through
``get_metadata``, the queries through ``canned_queries``. ``serve`` adds only
the title of its page.
"""

from __future__ import annotations

from typing import Any

from .search import DEFAULT_SORT_DESC, QUERY

__all__ = ["database_metadata", "queries", "instance_metadata", "HIDDEN"]

# Local bookkeeping, not history: hidden from the table list (still reachable by SQL).
HIDDEN = ("meta", "_sqlite_migrations", "sync_remotes", "sync_outbox", "sync_changes", "sync_seed", "sync_chain",
          "sync_pending", "sync_guard", "sync_conflicts", "sync_teams", "sync_signers", "sqlite_sequence")

_TABLES: dict[str, tuple[str, dict[str, str]]] = {
    "conversations": ("One row per conversation; its transcript is linked from the id.", {
        "name": "Named after the start of the first prompt unless renamed",
        "model": "The model the conversation started with",
        "created_utc": "When it started (UTC)",
        "name_hlc": "Clock of the last rename: the latest rename wins across machines",
    }),
    "responses": ("Every exchange: the prompt sent and what came back. Search covers prompt and response.", {
        "id": "ULID of the response; the same on every machine",
        "conversation_id": "The conversation it belongs to",
        "model": "The model asked", "resolved_model": "The model that actually answered, when it said",
        "prompt": "What was sent", "system": "System prompt", "response": "The answer's text",
        "reasoning": "Reasoning the model showed", "options_json": "Options such as temperature (JSON)",
        "input_tokens": "Tokens sent", "output_tokens": "Tokens received",
        "token_details": "Provider's token breakdown (JSON)", "duration_ms": "How long the answer took",
        "datetime_utc": "When it was logged (UTC)", "finish_reason": "Why the model stopped",
        "simulated": "1 for an example turn written by hand", "extras": "Namespaced extra fields (JSON)",
        "rowid": "Local locator of the full-text index; not synced",
    }),
    "parts": ("The ordered pieces of an exchange: attachments and tool results sent, reasoning, text and tool "
              "calls received.", {
                  "role": "user: sent with the prompt; assistant: returned",
                  "type": "text, reasoning, tool_call, tool_result or attachment",
                  "ordinal": "Position within the response",
              }),
    "attachments": ("Files sent or received, keyed by the sha256 of their bytes.", {
        "content": "The bytes, when held", "size": "Size in bytes",
    }),
    "templates": ("Saved prompt templates by name; their text is in template_versions.", {}),
    "template_versions": ("Every version of every template; the newest clock wins.", {}),
    "template_labels": ("Labels (production, staging ...) pointing at one version of a template; the newest move "
                        "wins.", {}),
    "tombstones": ("Keys deleted here or on another machine; they never come back.", {}),
    "exchanges": ("One row per exchange with its conversation's name and the text.", {}),
    "conversation_summaries": ("One row per conversation: counts, tokens, first and last time, models.", {}),
}

_QUERIES: dict[str, dict[str, str]] = {
    QUERY: {
        "title": "Search",
        "description": "Full-text search of prompts and responses, best match first (like logs list -q).",
        "sql": (
            "select r.id, c.name as conversation, r.conversation_id, r.datetime_utc, r.model,\n"
            "  snippet(responses_fts, -1, '[', ']', ' … ', 16) as snippet\n"
            "from responses_fts join responses r on r.rowid = responses_fts.rowid\n"
            "left join conversations c on c.id = r.conversation_id\n"
            "where responses_fts match escape_fts(:q)\n"
            "order by responses_fts.rank, r.datetime_utc desc limit 100"
        ),
    },
    "conversation": {
        "title": "A conversation",
        "description": "Every exchange of one conversation, oldest first (the transcript page shows it as a chat).",
        "sql": ("select datetime_utc, model, prompt, response, input_tokens, output_tokens, id\n"
                "from exchanges where conversation_id = :conversation_id order by datetime_utc, id"),
    },
    "tokens_by_model_and_month": {
        "title": "Tokens by model and month",
        "sql": ("select substr(datetime_utc, 1, 7) as month, model, count(*) as responses,\n"
                "  sum(input_tokens) as input_tokens, sum(output_tokens) as output_tokens\n"
                "from responses group by month, model order by month desc, responses desc"),
    },
}


def database_metadata() -> dict[str, Any]:
    """The metadata of one localfirst database (its tables), a fresh copy Datasette may change."""
    tables: dict[str, Any] = {name: {"hidden": True} for name in HIDDEN}
    for name, (description, columns) in _TABLES.items():
        tables[name] = {"description": description, "columns": dict(columns)}
    tables["responses"]["sort_desc"] = DEFAULT_SORT_DESC
    return {"tables": tables}


def queries() -> dict[str, dict[str, str]]:
    """The canned queries of a localfirst database, a fresh copy (Datasette adds each one's name to it)."""
    return {name: dict(query) for name, query in _QUERIES.items()}


def instance_metadata() -> dict[str, Any]:
    """What ``serve`` adds to a Datasette that shows one localfirst database: the page's title."""
    return {
        "title": "localfirst",
        "description": "Your LLM conversations. Open a conversation's transcript from its id.",
    }
