"""The search box on the ``responses`` table, ranked.

Datasette's table page filters by a full-text search but keeps the table's
order: it sorts only by columns, and the rank of a match is not one
(Datasette's open issue #268, still so in 0.65). So ``serve`` sends the
search box of ``responses`` to the ``search`` canned query, which ranks as
``logs list -q`` does. Only a search as the box sends it moves: one with a
filter, another sort, a column search (``_search_prompt=``), a raw search
mode, a page (``_next``) or a format (``.json``, ``.csv``) keeps the table
page, filtered in the order asked for.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote

__all__ = ["ranked_search_location", "TABLE", "QUERY", "DEFAULT_SORT_DESC"]

TABLE = "responses"
QUERY = "search"
DEFAULT_SORT_DESC = "datetime_utc"  # the table's order in the metadata: newest first


def ranked_search_location(path: str, query_string: str, *, table_path: str, search_path: str) -> str | None:
    """Where a request for ``path?query_string`` is sent instead, or None to leave it.

    ``table_path`` is the page of ``responses``, ``search_path`` the page of
    the ``search`` query, both as Datasette builds them.
    """
    if path.rstrip("/") != table_path.rstrip("/"):
        return None
    args: dict[str, str] = {}
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        if key in args:
            return None
        args[key] = value
    search = args.pop("_search", "").strip()
    if not search or args.pop("_searchmode", "escaped") != "escaped":
        return None
    # The form's empty "add a filter" row.
    if args.pop("_filter_value", "") != "":
        return None
    args.pop("_filter_column", None)
    args.pop("_filter_op", None)
    sort, sort_desc, desc_box = args.pop("_sort", ""), args.pop("_sort_desc", ""), args.pop("_sort_by_desc", "")
    default_order = (
        (sort == "" and sort_desc in ("", DEFAULT_SORT_DESC))
        or (sort == DEFAULT_SORT_DESC and desc_box == "on" and sort_desc == "")  # the form, unchanged
    )
    if args or not default_order:
        return None
    return f"{search_path}?q={quote(search, safe='')}"
