"""The Datasette plugin of ``localfirst serve``: the conversation page and links to it.

One route, ``/-/conversation/<id>``, a cell renderer that links every
response row (and every conversation) to its transcript, and the search box
of ``responses`` sent to the ranked ``search`` query (:mod:`.search`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from datasette import Response as WebResponse
from datasette import hookimpl
from markupsafe import Markup, escape

from .. import ids
from ..db import connect
from ..errors import LocalFirstError
from ..store import Store
from .page import CSP, render_conversation
from .search import QUERY, TABLE, ranked_search_location

__all__ = ["conversation_page", "PATH"]

PATH = "/-/conversation/"
_LINKED = {"responses": "conversation_id", "exchanges": "conversation_id", "conversations": "id",
           "conversation_summaries": "id"}


def _render(path: str, database: str, cid: str) -> str | None:
    store = Store(connect(path, readonly=True), path=path)
    try:
        if not store.conversation_exists(cid):
            return None
        name = store.conn.execute("SELECT name FROM conversations WHERE id = ?", [cid]).fetchone()[0]
        return render_conversation(cid, name, store.history(cid), database=database,
                                   attachment=store.attachment_content)
    finally:
        store.close()


async def conversation_page(datasette: Any, request: Any) -> Any:
    cid = request.url_vars["cid"].lower()
    db = datasette.get_database()
    headers = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}
    if not ids.is_id(cid):
        return WebResponse.text("not a conversation id", status=404, headers=headers)
    try:
        page = await asyncio.to_thread(_render, db.path, db.name, cid)
    except LocalFirstError as exc:
        return WebResponse.text(str(exc), status=500, headers=headers)
    if page is None:
        return WebResponse.text(f"no conversation with id {cid}", status=404, headers=headers)
    return WebResponse.html(page, headers=headers)


@hookimpl
def register_routes() -> list[tuple[str, Any]]:
    return [(r"^/-/conversation/(?P<cid>[0-9A-Za-z]{26})$", conversation_page)]


@hookimpl
def render_cell(row: Any, value: Any, column: str, table: str | None, database: str) -> Any:
    if table is None or _LINKED.get(table) != column:
        return None
    # A foreign key Datasette expanded with its label: {"value": id, "label": name}.
    label = value.get("label") if isinstance(value, dict) else None
    cid = value.get("value") if isinstance(value, dict) else value
    if not isinstance(cid, str) or not ids.is_id(cid):
        return None
    anchor = f"#{row['id']}" if table in ("responses", "exchanges") else ""
    shown = escape(cid)
    if label is not None:
        shown = Markup(f'<a href="/{escape(database)}/conversations/{escape(cid)}">{escape(label)}</a>')
    return Markup(f'{shown} <a href="{PATH}{escape(cid)}{escape(anchor)}">transcript</a>')


@hookimpl
def asgi_wrapper(datasette: Any) -> Any:
    def wrap(app: Any) -> Any:
        async def ranked_search(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope.get("type") == "http" and scope.get("method") in ("GET", "HEAD"):
                query = scope.get("query_string", b"").decode("latin-1")
                name = datasette.get_database().name
                location = ranked_search_location(scope.get("path", ""), query,
                                                  table_path=datasette.urls.table(name, TABLE),
                                                  search_path=datasette.urls.query(name, QUERY))
                if location is not None:
                    await send({"type": "http.response.start", "status": 302,
                                "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0")]})
                    await send({"type": "http.response.body", "body": b""})
                    return
            await app(scope, receive, send)

        return ranked_search

    return wrap
