"""Reading a database that cannot be written, and reading without creating anything.

The read-only cases run the CLI as a real process that the kernel really
refuses writes to: a 0444 file in a 0555 directory, and, when the tests run
as root (whom permission bits do not stop), a process started by
``setpriv`` without the capabilities that let root bypass them
(CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH). A probe in the same conditions must
fail to create a file first, or the test is skipped: it would prove nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import assert_one_line_error

from localfirst import migrations
from localfirst.db import connect
from localfirst.records import Attachment, Part, Response
from localfirst.store import Store


def _reader_prefix() -> list[str]:
    """How to start a process that permission bits apply to."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot start a process that file modes stop")
    prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]
    if subprocess.run([*prefix, "true"], capture_output=True, timeout=30).returncode != 0:
        pytest.skip("setpriv may not drop capabilities here")
    return prefix


def _seal(*paths: Path) -> None:
    for p in paths:
        p.chmod(0o555 if p.is_dir() else 0o444)


def _unseal(*paths: Path) -> None:
    for p in paths:
        p.chmod(0o755 if p.is_dir() else 0o644)


def _fill(path: Path) -> dict[str, str]:
    store = Store.open(path)
    first = store.log(Response(model="m", prompt="hello sealed world", response="hi there", parts=[
        Part(type="attachment", role="user", attachment=Attachment(b"\x89PNG", "image/png")),
        Part(type="tool_call", tool_call_id="c1", tool_name="lookup", arguments={"q": "x"}),
    ]))
    cid = store.get_response(first).conversation_id
    assert cid is not None
    second = store.log(Response(model="m", prompt="and again", response="more", conversation_id=cid))
    store.close()
    assert not Path(str(path) + "-wal").exists()  # closed cleanly: every page is in the main file
    return {"first": first, "second": second, "cid": cid}


