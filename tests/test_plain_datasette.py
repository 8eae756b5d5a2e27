"""A plain `datasette` (not `localfirst serve`) with localfirst installed beside it.

Datasette loads the plugin from localfirst's `datasette` entry point, as
`datasette logs.db` does; these Datasettes are built with Datasette's own
class, never with `make_datasette`. The plugin acts on localfirst databases
only: llm's logs.db and a look-alike open beside one are left as Datasette
shows them.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from llm_dbs import CID, HAVE_LLM, NO_LLM, make_legacy_db, run_llm

from localfirst.records import Response
from localfirst.store import Store

pytest.importorskip("datasette")

DATASETTE = Path(sys.executable).parent / "datasette"
TEXTS = [
    ("wal wal wal: the write-ahead log, wal mode and wal files", "wal"),
    ("journal modes and wal", "rollback or wal"),
    ("about sqlite", "it has a wal mode"),
    ("nothing relevant here", "no match"),
]


def _localfirst_db(path: Path) -> Path:
    """Older responses match "wal" best, so the ranked order is not the newest-first one."""
    store = Store.open(path)
    cid = store.log(Response(model="m", prompt=TEXTS[0][0], response=TEXTS[0][1]))
    first = store.get_response(cid)
    assert first is not None
    for prompt, answer in TEXTS[1:]:
        store.log(Response(model="m", prompt=prompt, response=answer, conversation_id=first.conversation_id))
    store.close()
    return path


def _lookalike_db(path: Path) -> Path:
    """Not localfirst's: the same table names, an FTS5 index and sqlite-utils migrations of another set."""
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE conversations (id TEXT PRIMARY KEY, name TEXT);
        CREATE TABLE responses (id TEXT PRIMARY KEY, conversation_id TEXT, prompt TEXT, response TEXT);
        CREATE VIRTUAL TABLE responses_fts USING fts5(prompt, response, content='responses');
        CREATE TABLE _sqlite_migrations (migration_set TEXT, name TEXT, applied_at TEXT);
        INSERT INTO _sqlite_migrations VALUES ('someone-else', 'm001', '2026-01-01');
        INSERT INTO conversations VALUES ('01h00000000000000000000000', 'theirs');
        INSERT INTO responses VALUES ('01h00000000000000000000001', '01h00000000000000000000000', 'wal', 'wal');
        INSERT INTO responses_fts (rowid, prompt, response) SELECT rowid, prompt, response FROM responses;
    """)
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def dbs(tmp_path: Path) -> dict[str, Path]:
    # A name with a dot: Datasette serves it as /my~2Ehistory, and the plugin follows it.
    return {"my.history": _localfirst_db(tmp_path / "my.history.db"),
            "lookalike": _lookalike_db(tmp_path / "lookalike.db")}


def _datasette(*paths: Path, **kwargs: Any) -> Any:
    from datasette.app import Datasette

    return Datasette([str(p) for p in paths], **kwargs)


def _ranked_by_the_cli(path: Path, query: str) -> list[str]:
    done = subprocess.run([sys.executable, "-m", "localfirst", "--db", str(path), "logs", "list", "-q", query,
                           "-n", "0", "--json"], capture_output=True, text=True, env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    return [r["id"] for r in json.loads(done.stdout)]


def test_datasette_loads_the_plugin_from_the_entry_point() -> None:
    from datasette.plugins import pm

    import localfirst.web.plugin as plugin

    assert pm.get_plugin("localfirst") is plugin
    # Loaded by pluggy from the installed distribution's entry point, not registered by serve.
    assert [dist.project_name for p, dist in pm.list_plugin_distinfo() if p is plugin] == ["localfirst"]
    listed = subprocess.run([str(DATASETTE), "plugins"], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    mine = [p for p in json.loads(listed.stdout) if p["name"] == "localfirst"]
    assert len(mine) == 1
    assert {"asgi_wrapper", "canned_queries", "get_metadata", "register_routes", "render_cell"} <= set(
        mine[0]["hooks"])


def test_loading_the_plugin_imports_nothing_heavy() -> None:
    """Every `datasette` start in this environment loads the plugin: it must not pull in the store."""
    code = ("import sys, datasette.app; print(json.dumps(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('localfirst', 'sync', 'markdown_it', 'sqlite_utils', 'typer', 'boto3'))))")
    done = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    assert "localfirst.web.plugin" in loaded
    heavy = {"localfirst.store", "localfirst.db", "localfirst.records", "localfirst.cli", "markdown_it",
             "sqlite_utils", "typer", "boto3", "sync"}
    assert not loaded & heavy, sorted(loaded & heavy)


def test_the_search_box_ranks_like_logs_list_q_in_plain_datasette(dbs: dict[str, Path], tmp_path: Path) -> None:
    ranked = _ranked_by_the_cli(dbs["my.history"], "wal")
    assert len(ranked) == 3
    work = _localfirst_db(tmp_path / "work.db")

    async def go() -> None:
        client = _datasette(dbs["lookalike"], dbs["my.history"], work).client
        # Every localfirst database open ranks, each to its own query.
        assert (await client.get("/work/responses?_search=wal")).headers["location"] == "/work/search?q=wal"
        assert ([r["id"] for r in (await client.get("/work/search.json?q=wal&_shape=objects")).json()["rows"]]
                == _ranked_by_the_cli(work, "wal"))
        assert 'name="_search"' in (await client.get("/my~2Ehistory/responses")).text
        for asked in ("/my~2Ehistory/responses?_search=wal&_filter_column=&_filter_op=exact&_filter_value="
                      "&_sort=datetime_utc&_sort_by_desc=on",
                      "/my~2Ehistory/responses?_search=wal"):
            moved = await client.get(asked)
            assert moved.status_code == 302, asked
            assert moved.headers["location"] == "/my~2Ehistory/search?q=wal"
        found = (await client.get("/my~2Ehistory/search.json?q=wal&_shape=objects")).json()["rows"]
        assert [row["id"] for row in found] == ranked
        # The table page itself (a format keeps it) filters newest first: a different order.
        newest = (await client.get("/my~2Ehistory/responses.json?_search=wal&_shape=objects")).json()["rows"]
        assert sorted(row["id"] for row in newest) == sorted(ranked) and [row["id"] for row in newest] != ranked

    asyncio.run(go())


def test_plain_datasette_describes_hides_and_links_like_serve(dbs: dict[str, Path]) -> None:
    store = Store.open(dbs["my.history"], for_reading=True)
    rows = store.list_responses(count=0)
    store.close()
    cid = rows[0].conversation_id

    async def go() -> None:
        client = _datasette(dbs["my.history"]).client
        index = (await client.get("/my~2Ehistory.json")).json()
        hidden = {t["name"] for t in index["tables"] if t["hidden"]}
        assert {"meta", "_sqlite_migrations", "sync_outbox"} <= hidden
        assert {q["name"] for q in index["queries"]} == {"search", "conversation", "tokens_by_model_and_month"}
        table = (await client.get("/my~2Ehistory/responses")).text
        assert "Every exchange" in table
        assert f'href="/my~2Ehistory/-/conversation/{cid}#' in table
        page = await client.get(f"/my~2Ehistory/-/conversation/{cid}")
        assert page.status_code == 200 and page.headers["content-security-policy"].startswith("default-src 'none'")
        assert "journal modes and wal" in page.text
        assert f'href="/my~2Ehistory/conversations/{cid}"' in page.text
        # Without a database in the address: the first localfirst database.
        assert (await client.get(f"/-/conversation/{cid}")).text == page.text
        assert (await client.get("/my~2Ehistory/-/conversation/01h00000000000000000000000")).status_code == 404
        # Datasette's own pages are unchanged.
        for path in ("/", "/-/plugins.json", "/-/metadata.json", "/my~2Ehistory/parts", "/-/databases.json"):
            assert (await client.get(path)).status_code == 200, path

    asyncio.run(go())


def _assert_left_alone(datasette: Any, name: str, table_page_must_have: str | None) -> None:
    async def go() -> None:
        client = datasette.client
        got = await client.get(f"/{name}/responses?_search=wal")
        assert got.status_code == 200, got.status_code  # filtered by Datasette, not sent on
        table = (await client.get(f"/{name}/responses")).text
        assert table_page_must_have is None or table_page_must_have in table
        assert "transcript</a>" not in table and "-/conversation/" not in table
        index = (await client.get(f"/{name}.json")).json()
        assert index["queries"] == []
        # Datasette hides full-text indexes on its own; nothing else is hidden.
        assert all("_fts" in t["name"] for t in index["tables"] if t["hidden"])
        assert any(t["name"] == "_sqlite_migrations" for t in index["tables"]) == (name == "lookalike")
        assert (await client.get(f"/{name}/search?q=wal")).status_code == 404
        assert (await client.get(f"/{name}/-/conversation/01h00000000000000000000000")).status_code == 404
        assert datasette.metadata(database=name) == {}

    asyncio.run(go())


def test_a_lookalike_database_beside_a_localfirst_one_is_left_alone(dbs: dict[str, Path]) -> None:
    from localfirst.web.detect import is_localfirst_file

    assert is_localfirst_file(dbs["my.history"]) and not is_localfirst_file(dbs["lookalike"])
    ds = _datasette(dbs["my.history"], dbs["lookalike"])
    _assert_left_alone(ds, "lookalike", "01h00000000000000000000001")

    async def go() -> None:  # while the localfirst one beside it still ranks
        moved = await ds.client.get("/my~2Ehistory/responses?_search=wal")
        assert moved.headers["location"] == "/my~2Ehistory/search?q=wal"

    asyncio.run(go())


@pytest.mark.skipif(not HAVE_LLM, reason=NO_LLM)
def test_llms_own_database_is_not_taken_for_a_localfirst_one(tmp_path: Path, dbs: dict[str, Path]) -> None:
    from localfirst.web.detect import is_localfirst_file

    (tmp_path / "llm").mkdir()
    run_llm(tmp_path / "llm", "-m", "echo", "wal mode, please")
    llm_db = tmp_path / "llm" / "logs.db"
    tables = {r[0] for r in sqlite3.connect(llm_db).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"responses", "responses_fts", "conversations"} <= tables  # what a careless check would go by
    assert not is_localfirst_file(llm_db)
    # llm 0.36 logs turns elsewhere; its responses table is there, empty.
    _assert_left_alone(_datasette(llm_db, dbs["my.history"]), "logs", None)


def test_an_older_llm_database_is_not_taken_for_a_localfirst_one(tmp_path: Path, dbs: dict[str, Path]) -> None:
    from localfirst.web.detect import is_localfirst_file

    llm_db = make_legacy_db(tmp_path / "logs.db")  # llm 0.31's schema; its ids are ULIDs like ours
    assert not is_localfirst_file(llm_db)
    ds = _datasette(dbs["my.history"], llm_db)
    _assert_left_alone(ds, "logs", "first question")

    async def go() -> None:
        conversations = (await ds.client.get("/logs/conversations")).text
        assert CID in conversations and "-/conversation/" not in conversations

    asyncio.run(go())


@pytest.mark.parametrize("content", [b"", b"not a database at all" * 100, None])
def test_files_that_are_not_sqlite_are_not_localfirst(tmp_path: Path, content: bytes | None) -> None:
    from localfirst.web.detect import is_localfirst_file

    path = tmp_path / "x.db"
    if content is not None:
        path.write_bytes(content)
    assert is_localfirst_file(path) is False
    assert is_localfirst_file(path, immutable=True) is False


def test_an_immutable_localfirst_database_ranks_too(dbs: dict[str, Path]) -> None:
    async def go() -> None:
        client = _datasette(immutables=[str(dbs["my.history"])]).client
        moved = await client.get("/my~2Ehistory/responses?_search=wal")
        assert moved.headers["location"] == "/my~2Ehistory/search?q=wal"

    asyncio.run(go())


def test_the_transcript_keeps_datasettes_permissions(dbs: dict[str, Path]) -> None:
    store = Store.open(dbs["my.history"], for_reading=True)
    cid = store.list_responses(count=1)[0].conversation_id
    store.close()

    async def go() -> None:
        ds = _datasette(dbs["my.history"], metadata={"databases": {"my.history": {"allow": False}}})
        for path in (f"/my~2Ehistory/-/conversation/{cid}", f"/-/conversation/{cid}", "/my~2Ehistory/responses"):
            assert (await ds.client.get(path)).status_code == 403, path

    asyncio.run(go())


def test_serve_registers_the_plugin_once(dbs: dict[str, Path]) -> None:
    from datasette.plugins import pm

    import localfirst.web.plugin as plugin
    from localfirst.web import make_datasette

    make_datasette(dbs["my.history"])
    make_datasette(dbs["my.history"])
    assert pm.get_plugin("localfirst") is plugin
    assert [impl.plugin for impl in pm.hook.asgi_wrapper.get_hookimpls()].count(plugin) == 1
    assert [p for p in pm.get_plugins() if p is plugin] == [plugin]


def test_serve_registers_the_plugin_when_datasette_did_not(dbs: dict[str, Path]) -> None:
    # Datasette skips entry points when sys._called_from_test is set (its own test suite's switch).
    code = f"""
