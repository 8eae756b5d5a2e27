"""The sync commands: thin, documented, and every mistake is one clear line."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import sync
from localfirst import cli
from localfirst.store import Store


def one_error(result: Any, code: int | None = None) -> None:
    assert result.code != 0 if code is None else result.code == code
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.err
    assert "Traceback" not in result.err


def remotes(isolated_home: Path) -> list[str]:
    store = Store.open(isolated_home / "logs.db")
    try:
        return [r.name for r in sync.list_remotes(store)]
    finally:
        store.close()


def test_remote_add_list_remove(run: Any, tmp_path: Path, isolated_home: Path) -> None:
    assert run("remote", "add", "origin", f"file://{tmp_path}/r").code == 0
    assert run("remote", "add", "cloud", "s3://my-bucket/x", "--endpoint-url", "http://127.0.0.1:9",
               "--region", "eu-west-1", "--profile", "work").code == 0
    out = run("remote", "list").out
    assert "origin\tfile://" in out and "cloud\ts3://my-bucket/x endpoint_url=http://127.0.0.1:9" in out
    listed = json.loads(run("remote", "list", "--json").out)
    assert [r["name"] for r in listed] == ["cloud", "origin"]
    assert run("remote", "remove", "cloud").code == 0
    assert remotes(isolated_home) == ["origin"]


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["remote", "add", "origin", "http://example.com/x"], 2),
        (["remote", "add", "origin", "file://relative/x"], 2),
        (["remote", "add", "bad name!", "file:///tmp"], 2),
        (["remote", "add", "origin", "file:///no/such/parent/dir"], 2),
        (["remote", "add", "origin", "file:///tmp", "--region", "x"], 2),
        (["remote", "add", "o", "s3://bucket-name", "--endpoint-url", "ftp://x"], 2),
        (["remote", "add", "o", "s3://bucket-name", "--endpoint-url", "http://[::1"], 2),
        (["remote", "add", "o", "s3://bucket-name", "--endpoint-url", "http://host:notaport"], 2),
        (["remote", "add", "o", "s3://bucket-name", "--region", "us east 1"], 2),
        (["remote", "remove", "nope"], 3),
        (["remote", "status", "nope"], 3),
        (["push"], 3),
        (["pull", "nope"], 3),
        (["sync"], 3),
    ],
)
def test_mistakes_are_one_error_line_and_change_nothing(
    run: Any, isolated_home: Path, args: list[str], code: int
) -> None:
    one_error(run(*args), code)
    assert remotes(isolated_home) == []


def test_a_file_is_not_a_remote_folder(run: Any, tmp_path: Path, isolated_home: Path) -> None:
    (tmp_path / "file").write_text("x")
    one_error(run("remote", "add", "origin", f"file://{tmp_path}/file"), 2)
    assert remotes(isolated_home) == []


def test_duplicate_remote_is_refused(run: Any, tmp_path: Path, isolated_home: Path) -> None:
    run("remote", "add", "origin", f"file://{tmp_path}/r")
    one_error(run("remote", "add", "origin", f"file://{tmp_path}/other"), 2)
    assert json.loads(run("remote", "list", "--json").out)[0]["url"] == f"file://{tmp_path}/r"


def test_several_remotes_push_and_pull_need_a_name_and_sync_does_each(run: Any, tmp_path: Path) -> None:
    run("remote", "add", "a", f"file://{tmp_path}/a")
    run("remote", "add", "b", f"file://{tmp_path}/b")
    one_error(run("push"), 2)
    one_error(run("pull"), 2)
    assert run("sync", "b").code == 0
    both = run("sync")
    assert both.code == 0 and [line.split(":")[0] for line in both.out.splitlines()] == [
        "Synced with a", "Synced with b"]


def test_push_pull_sync_summaries_and_json(run: Any, tmp_path: Path) -> None:
    run("remote", "add", "origin", f"file://{tmp_path}/r")
    run("log", "-m", "m", "-p", "hi", "-r", "there")
    out = run("push").out
    assert re.match(r"Pushed 1 changeset \(2 rows, \d+ B\) to origin; 5 requests\.", out)
    pulled = json.loads(run("pull", "--json").out)
    assert pulled == {"remote": "origin", "hosts": 0, "changesets": 0, "rows": 0, "bytes": 0, "requests": 1,
                      "conflicts": [], "snapshot": None}
    assert "1 request." in run("sync").out
    status = json.loads(run("remote", "status", "--json").out)
    assert status["waiting"] == 0 and status["hosts"][0]["this_machine"]
    assert "0 rows waiting to be pushed" in run("remote", "status").out


def test_unreachable_folder_is_one_error_line(run: Any, tmp_path: Path) -> None:
    run("remote", "add", "usb", f"file://{tmp_path}/stick")
    (tmp_path / "stick").rmdir()
    run("log", "-m", "m", "-p", "offline", "-r", "ok")
    one_error(run("sync"), 7)
    assert run("log", "-m", "m", "-p", "still logging", "-r", "ok").code == 0


def test_tampered_changeset_exits_with_its_code(run: Any, tmp_path: Path, monkeypatch: Any) -> None:
    other = Store.open(tmp_path / "other.db")
    sync.add_remote(other, "origin", f"file://{tmp_path}/r")
    from synctools import log

    log(other)
    sync.push(other)
    path = next((tmp_path / "r" / "log").rglob("*.gz"))
    data = bytearray(path.read_bytes())
    data[-6] ^= 0xFF
    path.write_bytes(bytes(data))
    run("remote", "add", "origin", f"file://{tmp_path}/r")
    one_error(run("pull"), 9)


def _commands() -> set[str]:
    import typer

    command = typer.main.get_command(cli.app)
    names = {"push", "pull", "sync"}
    names |= {f"remote {n}" for n in command.commands["remote"].commands}  # type: ignore[attr-defined]
    return names


def test_every_sync_command_is_documented() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "cli.md").read_text()
    for name in _commands():
        assert f"### localfirst {name}\n" in doc, name


def test_progress_bar_only_on_a_terminal(run: Any, tmp_path: Path, monkeypatch: Any) -> None:
    import sys

    run("remote", "add", "origin", f"file://{tmp_path}/r")
    run("log", "-m", "m", "-p", "hi", "-r", "there")
    sys.modules.pop("rich.progress", None)
    assert run("push").err == ""
    assert "rich.progress" not in sys.modules, "rich is imported only to draw on a terminal"
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    run("log", "-m", "m", "-p", "again", "-r", "there")
    pushed = run("push")
    assert pushed.code == 0 and "rich.progress" in sys.modules
    assert pushed.out.startswith("Pushed 1 changeset") and len(pushed.out.splitlines()) == 1, "the bar is on stderr"


def test_a_malformed_endpoint_in_the_environment_is_one_error_line(run: Any, monkeypatch: Any) -> None:
    assert run("remote", "add", "cloud", "s3://my-bucket/x").code == 0
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "not a url")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    result = run("sync")
    one_error(result, 7)
    assert "not a url" in result.err
