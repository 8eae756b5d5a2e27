"""Attacks on the typer-free ``logs list``, the plain-Datasette plugin, m070_parts and the overlapped bootstrap.

Each test is a way a user or a hostile file could break one of them, run
against the real parts: a subprocess of the command, Datasette's own class
on a real SQLite file, a folder remote.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from localfirst.records import Attachment, Part, Response
from localfirst.store import Store

# -- the transcript page and Datasette's permissions ----------------------------------------------


def _without_root() -> list[str]:
    """The command prefix that runs a child without root's right to ignore file permissions (none needed
    when this is not root); skips the test where that cannot be done."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]


def _transcript_db(path: Path) -> str:
    store = Store.open(path)
    rid = store.log(Response(model="m", prompt="a secret plan", response="noted", parts=[
        Part(type="attachment", role="user", attachment=Attachment(b"\x89PNG secret", "image/png"))]))
    cid = store.get_response(rid).conversation_id
    store.close()
    assert cid is not None
    return cid


@pytest.mark.parametrize("tables", [
    # responses open to all: Datasette's one-list check stopped there and showed the denied tables' rows.
    {"responses": {"allow": True}},
    {"responses": {"allow": True}, "conversations": {"allow": True}, "parts": {"allow": True}},
    # the database open, one table shut: the attachments' bytes were shown inline all the same.
    {"attachments": {"allow": False}},
    {"parts": {"allow": False}},
])
def test_the_transcript_needs_every_table_it_shows(tmp_path: Path, tables: dict[str, Any]) -> None:
    pytest.importorskip("datasette")
    from datasette.app import Datasette

    db = tmp_path / "logs.db"
    cid = _transcript_db(db)
    shut = {"allow": {"id": "admin"}} if any(v["allow"] is True for v in tables.values()) else {}
    metadata = {"databases": {"logs": {**shut, "tables": tables}}}

    async def go() -> tuple[int, list[int]]:
        ds = Datasette([str(db)], metadata=metadata)
        page = (await ds.client.get(f"/logs/-/conversation/{cid}")).status_code
        own = [(await ds.client.get(f"/logs/{t}")).status_code
               for t in ("responses", "conversations", "parts", "attachments")]
        return page, own

    page, own = asyncio.run(go())
    assert 403 in own  # one of the tables is shut to this visitor ...
    assert page == 403  # ... so the page that shows its rows is too


def test_the_transcript_is_shown_when_every_table_is_open(tmp_path: Path) -> None:
    pytest.importorskip("datasette")
    from datasette.app import Datasette

    db = tmp_path / "logs.db"
    cid = _transcript_db(db)
    names = ("responses", "conversations", "parts", "attachments")
    metadata = {"databases": {"logs": {"allow": {"id": "admin"},
                                       "tables": {t: {"allow": True} for t in names}}}}

    async def go() -> int:
        return (await Datasette([str(db)], metadata=metadata).client.get(f"/logs/-/conversation/{cid}")).status_code

    assert asyncio.run(go()) == 200


# -- a bootstrap whose parts are checked while the one before is applied --------------------------


def _compacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, responses: int) -> tuple[Path, Store, list[str]]:
    """A remote whose history is one snapshot of ``responses`` responses, one row a part; a new machine."""
    from synctools import log, new_store

    import sync
    from sync import receive, snapshot

    root = tmp_path / "remote"
    root.mkdir()
    a = new_store(tmp_path / "a.db")
    sync.add_remote(a, "origin", root.as_uri())
    for i in range(responses):
        log(a, f"response {i}")
    sync.sync(a)
    monkeypatch.setattr(snapshot, "PART_ROWS", 1)
    sync.compact(a, purge=True)
    monkeypatch.setattr(receive, "BOOTSTRAP_AFTER", 0)
    fresh = new_store(tmp_path / "fresh.db")
    sync.add_remote(fresh, "origin", root.as_uri())
    parts = sorted(p.relative_to(root).as_posix() for p in (root / "snapshots").rglob("part-*.jsonl.gz"))
    assert len(parts) > responses  # one part a row: responses, conversations and the rest
    a.close()
    return root, fresh, parts


