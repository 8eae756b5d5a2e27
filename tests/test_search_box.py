"""serve: the search box of the responses table ranks like `logs list -q` (through Datasette's own client)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import quote

import pytest

from localfirst.records import Response
from localfirst.store import Store
from localfirst.web.search import ranked_search_location

pytest.importorskip("datasette")


@pytest.fixture
def searchable(isolated_home: Path) -> Path:
    """Older responses match "wal" best, so ranked and newest-first orders differ."""
    from localfirst import paths

    paths.ensure_home(create=True)
    path = paths.default_db_path()
    store = Store.open(path)
    texts = [
        ("wal wal wal: the write-ahead log, wal mode and wal files", "wal"),
        ("journal modes and wal", "rollback or wal"),
        ("about sqlite", "it has a wal mode"),
        ("nothing relevant here", "no match"),
        ("indexes", "b-trees"),
    ]
    for prompt, answer in texts:
        store.log(Response(model="m", prompt=prompt, response=answer))
    store.close()
    return path


def _client(path: Path):  # type: ignore[no-untyped-def]
    from localfirst.web import make_datasette

    return make_datasette(path).client


def _ranked(path: Path, query: str) -> list[str]:
    store = Store.open(path, for_reading=True)
    try:
        return [r.id or "" for r in store.list_responses(query=query, count=0)]
    finally:
        store.close()


def test_the_search_box_leads_to_the_ranked_search(searchable: Path) -> None:
    ranked = _ranked(searchable, "wal")
    assert len(ranked) == 3

    async def go() -> None:
        client = _client(searchable)
        # The table page shows the box.
        page = await client.get("/logs/responses")
        assert 'name="_search"' in page.text
        # What the box's form sends, untouched, and the address Datasette tidies it into.
        for asked in ("/logs/responses?_search=wal&_filter_column=&_filter_op=exact&_filter_value="
                      "&_sort=datetime_utc&_sort_by_desc=on",
                      "/logs/responses?_search=wal&_sort_desc=datetime_utc",
                      "/logs/responses?_search=wal"):
            moved = await client.get(asked)
            assert moved.status_code == 302, asked
            assert moved.headers["location"] == "/logs/search?q=wal"
        found = (await client.get("/logs/search.json?q=wal&_shape=objects")).json()["rows"]
        assert [row["id"] for row in found] == ranked
        # Newest first would be a different order: the ranking is what is tested.
        newest = (await client.get("/logs/responses.json?_search=wal&_shape=objects")).json()["rows"]
        assert sorted(row["id"] for row in newest) == sorted(ranked)
        assert [row["id"] for row in newest] != ranked
        html = (await client.get("/logs/search?q=wal")).text
        assert html.index(ranked[0]) < html.index(ranked[1]) < html.index(ranked[2])

    asyncio.run(go())


@pytest.mark.parametrize("asked", [
    "/logs/responses.json?_search=wal",                      # a format keeps the table's shape
    "/logs/responses?_search=wal&model__exact=m",            # with a filter
    "/logs/responses?_search=wal&_sort=datetime_utc",        # another order asked for
    "/logs/responses?_search=wal&_searchmode=raw",           # FTS syntax as typed
    "/logs/responses?_search_prompt=wal",                    # one column searched
    "/logs/responses?_search=wal&_next=5",                   # a later page
    "/logs/responses?_search=",                              # nothing to search
    "/logs/parts?_search=wal",                               # another table
])
def test_other_table_requests_are_left_to_datasette(searchable: Path, asked: str) -> None:
    async def go() -> None:
        got = await _client(searchable).get(asked)
        assert got.status_code != 302, asked

    asyncio.run(go())


@pytest.mark.parametrize("text", ['"unbalanced', "wal AND (", "naïve 日本語 & ?=#", "col:wal NEAR(x"])
def test_any_text_in_the_box_reaches_the_search_safely(searchable: Path, text: str) -> None:
    async def go() -> None:
        client = _client(searchable)
        moved = await client.get("/logs/responses?_search=" + quote(text, safe=""))
        assert moved.status_code == 302
        location = moved.headers["location"]
        assert location == "/logs/search?q=" + quote(text.strip(), safe="")
        shown = await client.get(location.replace("/logs/search", "/logs/search.json") + "&_shape=objects")
        assert shown.status_code == 200, shown.text

    asyncio.run(go())


@pytest.mark.parametrize("query,moved", [
    ("_search=wal", True),
    ("_search=+wal+", True),
    ("_search=wal&_searchmode=escaped", True),
    ("_search=wal&_sort_desc=datetime_utc", True),
    ("_search=wal&_sort_desc=model", False),
    ("_search=wal&_sort=datetime_utc&_sort_by_desc=on", True),
    ("_search=wal&_sort=model&_sort_by_desc=on", False),
    ("_search=wal&_search=other", False),
    ("_search=wal&_filter_column=model&_filter_op=exact&_filter_value=m", False),
    ("_search=wal&_facet=model", False),
    ("", False),
])
def test_which_requests_move(query: str, moved: bool) -> None:
    got = ranked_search_location("/db/responses", query, table_path="/db/responses", search_path="/db/search")
    assert (got is not None) == moved
    assert ranked_search_location("/db/parts", query, table_path="/db/responses", search_path="/db/search") is None
