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
from .templates import TemplateVersion, get_template, template_history

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


def _version(store: Store, spec: str) -> TemplateVersion:
    name, at, version = spec.partition("@")
    if "/" in name:
        raise NotFound(f"unknown template {spec!r}: this version of localfirst has no team libraries; "
                       "name a personal template (see `localfirst templates list`)")
    if not at:
        return get_template(store, name)
    if not ids.is_id(version):
        raise NotFound(f"unknown template {spec!r}: after @ give a version id from "
                       f"`localfirst templates history {name}`")
    for found in template_history(store, name):
        if found.id == version.lower():
            return found
    raise NotFound(f"template {name!r} has no version {version}; see `localfirst templates history {name}`")


def template_fields(spec: str) -> dict[str, Any]:
    """The keyword arguments of ``llm.Template`` for ``NAME`` or ``NAME@VERSION_ID``."""
    with _store() as store:
        version = _version(store, spec.strip())
    fields: dict[str, Any] = {"name": version.name}
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