@pytest.fixture
def sealed(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A database with two responses, 0444 in a 0555 directory."""
    folder = tmp_path / "sealed"
    folder.mkdir()
    db = folder / "logs.db"
    ids = _fill(db)
    _seal(db, folder)
    yield db, ids
    _unseal(folder, db)


# Runs each command line through cli.main in one process (a process each
# would cost ~0.1 s apiece), after checking that it cannot create a file in
# PROBE's directory; prints {"probe_wrote": bool, "results": {name: [code, out, err]}}.
DRIVER = """
import contextlib, io, json, sys
from localfirst import cli

probe, commands = sys.argv[1], json.loads(sys.argv[2])
try:
    open(probe, "x").close()
    wrote = True
except OSError:
    wrote = False
results = {}
for name, argv in commands.items():
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    results[name] = [code, out.getvalue(), err.getvalue()]
print(json.dumps({"probe_wrote": wrote, "results": results}))
"""


@dataclass
class Ran:
    code: int
    out: str
    err: str


def _run_as_reader(sealed_dir: Path, commands: dict[str, list[str]]) -> dict[str, Ran]:
    """Run CLI command lines in a process that cannot write to ``sealed_dir``; skip if it can."""
    proc = subprocess.run(
        [*_reader_prefix(), sys.executable, "-c", DRIVER, str(sealed_dir / "probe"), json.dumps(commands)],
        capture_output=True, text=True, timeout=60, env=dict(os.environ),
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    if report["probe_wrote"]:
        pytest.skip("this process can write into a 0555 directory: the case would prove nothing")
    return {name: Ran(*r) for name, r in report["results"].items()}


def test_every_read_command_works_on_a_database_that_cannot_be_written(sealed, tmp_path):
    db, ids = sealed
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    exported = tmp_path / "exported-llm.db"
    db_opt = ["--db", str(db)]
    results = _run_as_reader(db.parent, {
        "list": [*db_opt, "logs", "list"],
        "list --json": [*db_opt, "logs", "list", "--json"],
        "search": [*db_opt, "logs", "list", "-q", "sealed"],
        "show": [*db_opt, "logs", "show", ids["first"]],
        "show --json": [*db_opt, "logs", "show", ids["second"], "--json"],
        "status": [*db_opt, "logs", "status"],
        "conversations": [*db_opt, "conversations", "list"],
        "export jsonl": [*db_opt, "export"],
        "export markdown": [*db_opt, "export", "-f", "markdown"],
        "export llm": [*db_opt, "export", "-f", "llm", str(exported)],
        "log": [*db_opt, "log", "-m", "m", "-p", "a write"],
    })
    write = results.pop("log")
    for name, r in results.items():
        assert r.code == 0, f"{name}: {r.err}"
        assert "Traceback" not in r.err and "cannot write" not in r.err, name
    assert "hello sealed world" in results["list"].out
    assert [r["id"] for r in json.loads(results["list --json"].out)] == [ids["first"], ids["second"]]
    assert ids["first"] in results["search"].out and ids["second"] not in results["search"].out
    assert "Tool call: lookup" in results["show"].out
    assert json.loads(results["show --json"].out)["prompt"] == "and again"
    assert "Responses: 2" in results["status"].out
    assert ids["cid"] in results["conversations"].out
    assert len(results["export jsonl"].out.splitlines()) == 2
    assert "hello sealed world" in results["export markdown"].out
    assert "Exported 2 responses" in results["export llm"].err
    llm = connect(exported, readonly=True)
    assert llm.execute("SELECT content FROM attachments").fetchone()[0] == b"\x89PNG"
    llm.close()
    # Only the command that writes says so, in one line; nothing was touched.
    assert_one_line_error(write, "cannot write")
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in db.parent.iterdir()) == ["logs.db"]


def test_an_old_database_that_cannot_be_written_is_one_clear_line(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    db = folder / "logs.db"
    conn = connect(db)
    conn.execute("BEGIN IMMEDIATE")
    migrations.apply(conn, stop_before=migrations.names()[-1])
    conn.execute("COMMIT")
    conn.close()
    _seal(db, folder)
    try:
        results = _run_as_reader(folder, {"list": ["--db", str(db), "logs", "list"]})
    finally:
        _unseal(folder, db)
    assert_one_line_error(results["list"], "older version of localfirst", "read-only")


def test_reading_creates_no_home_and_no_database(run, monkeypatch, tmp_path):
    home = tmp_path / "not" / "yet"
    monkeypatch.setenv("LOCALFIRST_HOME", str(home))
    path = run("logs", "path")
    assert path.code == 0 and path.out.strip() == str(home / "logs.db")
    assert run("logs", "list", "--json").out.strip() == "[]"
    assert "Responses: 0" in run("logs", "status").out
    assert run("conversations", "list", "--json").out.strip() == "[]"
    assert run("export").code == 0
    assert not (tmp_path / "not").exists()
    # A file named with --db must exist to be read; it is not created either.
    missing = tmp_path / "missing.db"
    assert_one_line_error(run("--db", str(missing), "logs", "list"), "no database at")
    assert not missing.exists()


def test_changes_left_in_a_wal_file_that_cannot_be_read_are_one_clear_line(tmp_path):
    folder = tmp_path / "crashed"
    folder.mkdir()
    db = folder / "logs.db"
    # A writer that died before its last checkpoint leaves its changes in the -wal file.
    script = ("import os, sys\nfrom localfirst.store import Store\nfrom localfirst.records import Response\n"
              "s = Store.open(sys.argv[1])\ns.log(Response(model='m', prompt='p'))\nos._exit(0)")
    subprocess.run([sys.executable, "-c", script, str(db)], check=True, timeout=60)
    Path(str(db) + "-shm").unlink()
    assert os.path.getsize(str(db) + "-wal") > 0
    _seal(db, Path(str(db) + "-wal"), folder)
    try:
        results = _run_as_reader(folder, {"list": ["--db", str(db), "logs", "list"]})
    finally:
        _unseal(folder, db, Path(str(db) + "-wal"))
    assert_one_line_error(results["list"], "-wal file")
    assert "cannot write" not in results["list"].err