import asyncio, sys
sys._called_from_test = True
from datasette.plugins import pm
assert pm.get_plugin("localfirst") is None
from localfirst.web import make_datasette
ds = make_datasette({str(dbs["my.history"])!r})
got = asyncio.run(ds.client.get("/my~2Ehistory/responses?_search=wal"))
print(got.status_code, got.headers["location"])
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["302", "/my~2Ehistory/search?q=wal"]


# -- a real `datasette` process ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def datasette_process(tmp_path: Path) -> Iterator[str]:
    """`datasette logs.db lookalike.db` as a person runs it: the localfirst database under its usual name."""
    logs = _localfirst_db(tmp_path / "logs.db")
    other = _lookalike_db(tmp_path / "lookalike.db")
    port = _free_port()
    proc = subprocess.Popen([str(DATASETTE), str(logs), str(other), "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                httpx.get(url, timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()[1]
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_real_datasette_process_ranks_the_search_box(datasette_process: str, tmp_path: Path) -> None:
    url = datasette_process
    moved = httpx.get(f"{url}/logs/responses?_search=wal")
    assert moved.status_code == 302 and moved.headers["location"] == "/logs/search?q=wal"
    found = httpx.get(f"{url}/logs/search.json?q=wal&_shape=objects").json()["rows"]
    assert [row["id"] for row in found] == _ranked_by_the_cli(tmp_path / "logs.db", "wal")
    left = httpx.get(f"{url}/lookalike/responses?_search=wal")
    assert left.status_code == 200 and "01h00000000000000000000001" in left.text
    cid = found[0]["conversation_id"]
    page = httpx.get(f"{url}/logs/-/conversation/{cid}")
    assert page.status_code == 200 and re.search(r"<h1>[^<]*wal", page.text)



def test_without_the_web_extra_search_ranks_and_the_transcript_page_says_what_is_missing(
        dbs: dict[str, Path]) -> None:
    """`datasette install localfirst` brings localfirst without markdown-it-py, the page's renderer."""
    store = Store.open(dbs["my.history"], for_reading=True)
    cid = store.list_responses(count=1)[0].conversation_id
    store.close()
    code = f"""
import asyncio, sys
sys.modules["markdown_it"] = None
from datasette.app import Datasette
ds = Datasette([{str(dbs["my.history"])!r}])
moved = asyncio.run(ds.client.get("/my~2Ehistory/responses?_search=wal"))
page = asyncio.run(ds.client.get("/my~2Ehistory/-/conversation/{cid}"))
print(moved.status_code, moved.headers["location"], page.status_code)
print(page.text)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    first, text = done.stdout.split("\n", 1)
    assert first.split() == ["302", "/my~2Ehistory/search?q=wal", "500"]
    assert text.strip() == "the conversation page needs the web extra: pip install 'localfirst[web]'"


def test_a_localfirst_database_not_yet_upgraded_gets_a_message_not_a_write(dbs: dict[str, Path]) -> None:
    path = dbs["my.history"]
    conn = sqlite3.connect(path)
    last = conn.execute("SELECT name FROM _sqlite_migrations ORDER BY rowid DESC LIMIT 1").fetchone()[0]
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = ?", [last])
    conn.commit()
    cid = conn.execute("SELECT id FROM conversations LIMIT 1").fetchone()[0]
    conn.close()
    before = path.read_bytes()

    async def go() -> None:
        page = await _datasette(path).client.get(f"/my~2Ehistory/-/conversation/{cid}")
        assert page.status_code == 500
        assert page.text == f"{path} was written by an older localfirst: any localfirst command on it, " \
                            "or localfirst serve, upgrades it"

    asyncio.run(go())
    assert path.read_bytes() == before
