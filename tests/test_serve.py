"""localfirst serve: Datasette on the database, the conversation page, a real server and a real browser."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import run_subprocess
from helpers import assert_one_line_error

from localfirst.records import Attachment, Part, Response
from localfirst.store import Store

pytest.importorskip("datasette", reason="the web extra (datasette) is not installed: pip install 'localfirst[web]'")

HOSTILE = "<script>document.body.setAttribute('data-pwned','1')</script>"
HOSTILE_IMG = "<img src=x onerror=\"document.body.setAttribute('data-pwned','2')\">"


def _png(width: int = 120, height: int = 60) -> bytes:
    """A solid orange PNG, made here so that its bytes are valid."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x88\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


PNG = _png()


@pytest.fixture
def served_db(isolated_home: Path) -> tuple[Path, str, list[str]]:
    from localfirst import paths

    paths.ensure_home(create=True)
    path = paths.default_db_path()
    store = Store.open(path)
    first = Response(model="gpt-test", system="You are terse.", prompt="Explain **WAL** mode",
                     input_tokens=12, output_tokens=34, parts=[
                         Part(type="attachment", role="user", attachment=Attachment(PNG, "image/png")),
                         Part(type="reasoning", text="The user wants *journaling* facts."),
                         Part(type="text",
                              text="WAL keeps a **write-ahead log**.\n\n```sql\nPRAGMA journal_mode;\n```"),
                         Part(type="tool_call", tool_name="lookup", tool_call_id="call_1", arguments={"q": "wal"}),
                     ])
    rids = [store.log(first)]
    cid = first.conversation_id or ""
    rids.append(store.log(Response(model="gpt-test", prompt="and the tool said?", conversation_id=cid,
                                   response=f"Here it is: {HOSTILE} and {HOSTILE_IMG} [x](javascript:alert(1))",
                                   parts=[Part(type="tool_result", role="user", tool_name="lookup",
                                               tool_call_id="call_1", text="wal is a journal mode")])))
    store.close()
    return path, cid, rids


def _client(path: Path):  # type: ignore[no-untyped-def]
    from localfirst.web import make_datasette

    return make_datasette(path).client


def test_the_conversation_page_shows_the_chat_and_runs_no_logged_script(served_db) -> None:
    path, cid, rids = served_db

    async def go() -> None:
        page = await _client(path).get(f"/-/conversation/{cid}")
        assert page.status_code == 200
        assert "script-src" not in page.headers["content-security-policy"]
        assert page.headers["content-security-policy"].startswith("default-src 'none'")
        html = page.text
        assert "<script" not in html
        assert "&lt;script&gt;document.body.setAttribute" in html
        assert "<img src=x" not in html and "&lt;img src=x onerror=" in html
        assert "javascript:" not in re.findall(r'href="([^"]*)"', html).__str__()
        assert "<strong>WAL</strong>" in html and "<strong>write-ahead log</strong>" in html
        assert "<details><summary>Reasoning</summary><p>The user wants <em>journaling</em> facts.</p>" in html
        assert "You are terse." in html and "12 in / 34 out tokens" in html
        assert 'src="data:image/png;base64,' in html
        assert 'href="/logs/attachments/' in html and "download" in html
        assert "Tool call" in html and "lookup" in html and "wal is a journal mode" in html
        assert html.index(rids[0]) < html.index(rids[1])
        missing = await _client(path).get("/-/conversation/01h00000000000000000000000")
        assert missing.status_code == 404

    asyncio.run(go())