def _rows(store: Store) -> int:
    return sum(store.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
               for t in ("responses", "conversations"))


@pytest.mark.parametrize("damage", ["missing", "altered"])
def test_a_bad_part_in_the_middle_keeps_the_parts_before_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            damage: str) -> None:
    """Parts before a bad one are applied (a missing part as much as an altered one); none of it is."""
    from synctools import raw_get, raw_put

    import sync
    from localfirst.errors import LocalFirstError

    root, fresh, parts = _compacted(tmp_path, monkeypatch, 4)
    bad = parts[3]
    if damage == "missing":
        (root / bad).unlink()
    else:
        raw_put(root, bad, raw_get(root, bad)[:-8] + b"\0" * 8)
    applied: list[int] = []
    from sync import snapshot
    real = snapshot._apply_part

    def counting(s: Any, key: str, batch: Any, turns: Any) -> int:
        applied.append(parts.index(key))
        return real(s, key, batch, turns)

    monkeypatch.setattr(snapshot, "_apply_part", counting)
    with pytest.raises(LocalFirstError):
        sync.pull(fresh)
    assert applied == [0, 1, 2]  # in order, each before the bad one, and nothing of it or after it
    assert _rows(fresh) == 3


def test_a_failing_apply_while_the_next_part_is_checked_leaves_no_thread(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import sync
    from sync import snapshot

    _root, fresh, parts = _compacted(tmp_path, monkeypatch, 3)
    real_check = snapshot.decode_part
    started = threading.Event()

    def slow_check(*args: Any, **kwargs: Any) -> Any:
        started.set()
        threading.Event().wait(0.2)  # still checking when the apply before it fails
        return real_check(*args, **kwargs)

    def failing(s: Any, key: str, batch: Any, turns: Any) -> int:
        assert started.wait(10)
        raise KeyboardInterrupt

    monkeypatch.setattr(snapshot, "decode_part", slow_check)
    monkeypatch.setattr(snapshot, "_apply_part", failing)
    with pytest.raises(KeyboardInterrupt):
        sync.pull(fresh)
    left = [t.name for t in threading.enumerate() if t.name.startswith(("localfirst-decode", "localfirst-fetch"))]
    assert left == []
    assert _rows(fresh) == 0


# -- logs list, with and without typer, where the output cannot be written ----------------------------

DRIVER = """\
import sys
if sys.argv[1] == "fast":
    from localfirst.entry import main
else:
    from localfirst.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture
def listed(tmp_path: Path) -> dict[str, Path]:
    home = tmp_path / "home"
    home.mkdir()
    store = Store.open(home / "logs.db")
    store.log(Response(model="m", prompt="hello \u2713", response="party \U0001f389 \u2014 time",
                       datetime_utc="2026-01-01T10:00:00.000000Z"))
    store.close()
    (tmp_path / "driver.py").write_text(DRIVER)
    return {"home": home, "driver": tmp_path / "driver.py"}


def _both_ways(listed: dict[str, Path], args: list[str], *, env: dict[str, str] | None = None,
               redirect: str = "") -> dict[str, tuple[int, bytes, bytes]]:
    import shlex

    out = {}
    for mode in ("fast", "typer"):
        line = shlex.join([sys.executable, str(listed["driver"]), mode, *args]) + redirect
        done = subprocess.run(["sh", "-c", line], capture_output=True, timeout=60,
                              env={**os.environ, "LOCALFIRST_HOME": str(listed["home"]), **(env or {})})
        out[mode] = (done.returncode, done.stdout, done.stderr)
    return out


@pytest.mark.parametrize("args, env, redirect, message", [
    # A full disk under a redirect: -r writes its one line through echo, not through write().
    (["logs", "-r"], {}, " >/dev/full", b"Error: cannot write the output: No space left on device\n"),
    (["logs"], {}, " >/dev/full", b"Error: cannot write the output: No space left on device\n"),
    # A stream set to an encoding that cannot hold the text: both paths wrote a traceback.
    (["logs", "-r"], {"PYTHONIOENCODING": "latin-1"}, "", None),
    (["logs", "-s"], {"PYTHONIOENCODING": "latin-1"}, "", None),
    (["logs", "--json"], {"PYTHONIOENCODING": "latin-1"}, "", None),
    (["logs"], {"LC_ALL": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}, "", None),
])
def test_output_that_cannot_be_written_is_one_error_line_on_both_paths(
        listed: dict[str, Path], args: list[str], env: dict[str, str], redirect: str, message: bytes | None) -> None:
    runs = _both_ways(listed, args, env=env, redirect=redirect)
    assert runs["fast"] == runs["typer"]
    code, _out, err = runs["fast"]
    assert code == 1
    if message is not None:
        assert err == message
    else:
        assert err.startswith(b"Error: cannot write the output: ") and err.count(b"\n") == 1, err
        assert b"PYTHONIOENCODING=utf-8" in err


@pytest.mark.parametrize("option", ["-q", "-m", "--cid", "--since", "--until"])
def test_an_argument_that_is_not_utf8_is_one_error_line_on_both_paths(listed: dict[str, Path],
                                                                      option: str) -> None:
    value = os.fsdecode(b"caf\xe9")  # what a Latin-1 terminal sends for "cafe" with an accent
    runs = _both_ways(listed, ["logs", option, value])
    assert runs["fast"] == runs["typer"]
    code, out, err = runs["fast"]
    assert code == 2 and out == b"" and err.startswith(b"Error: ") and err.count(b"\n") == 1, err


def test_a_db_in_a_folder_that_cannot_be_searched_is_one_error_line_on_both_paths(
        listed: dict[str, Path], tmp_path: Path) -> None:
    prefix = _without_root()
    shut = tmp_path / "shut"
    shut.mkdir()
    shutil.copy(listed["home"] / "logs.db", shut / "logs.db")
    shut.chmod(0)
    try:
        runs = {}
        for mode in ("fast", "typer"):
            done = subprocess.run([*prefix, sys.executable, str(listed["driver"]), mode, "--db",
                                   str(shut / "logs.db"), "logs"], capture_output=True, timeout=60)
            runs[mode] = (done.returncode, done.stdout, done.stderr)
        if os.access(shut / "logs.db", os.R_OK) and not prefix:
            pytest.skip("this process can search a folder of mode 0")
    finally:
        shut.chmod(0o755)
    assert runs["fast"] == runs["typer"]
    code, out, err = runs["fast"]
    assert code == 4 and out == b"" and err.startswith(b"Error: cannot open ") and err.count(b"\n") == 1, err


# -- m070_parts, interrupted and raced ---------------------------------------------------------------

OPEN = "import sys\nfrom localfirst.store import Store\nStore.open(sys.argv[1]).close()\n"


def _old_db_with_odd_parts(path: Path, responses: int) -> list[tuple[Any, ...]]:
    """A database before m070 with parts of every kind a user meets, and some no writer makes."""
    from localfirst import migrations
    from localfirst.db import connect

    old = connect(path)
    old.execute("PRAGMA journal_mode = WAL")
    old.execute("BEGIN IMMEDIATE")
    migrations.apply(old, stop_before="m070_parts")
    old.execute("COMMIT")
    old.execute("BEGIN IMMEDIATE")
    old.execute("INSERT INTO conversations (id, name, created_utc) VALUES ('c1', 'talk', '2026')")
    old.execute("INSERT INTO attachments (id, mime_type, size, content) VALUES ('a1', 'image/png', 4, x'89504e47')")
    for i in range(responses):
        rid = f"r{i:06d}"
        old.execute("INSERT INTO responses (id, conversation_id, model, datetime_utc) VALUES (?, 'c1', 'm', '2026')",
                    [rid])
        old.executemany(
            "INSERT INTO parts (response_id, ordinal, role, type, text, tool_call_id, tool_name, arguments_json, "
            "error, attachment_id, extras) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(rid, 0, "user", "text", "q" * (i % 3000), None, None, None, None, None, None),
             (rid, 1, "user", "attachment", None, None, None, None, None, "a1", None),
             (rid, 2, "assistant", "tool_call", 12345, "c" + str(i), "t", '{"a": [1]}', None, None, '{"x":1}'),
             (rid, 3, "assistant", "text", b"\xff\x00 bytes", None, None, None, "", None, None)])
    old.execute("COMMIT")
    rows = old.execute("SELECT * FROM parts ORDER BY response_id, ordinal").fetchall()
    old.close()
    return rows


def _parts_now(path: Path) -> tuple[list[tuple[Any, ...]], str]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT * FROM parts ORDER BY response_id, ordinal").fetchall()
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'parts'").fetchone()[0]
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    return rows, sql


def test_m070_killed_at_any_moment_loses_nothing_and_the_next_open_completes(tmp_path: Path) -> None:
    import random
    import time

    template = tmp_path / "template.db"
    before = _old_db_with_odd_parts(template, 4000)
    # How long one whole upgrade takes here, so that the kills fall inside it.
    timed = tmp_path / "timed.db"
    shutil.copy(template, timed)
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", OPEN, str(timed)], check=True, timeout=120)
    whole = time.monotonic() - started
    assert _parts_now(timed)[0] == before

    rng = random.Random(70)
    path = tmp_path / "logs.db"
    shutil.copy(template, path)
    upgraded: list[bool] = []
    for attempt in range(6):
        if upgraded and upgraded[-1]:  # upgraded before a kill came: start again from the old file
            shutil.copy(template, path)
            for suffix in ("-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)
        proc = subprocess.Popen([sys.executable, "-c", OPEN, str(path)])
        time.sleep(rng.uniform(0.05, 1.0) * whole)
        proc.kill()
        proc.wait(timeout=60)
        rows, sql = _parts_now(path)  # old or new, every part is there after every kill
        assert rows == before, attempt
        upgraded.append("WITHOUT ROWID" not in sql)
    assert False in upgraded  # at least one kill came before the upgrade was done
    Store.open(path).close()
    rows, sql = _parts_now(path)
    assert rows == before and "WITHOUT ROWID" not in sql
    conn = sqlite3.connect(path)
    assert not conn.execute("SELECT name FROM sqlite_master WHERE name LIKE '_m070%'").fetchall()
    assert {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'parts'")} >= {
        "parts", "parts_attachment"}
    conn.close()


def test_two_processes_opening_an_old_file_at_once_upgrade_it_once(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    before = _old_db_with_odd_parts(path, 2000)
    procs = [subprocess.Popen([sys.executable, "-c", OPEN, str(path)], stderr=subprocess.PIPE) for _ in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else b"") for p in procs]
    assert results == [(0, b""), (0, b"")]
    rows, sql = _parts_now(path)
    assert rows == before and "WITHOUT ROWID" not in sql
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM _sqlite_migrations WHERE name = 'm070_parts'").fetchone()[0] == 1
    conn.close()


# -- an immutable database in a folder that cannot be written ---------------------------------------------

IMMUTABLE = """\
import asyncio, sys
from datasette.app import Datasette

async def go():
    ds = Datasette(immutables=[sys.argv[1]])
    table = await ds.client.get("/logs/responses.json")
    page = await ds.client.get("/logs/-/conversation/" + sys.argv[2])
    print(table.status_code, page.status_code, "secret plan" in page.text)

asyncio.run(go())
"""


def test_the_transcript_of_an_immutable_database_in_a_read_only_folder(tmp_path: Path) -> None:
    """``datasette -i`` of a backup on a read-only mount: Datasette shows its tables, and so the transcript."""
    pytest.importorskip("datasette")
    prefix = _without_root()
    folder = tmp_path / "backup"
    folder.mkdir()
    db = folder / "logs.db"
    cid = _transcript_db(db)
    assert not Path(str(db) + "-wal").exists()
    before = db.read_bytes()
    db.chmod(0o444)
    folder.chmod(0o555)
    try:
        done = subprocess.run([*prefix, sys.executable, "-c", IMMUTABLE, str(db), cid], capture_output=True,
                              text=True, timeout=120)
        wrote = (folder / "probe").exists()
    finally:
        folder.chmod(0o755)
        db.chmod(0o644)
    if wrote:
        pytest.skip("this process can write into a 0555 folder")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["200", "200", "True"]
    assert db.read_bytes() == before and sorted(p.name for p in folder.iterdir()) == ["logs.db"]
