"""localfirst chat: lines on stdin, and a real terminal driven through tmux."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import run_subprocess
from helpers import assert_one_line_error


def logged(run) -> list[dict]:
    r = run("logs", "list", "-n", "0", "--json")
    assert r.code == 0, r.err
    return json.loads(r.out)


def test_lines_on_stdin_make_one_conversation(run):
    r = run("chat", "-s", "be brief", input="hello\n!multi\nline one\nline two\n!end\n\nsecond\nquit\nnot sent\n")
    assert r.code == 0, r.err
    assert r.out.startswith("Chatting with echo\nType 'exit' or 'quit' to exit\n")
    assert "hello\n" in r.out and "line one\nline two\n" in r.out
    rows = logged(run)
    assert [x["prompt"] for x in rows] == ["hello", "line one\nline two", "second"]
    assert len({x["conversation_id"] for x in rows}) == 1
    assert [x["system"] for x in rows] == ["be brief", None, None]  # with the first turn only, as llm
    # echo counts the words of the history it was sent: each turn carries the ones before.
    assert rows[2]["input_tokens"] > rows[1]["input_tokens"] > rows[0]["input_tokens"]


def test_end_of_input_ends_the_chat_and_exit_works_too(run):
    assert run("chat", input="only turn").code == 0
    assert run("chat", input="exit\n").code == 0
    assert [x["prompt"] for x in logged(run)] == ["only turn"]


def test_continue_the_latest_or_a_conversation_by_id_prefix(run):
    assert run("chat", input="first\n").code == 0
    assert run("another conversation").code == 0
    first = logged(run)[0]["conversation_id"]
    assert run("chat", "--cid", first[:10], input="more\n").code == 0
    assert run("chat", "-c", input="latest\n").code == 0
    rows = logged(run)
    assert [x["conversation_id"] == first for x in rows] == [True, False, True, True]
    assert rows[-1]["prompt"] == "latest"


def test_chat_with_logging_off_logs_nothing_but_keeps_its_history(run):
    from localfirst.chatting import ChatSession
    from localfirst.prompting import set_logging

    assert run("chat", input="first\n").code == 0
    set_logging(False)
    r = run("chat", input="one two three\nfour\n")
    assert r.code == 0, r.err
    assert [x["prompt"] for x in logged(run)] == ["first"]

    def no_store():
        raise AssertionError("nothing is logged, so the store is not opened")

    session = ChatSession(no_store)
    session.start()
    session.send("one two three", lambda _text: None)
    second = session.send("four", lambda _text: None)
    # echo counts the words it was sent: the first exchange (3 + 3) and "four".
    assert second.input_tokens == 7 and second.id is None
    set_logging(True)


def test_bad_chat_starts_are_one_line(run):
    assert_one_line_error(run("chat", "-m", "no-such-model", input="hi\n"), "no-such-model")
    assert_one_line_error(run("chat", "-c", input="hi\n"), "no conversation to continue")
    assert_one_line_error(run("chat", "--cid", "01m7xhnvbs", input="hi\n"), "no conversation")
    assert logged(run) == []


def test_printf_into_chat_as_a_real_process(tmp_path):
    env = {"LOCALFIRST_HOME": str(tmp_path)}
    proc = subprocess.run(f"printf 'one\\ntwo\\n' | {shlex.quote(sys.executable)} -m localfirst chat",
                          shell=True, capture_output=True, text=True, env={**os.environ, **env}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(run_subprocess("logs", "--json", env=env).stdout)
    assert [r["prompt"] for r in rows] == ["one", "two"]
    assert len({r["conversation_id"] for r in rows}) == 1


# -- a real terminal ---------------------------------------------------------------


def _tmux() -> str:
    found = shutil.which("tmux")
    if found is None:
        pytest.skip("tmux is not installed (apt-get install tmux)")
    return found


class Terminal:
    def __init__(self, tmux: str, socket: Path, session: str) -> None:
        self.tmux, self.socket, self.session = tmux, socket, session

    def cmd(self, *args: str) -> str:
        return subprocess.run([self.tmux, "-S", str(self.socket), *args], capture_output=True, text=True,
                              check=True, timeout=30).stdout

    def keys(self, *keys: str) -> None:
        self.cmd("send-keys", "-t", self.session, *keys)

    def screen(self) -> str:
        return self.cmd("capture-pane", "-p", "-t", self.session)

    def wait_for(self, text: str, *, count: int = 1, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = self.screen()
            if shown.count(text) >= count:
                return shown
            time.sleep(0.05)
        raise AssertionError(f"{text!r} x{count} never appeared; the screen:\n{self.screen()}")


def test_chat_in_a_real_terminal(tmp_path):
    tmux = _tmux()
    home = tmp_path / "home"
    home.mkdir()
    term = Terminal(tmux, tmp_path / "tmux.sock", "lf" + uuid.uuid4().hex[:8])
    command = (f"env LOCALFIRST_HOME={shlex.quote(str(home))} {shlex.quote(sys.executable)} -m localfirst chat; "
               f"echo EXITED=$?; sleep 30")
    term.cmd("new-session", "-d", "-s", term.session, "-x", "120", "-y", "40", command)
    try:
        term.wait_for("Type '!multi'")
        term.keys("hello terminal", "Enter")
        term.wait_for("hello terminal", count=2)  # typed, then echoed back
        term.keys("!multi", "Enter", "first line", "Enter", "second line", "Enter", "!end", "Enter")
        term.wait_for("second line", count=2)
        term.keys("C-d")  # Ctrl-D ends the chat
        shown = term.wait_for("EXITED=")
        assert "EXITED=0" in shown
        assert "Traceback" not in shown
    finally:
        subprocess.run([tmux, "-S", str(term.socket), "kill-server"], capture_output=True, timeout=30)
    rows = json.loads(run_subprocess("logs", "--json", env={"LOCALFIRST_HOME": str(home)}).stdout)
    assert [r["prompt"] for r in rows] == ["hello terminal", "first line\nsecond line"]
    assert len({r["conversation_id"] for r in rows}) == 1


# -- -a, --at, -f and --sf: with the first turn, as llm's chat sends its -f ----------------


def test_attachments_and_fragments_go_with_the_first_turn_only(run, tmp_path):
    notes = tmp_path / "notes.md"
    notes.write_text("WAL is write-ahead logging.")
    rules = tmp_path / "rules.txt"
    rules.write_text("Answer briefly.")
    image = tmp_path / "dot.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 8)
    blob = tmp_path / "photo.bin"
    blob.write_bytes(b"\xff\xd8\xff jpeg bytes")
    r = run("chat", "-s", "Be kind.", "-f", str(notes), "--sf", str(rules), "-a", str(image),
            "--at", str(blob), "image/jpeg", input="what is WAL?\nand then?\n")
    assert r.code == 0, r.err
    first, second = logged(run)
    assert first["prompt"] == "WAL is write-ahead logging.\nwhat is WAL?"
    assert first["system"] == "Answer briefly.\n\nBe kind."
    assert [a["type"] for a in first["attachments"]] == ["image/png", "image/jpeg"]
    assert first["prompt_fragments"][0]["source"] == str(notes)
    assert first["system_fragments"][0]["content"] == "Answer briefly."
    assert (second["prompt"], second["system"], second["attachments"], second["prompt_fragments"]) == (
        "and then?", None, [], [])
    assert first["conversation_id"] == second["conversation_id"]


def test_continuing_a_chat_sends_them_with_its_first_new_turn(run, tmp_path):
    notes = tmp_path / "notes.md"
    notes.write_text("context")
    assert run("chat", input="start\n").code == 0
    assert run("chat", "-c", "-f", str(notes), input="more\nagain\n").code == 0
    rows = logged(run)
    assert [x["prompt"] for x in rows] == ["start", "context\nmore", "again"]
    assert len({x["conversation_id"] for x in rows}) == 1


def test_an_llm_model_in_chat_gets_the_attachment_on_the_first_turn(run, tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_USER_PATH", str(tmp_path / "llm"))
    image = tmp_path / "photo.bin"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 8)
    r = run("chat", "-m", "llm:echo", "--at", str(image), "image/png", input="look\nagain\n")
    assert r.code == 0, r.err
    first, second = logged(run)
    # llm-echo answers with the attachments llm handed it.
    assert [a["type"] for a in json.loads(first["response"])["attachments"]] == ["image/png"]
    assert json.loads(second["response"])["attachments"] == []


@pytest.mark.parametrize("args,fragment", [
    (["-a", "/no/such/image.png"], "does not exist"),
    (["-f", "/no/such/notes.md"], "does not exist"),
    (["--at", "/no/such/photo.bin", "image/jpeg"], "does not exist"),
    (["--at", "photo.bin", "not-a-type"], "type/subtype"),
    (["-a", "-"], "reads its prompts from stdin"),
    (["--sf", "-"], "reads its prompts from stdin"),
    (["-f", "URL"], "404"),
])
def test_bad_chat_inputs_stop_it_before_it_starts(run, args, fragment):
    from file_server import serving

    assert run("seed").code == 0
    before = logged(run)
    with serving() as files:
        r = run("chat", *[files.url("/gone") if a == "URL" else a for a in args], input="hello\n")
    assert_one_line_error(r, fragment)
    assert "Chatting with" not in r.out
    assert logged(run) == before
