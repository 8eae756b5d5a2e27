"""What the llm plugin's loaders read from the store: templates for ``-t lf:``, responses for ``-f lf:``.

Kept apart from ``llm_plugin`` so that llm's start-up imports neither this
module nor the store; everything here returns plain values and raises our
own errors, which llm shows as the reason a template or fragment could not
be loaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import ids, paths
from .errors import NotFound
from .store import Store
from .templates import get_template

__all__ = ["template_fields", "fragment_text", "LLM_TEMPLATE_KEYS"]

# Keys of llm's Template that a template imported from llm keeps as extras
# ("yaml:<key>") and that llm applies itself. "functions" is left out: llm
# runs inline Python only from files it trusts.
LLM_TEMPLATE_KEYS = ("attachments", "attachment_types", "extract", "extract_last", "schema_object",
                     "fragments", "system_fragments", "tools")


@contextmanager
def _store() -> Iterator[Store]:
    store = Store.open(paths.default_db_path(), for_reading=True)
    try:
        yield store
    finally:
        store.close()


def template_fields(spec: str) -> dict[str, Any]:
    """The keyword arguments of ``llm.Template`` for ``[TEAM/]NAME[@LABEL|@VERSION_ID]``."""
    with _store() as store:
        version = get_template(store, spec.strip())
    fields: dict[str, Any] = {"name": version.full_name}
    for key in ("prompt", "system", "model", "defaults", "options"):
        value = getattr(version, key)
        if value:
            fields[key] = value
    extras = version.extras or {}
    for key in LLM_TEMPLATE_KEYS:
        if extras.get(f"yaml:{key}") is not None:
            fields[key] = extras[f"yaml:{key}"]
    return fields


def fragment_text(spec: str) -> tuple[str, str]:
    """A logged response as fragment text (its prompt, then its answer) and the fragment's source."""
    rid = spec.strip()
    if not ids.is_id(rid):
        raise NotFound(f"{rid!r} is not a response id (a 26-character ULID from `localfirst logs list --json`)")
    rid = rid.lower()
    with _store() as store:
        gone = store.conn.execute(
            "SELECT 1 FROM tombstones WHERE tbl = 'responses' AND key = ?", [rid]).fetchone()
        if gone:
            raise NotFound(f"response {rid} was deleted")
        response = store.get_response(rid)
    parts = []
    if response.system:
        parts.append(f"System:\n{response.system}")
    parts.append(f"Prompt:\n{response.prompt or ''}")
    parts.append(f"Response:\n{response.response or ''}")
    return "\n\n".join(parts), f"lf:{rid}"
