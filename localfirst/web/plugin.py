"""The Datasette plugin: a localfirst database browsed as ``localfirst serve`` shows it.

Datasette loads it through the ``datasette`` entry point wherever localfirst
is installed beside it, so a plain ``datasette logs.db`` has it as well as
``serve``. It acts only on the localfirst databases among those open
(:mod:`.detect`), under whatever name each is served, and leaves any other
database as Datasette shows it. For each localfirst database:

- its tables' descriptions and hidden bookkeeping tables (``get_metadata``)
  and its canned queries (``canned_queries``), from :mod:`.metadata`;
- the search box of ``responses`` sent to the ranked ``search`` query
  (:mod:`.search`);
- the conversation page, ``/<database>/-/conversation/<id>`` (and
  ``/-/conversation/<id>`` for the first localfirst database), with a link to
  it from every response and conversation row.

Importing this module stays cheap, since every Datasette start pays for it:
the store, and the Markdown renderer of the page, are imported when a
transcript is asked for.
"""

from __future__ import annotations

import asyncio
from typing import Any

from datasette import Response as WebResponse
from datasette import hookimpl
from datasette.utils import tilde_decode
from markupsafe import Markup, escape

from .. import ids
from .detect import localfirst_database, localfirst_databases
from .metadata import database_metadata, queries
from .page import CSP, render_conversation
from .search import QUERY, TABLE, ranked_search_location

__all__ = ["conversation_page", "conversation_path", "NAME"]

NAME = "localfirst"  # the plugin's name in Datasette: the entry point's, and serve's when it registers it
_CID = r"(?P<cid>[0-9A-Za-z]{26})"
_LINKED = {"responses": "conversation_id", "exchanges": "conversation_id", "conversations": "id",
           "conversation_summaries": "id"}
_SHOWN = ("responses", "conversations", "parts", "attachments")  # the tables a transcript shows rows of
_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}


def conversation_path(datasette: Any, database: str, cid: str) -> str:
    """The address of a conversation's page in the database served as ``database``."""
    return f"{datasette.urls.database(database)}/-/conversation/{cid}"


def _render(path: str, base: str, cid: str, *, immutable: bool = False) -> str | None:
    from ..db import check_schema, connect
    from ..errors import DatabaseError
    from ..store import Store

    if immutable:
        # As Datasette reads a file served with -i: a read-only folder (a backup, a mounted
        # image) has no room for the -shm file that mode=ro needs to read a WAL file.
        import sqlite3
        from pathlib import Path

        conn = sqlite3.connect(Path(path).resolve().as_uri() + "?immutable=1", uri=True, isolation_level=None,
                               check_same_thread=False)
    else:
        conn = connect(path, readonly=True)
    try:
        # A plain datasette may show a file no localfirst has upgraded yet; serve upgrades it first.
        if check_schema(conn, path):
            raise DatabaseError(f"{path} was written by an older localfirst: any localfirst command on it, "
                                "or localfirst serve, upgrades it")
    except BaseException:
        conn.close()
        raise
    store = Store(conn, path=path)
    try:
        if not store.conversation_exists(cid):
            return None
        name = store.conn.execute("SELECT name FROM conversations WHERE id = ?", [cid]).fetchone()[0]
        return render_conversation(cid, name, store.history(cid), base=base, attachment=store.attachment_content)
    finally:
        store.close()


def _database(datasette: Any, route: str | None) -> Any | None:
    """The localfirst database a conversation page's address names; the first one when it names none."""
    if route is None:
        found = localfirst_databases(datasette)
        return found[0] if found else None
    try:
        db = datasette.get_database(route=tilde_decode(route))
    except KeyError:
        return None
    return localfirst_database(datasette, db.name)


async def conversation_page(datasette: Any, request: Any) -> Any:
    from ..errors import LocalFirstError

    headers = dict(_HEADERS)
    cid = request.url_vars["cid"].lower()
    db = _database(datasette, request.url_vars.get("database"))
    if db is None:
        return WebResponse.text("no localfirst database here", status=404, headers=headers)
    # The page shows rows of these tables: whoever may not see any one of them may not see it. Each
    # table is checked as its own page is (its rule, else the database's, else the instance's): in
    # one list, Datasette would stop at the first table whose rule allows.
    for table in _SHOWN:
        await datasette.ensure_permissions(request.actor, [
            ("view-table", (db.name, table)), ("view-database", db.name), "view-instance"])
    if not ids.is_id(cid):
        return WebResponse.text("not a conversation id", status=404, headers=headers)
    try:
        page = await asyncio.to_thread(_render, db.path, datasette.urls.database(db.name), cid,
                                       immutable=not db.is_mutable)
    except LocalFirstError as exc:
        return WebResponse.text(str(exc), status=500, headers=headers)
    if page is None:
        return WebResponse.text(f"no conversation with id {cid}", status=404, headers=headers)
    return WebResponse.html(page, headers=headers)


@hookimpl
def register_routes() -> list[tuple[str, Any]]:
    return [(rf"^/-/conversation/{_CID}$", conversation_page),
            (rf"^/(?P<database>[^/.]+)/-/conversation/{_CID}$", conversation_page)]


@hookimpl
def render_cell(row: Any, value: Any, column: str, table: str | None, database: str, datasette: Any) -> Any:
    if table is None or _LINKED.get(table) != column:
        return None
    # A foreign key Datasette expanded with its label: {"value": id, "label": name}.
    label = value.get("label") if isinstance(value, dict) else None
    cid = value.get("value") if isinstance(value, dict) else value
    if not isinstance(cid, str) or not ids.is_id(cid) or localfirst_database(datasette, database) is None:
        return None
    anchor = f"#{row['id']}" if table in ("responses", "exchanges") else ""
    shown = escape(cid)
    if label is not None:
        row_url = datasette.urls.row(database, "conversations", cid)
        shown = Markup(f'<a href="{escape(row_url)}">{escape(label)}</a>')
    page = conversation_path(datasette, database, cid) + anchor
    return Markup(f'{shown} <a href="{escape(page)}">transcript</a>')


@hookimpl
def get_metadata(datasette: Any, database: str | None) -> dict[str, Any] | None:
    names = [database] if database is not None else list(datasette.databases)
    found = {name: database_metadata() for name in names if localfirst_database(datasette, name) is not None}
    return {"databases": found} if found else None


@hookimpl
def canned_queries(datasette: Any, database: str) -> dict[str, Any] | None:
    return queries() if localfirst_database(datasette, database) is not None else None


def _ranked_location(datasette: Any, path: str, query: str) -> str | None:
    for name in list(datasette.databases):
        location = ranked_search_location(path, query, table_path=datasette.urls.table(name, TABLE),
                                          search_path=datasette.urls.query(name, QUERY))
        if location is not None:
            # Only one database's table has this address: it decides.
            return location if localfirst_database(datasette, name) is not None else None
    return None


@hookimpl
def asgi_wrapper(datasette: Any) -> Any:
    def wrap(app: Any) -> Any:
        async def ranked_search(scope: dict[str, Any], receive: Any, send: Any) -> None:
            query = scope.get("query_string", b"") if scope.get("type") == "http" else b""
            if b"_search=" in query and scope.get("method") in ("GET", "HEAD"):
                location = _ranked_location(datasette, scope.get("path", ""), query.decode("latin-1"))
                if location is not None:
                    await send({"type": "http.response.start", "status": 302,
                                "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0")]})
                    await send({"type": "http.response.body", "body": b""})
                    return
            await app(scope, receive, send)

        return ranked_search

    return wrap