def test_datasette_hides_internal_tables_describes_and_links_to_transcripts(served_db) -> None:
    path, cid, rids = served_db

    async def go() -> None:
        client = _client(path)
        index = (await client.get("/logs.json")).json()
        visible = {t["name"] for t in index["tables"] if not t["hidden"]}
        assert visible == {"conversations", "responses", "parts", "attachments", "templates",
                           "template_versions", "template_labels", "tombstones"}
        assert {v["name"] for v in index["views"]} == {"exchanges", "conversation_summaries"}
        assert {q["name"] for q in index["queries"]} == {"search", "conversation", "tokens_by_model_and_month"}
        table = await client.get("/logs/responses")
        assert f'href="/logs/-/conversation/{cid}#{rids[0]}"' in table.text
        assert "Every exchange" in table.text
        hits = (await client.get("/logs/search.json?q=wal&_shape=objects")).json()["rows"]
        assert [h["id"] for h in hits] == [r.id for r in Store.open(path).list_responses(query="wal")]
        tokens = (await client.get("/logs/tokens_by_model_and_month.json?_shape=objects")).json()["rows"]
        assert tokens[0]["model"] == "gpt-test" and tokens[0]["input_tokens"] == 12
        assert (await client.get("/logs.db")).status_code in (403, 404)
        # Read-only: SQL that writes is refused and nothing changes.
        wrote = await client.get("/logs.json?sql=delete+from+responses")
        assert wrote.status_code >= 400
        assert len(Store.open(path, for_reading=True).list_responses(count=0)) == 2
        blob = await client.get(f"/logs/attachments/{__import__('hashlib').sha256(PNG).hexdigest()}.blob"
                                "?_blob_column=content")
        assert blob.status_code == 200 and blob.content == PNG

    asyncio.run(go())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(served_db) -> Iterator[tuple[str, str, list[str]]]:
    _, cid, rids = served_db
    proc = subprocess.Popen([sys.executable, "-m", "localfirst", "serve"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/logs", url), url
        for _ in range(100):
            try:
                httpx.get(url, timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url, cid, rids
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_serve_listens_on_127_0_0_1_and_a_free_port(server) -> None:
    url, cid, _ = server
    base = url.rsplit("/", 1)[0]
    assert httpx.get(url).status_code == 200
    page = httpx.get(f"{base}/-/conversation/{cid}")
    assert page.status_code == 200 and "Explain <strong>WAL</strong> mode" in page.text


def test_serve_refuses_a_port_in_use_a_missing_database_and_a_missing_extra(served_db, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert_one_line_error(run_subprocess("serve", "--port", str(port)), f"port {port}", "in use", "--port")
    assert_one_line_error(run_subprocess("--db", str(tmp_path / "none.db"), "serve"), "no database at")
    blocked = subprocess.run(
        [sys.executable, "-c", "import sys; sys.modules['datasette'] = None; "
         "from localfirst.cli import main; sys.exit(main(['serve']))"],
        capture_output=True, text=True, env=dict(os.environ))
    assert_one_line_error(blocked, "pip install 'localfirst[web]'")


# -- a real browser ------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"


def _browser(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--no-first-run", "--disable-dev-shm-usage", "--virtual-time-budget=3000", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium: `make test` installs Debian's chromium "
                                              "where it can (apt-get install chromium)")
def test_a_real_browser_shows_the_transcript_and_runs_no_logged_script(server) -> None:
    url, cid, rids = server
    base = url.rsplit("/", 1)[0]
    page = f"{base}/-/conversation/{cid}"
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "conversation.png"
    shot.unlink(missing_ok=True)
    taken = _browser("--window-size=1000,1400", f"--screenshot={shot}", page)
    assert shot.exists() and shot.stat().st_size > 10_000, taken.stderr[-2000:]
    dom = _browser("--dump-dom", page).stdout
    assert "Explain <strong>WAL</strong> mode" in dom and "write-ahead log" in dom
    assert "&lt;script&gt;document.body.setAttribute('data-pwned','1')&lt;/script&gt;" in dom
    assert not re.search(r"<body[^>]*data-pwned", dom), "a script from a logged response ran"
    assert "<script" not in dom
    # Datasette's search box on the table: the browser is led to the ranked canned query.
    table = _browser("--dump-dom", f"{url}/responses").stdout
    assert 'name="_search"' in table
    box = _browser("--dump-dom", f"{url}/responses?_search=tool").stdout
    assert 'name="q"' in box and 'value="tool"' in box and "responses_fts.rank" in box
    assert rids[1] in box and rids[0] not in box
    found = _browser("--dump-dom", f"{url}/search?q=wal").stdout
    assert rids[0] in found and rids[1] not in found
    _browser("--window-size=1200,900", f"--screenshot={ARTIFACTS / 'search.png'}", f"{url}/search?q=wal")
