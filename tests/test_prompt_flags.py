"""localfirst's CLI with llm's habits: the default command, -a, -f, --sf, -u, -x, --key, stdin."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys

import pytest
from chat_server import completion, running
from conftest import run_subprocess
from file_server import Page, serving
from helpers import assert_one_line_error, db_state

from localfirst import paths
from localfirst.store import Store

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


@pytest.fixture
def files():
    with serving() as s:
        yield s


def logged(run) -> list[dict]:
    r = run("logs", "list", "-n", "0", "--json")
    assert r.code == 0, r.err
    return json.loads(r.out)


def stored_bytes(attachment_id: str) -> bytes | None:
    store = Store.open(paths.default_db_path())
    try:
        return store.attachment_content(attachment_id)
    finally:
        store.close()


# -- the default command, bare logs and models ---------------------------------


def test_a_bare_prompt_runs_prompt_as_llm_does(run, tmp_path):
    r = run("What is WAL mode?")
    assert (r.code, r.out) == (0, "What is WAL mode?\n")
    r = run("-m", "echo", "-s", "terse", "with options first")
    assert r.code == 0 and r.out == "with options first\n"
    other = tmp_path / "other.db"
    assert run("--db", str(other), "into another file").code == 0
    assert [x["prompt"] for x in logged(run)] == ["What is WAL mode?", "with options first"]
    assert [x["system"] for x in logged(run)] == [None, "terse"]
    assert json.loads(run("--db", str(other), "logs", "--json").out)[0]["prompt"] == "into another file"


def test_no_arguments_still_prints_help(run):
    r = run()
    assert r.code == 0 and "Usage: localfirst" in r.out and "prompt" in r.out


def test_bare_logs_lists_and_takes_list_options(run):
    for text in ("one", "two", "three", "four"):
        assert run(text).code == 0
    assert run("logs").out == run("logs", "list").out
    assert [x["prompt"] for x in json.loads(run("logs", "-n", "2", "--json").out)] == ["three", "four"]
    assert run("logs", "-r").out == "four\n"
    helped = run("logs", "--help")
    assert helped.code == 0 and "Commands" in helped.out and "rm" in helped.out


def test_bare_models_lists(run):
    r = run("models")
    assert r.code == 0 and r.out == run("models", "list").out and "echo" in r.out


# -- stdin and the argument ------------------------------------------------------


def test_stdin_then_a_space_then_the_argument_as_llm_combines_them(run):
    r = run("explain", input="piped text\n")
    assert r.code == 0
    assert logged(run)[-1]["prompt"] == "piped text\n explain"
    assert run("prompt", input="only stdin").out == "only stdin\n"
    assert run("-s", "terse", input="stdin with an option").out == "stdin with an option\n"


# -- -n, -u, -x ----------------------------------------------------------------------


def test_no_log_short_flag(run):
    assert run("-n", "not kept").out == "not kept\n"
    assert run("prompt", "--no-log", "nor this").out == "nor this\n"
    assert logged(run) == []


def test_usage_goes_to_stderr(run):
    r = run("-u", "three little words")
    assert r.out == "three little words\n"
    assert r.err.strip() == "Token usage: 3 input, 3 output"


def test_extract_prints_the_first_or_last_code_block_and_logs_everything(run):
    text = "Here:\n```python\nprint(1)\n```\nand\n````sh\nls\n````\n"
    r = run("-x", text)
    assert r.out == "print(1)\n"
    assert run("--xl", text).out == "ls\n"
    assert run("-x", "no code at all").out == "no code at all\n"  # as llm: the whole answer then
    assert logged(run)[0]["response"] == text


# -- attachments ---------------------------------------------------------------------


def test_attachment_from_a_path_stores_its_bytes(run, tmp_path):
    image = tmp_path / "pixel.png"
    image.write_bytes(PNG)
    r = run("-a", str(image), "-a", str(image), "describe")
    assert r.code == 0, r.err
    got = logged(run)[0]
    [one, two] = got["attachments"]
    assert one == two
    assert one["id"] == hashlib.sha256(PNG).hexdigest()
    assert (one["type"], one["path"], one["content_length"]) == ("image/png", str(image), len(PNG))
    assert stored_bytes(one["id"]) == PNG
    assert [p["type"] for p in got["parts"]] == ["attachment", "attachment"]


def test_attachment_from_stdin_is_bytes_not_the_prompt(tmp_path):
    env = {**os.environ, "LOCALFIRST_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "localfirst", "-a", "-", "what is this"], input=PNG,
                          capture_output=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"what is this\n"
    listed = run_subprocess("logs", "--json", env=env)
    got = json.loads(listed.stdout)[0]
    assert got["prompt"] == "what is this"
    assert got["attachments"][0]["type"] == "image/png"
    assert got["attachments"][0]["id"] == hashlib.sha256(PNG).hexdigest()


def test_attachment_from_a_url_is_fetched_and_stored(run, files):
    files.pages["/cat.png"] = Page(PNG, "image/png")
    files.pages["/data"] = Page(b"%PDF-1.7 fake", "application/octet-stream")
    r = run("-a", files.url("/cat.png"), "-a", files.url("/data"), "look")
    assert r.code == 0, r.err
    first, second = logged(run)[0]["attachments"]
    assert (first["type"], first["url"], first["path"]) == ("image/png", files.url("/cat.png"), None)
    assert stored_bytes(first["id"]) == PNG
    assert second["type"] == "application/pdf"  # sniffed when the server says only octet-stream
    assert files.hits == ["/cat.png", "/data"]


def _refused_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.mark.parametrize("case", ["missing path", "directory", "url 404", "url 500", "refused", "bad scheme"])
def test_an_attachment_that_cannot_be_read_is_one_line_and_nothing_is_logged(run, files, tmp_path, case):
    assert run("seed").code == 0
    files.pages["/broken"] = Page(b"oops", "text/plain", 500)
    spec, fragment = {
        "missing path": (str(tmp_path / "nope.png"), "does not exist"),
        "directory": (str(tmp_path), "is a directory"),
        "url 404": (files.url("/gone.png"), "404"),
        "url 500": (files.url("/broken"), "500"),
        "refused": (f"http://127.0.0.1:{_refused_port()}/x.png", "cannot be fetched"),
        "bad scheme": ("ftp://example.invalid/x", "does not exist"),
    }[case]
    before = db_state()
    r = run("-a", spec, "describe")
    assert_one_line_error(r, fragment)
    assert r.code == 2 and r.out == ""
    assert db_state() == before


def test_a_url_larger_than_the_limit_is_refused(run, files, monkeypatch):
    import localfirst.inputs

    monkeypatch.setattr(localfirst.inputs, "MAX_FETCH_BYTES", 1000)
    files.pages["/big"] = Page(b"x" * 5000, "text/plain")
    before = db_state()
    assert_one_line_error(run("-a", files.url("/big"), "hi"), "larger than")
    assert db_state() == before


# -- fragments -------------------------------------------------------------------------


def test_fragments_are_sent_before_the_prompt_and_recorded(run, tmp_path, files):
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\nWAL is write-ahead logging.\n")
    files.pages["/style"] = Page("Be brief — très.".encode(), "text/plain; charset=utf-8")
    r = run("-f", str(notes), "-f", files.url("/style"), "summarise")
    assert r.code == 0, r.err
    sent = "# Notes\nWAL is write-ahead logging.\n\nBe brief — très.\nsummarise"
    assert r.out == sent + "\n"  # echo answers with what it was sent
    got = logged(run)[0]
    assert got["prompt"] == sent
    assert got["prompt_fragments"] == [
        {"hash": hashlib.sha256(notes.read_bytes()).hexdigest(), "content": notes.read_text(), "aliases": [],
         "source": str(notes)},
        {"hash": hashlib.sha256("Be brief — très.".encode()).hexdigest(), "content": "Be brief — très.",
         "aliases": [], "source": files.url("/style")},
    ]
    assert got["extras"]["llm:fragments"][0]["source"] == str(notes)


def test_system_fragments_and_a_fragment_from_stdin(run, tmp_path):
    rules = tmp_path / "rules.txt"
    rules.write_text("Answer in French.\n")
    r = run("--sf", str(rules), "-s", "Be kind.", "-f", "-", "translate", input="good morning\n")
    assert r.code == 0, r.err
    got = logged(run)[0]
    assert got["system"] == "Answer in French.\n\nBe kind."
    assert got["prompt"] == "good morning\n\ntranslate"
    assert got["system_fragments"][0]["content"] == "Answer in French.\n"
    assert got["prompt_fragments"][0] == {"hash": hashlib.sha256(b"good morning\n").hexdigest(),
                                          "content": "good morning\n", "aliases": [], "source": "-"}


@pytest.mark.parametrize("args,fragment", [
    (["-f", "/no/such/file.txt", "q"], "does not exist"),
    (["-f", "github:simonw/llm", "q"], "fragment loaders"),
    (["-f", "-", "-a", "-", "q"], "stdin (-) can be read once"),
])
def test_bad_fragments_are_one_line(run, args, fragment):
    before = db_state()
    assert_one_line_error(run(*args, input="x"), fragment)
    assert db_state() == before


def test_a_fragment_that_is_not_text_is_refused(run, tmp_path, files):
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\xff\xfe\x00bad")
    assert_one_line_error(run("-f", str(blob), "q"), "not UTF-8")
    files.pages["/gone"] = Page(b"", "text/plain", 404)
    assert_one_line_error(run("-f", files.url("/gone"), "q"), "404")
    assert logged(run) == []


# -- --key and attachments on an HTTP model -------------------------------------------


def test_key_is_sent_for_this_call_only_and_never_stored(run, tmp_path):
    secret = "sk-test-0123456789abcdef"
    image = tmp_path / "a.png"
    image.write_bytes(PNG)
    with running() as server:
        assert run("models", "add", "srv", "--base-url", server.base_url, "--model", "m").code == 0
        server.script(completion("seen it"))
        r = run("-m", "srv", "--key", secret, "-a", str(image), "--no-stream", "what is it")
        assert r.code == 0, r.err
        seen = server.seen[0]
        assert seen.headers["Authorization"] == f"Bearer {secret}"
        content = seen.body["messages"][-1]["content"]
        assert content[0]["type"] == "image_url"
        assert content[0]["image_url"]["url"].startswith("data:image/png;base64,")
        assert content[1] == {"type": "text", "text": "what is it"}
        server.script(completion("again"))
        assert run("-m", "srv", "-c", "--no-stream", "and now").code == 0
        assert "Authorization" not in server.seen[1].headers  # --key was for that call only
        # The earlier turn's image is sent again from the stored bytes.
        replay = server.seen[1].body["messages"][0]["content"]
        assert replay[0]["image_url"]["url"] == content[0]["image_url"]["url"]
    dumped = "\n".join(db_state())
    assert secret not in dumped
    # The bytes are stored once, as the attachment, not again inside prompt_json.
    import base64

    listed = json.dumps(logged(run))
    assert base64.b64encode(PNG).decode()[:40] not in listed
    assert "data:image/png;base64,..." in listed


# -- --at PATH TYPE --------------------------------------------------------------------


def test_attachment_type_names_the_type_of_a_path_a_url_or_stdin(run, tmp_path, files):
    blob = tmp_path / "photo.bin"  # a name that says nothing of its type
    blob.write_bytes(b"\xff\xd8\xff\xe0 a jpeg, says its sender")
    files.pages["/raw"] = Page(b"RIFF....WEBPVP8 ", "application/octet-stream")
    image = tmp_path / "dot.png"
    image.write_bytes(PNG)
    r = run("--at", str(blob), "image/JPEG", "--at", files.url("/raw"), "image/webp", "-a", str(image), "look")
    assert r.code == 0, r.err
    got = logged(run)[0]
    # -a first, then each --at in order, as llm resolves them.
    assert [a["type"] for a in got["attachments"]] == ["image/png", "image/jpeg", "image/webp"]
    assert got["attachments"][1]["path"] == str(blob)
    assert got["attachments"][2]["url"] == files.url("/raw")
    assert stored_bytes(got["attachments"][2]["id"]) == b"RIFF....WEBPVP8 "
    env = {**os.environ, "LOCALFIRST_HOME": str(tmp_path / "other")}
    proc = subprocess.run([sys.executable, "-m", "localfirst", "--at", "-", "audio/x-custom", "hear this"],
                          input=b"\x00\x01 not text \xff", capture_output=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(run_subprocess("logs", "--json", env=env).stdout)[0]
    assert (listed["prompt"], listed["attachments"][0]["type"]) == ("hear this", "audio/x-custom")


def test_attachment_type_is_what_an_http_model_is_sent(run, tmp_path):
    blob = tmp_path / "photo.bin"
    blob.write_bytes(PNG)
    with running() as server:
        assert run("models", "add", "srv", "--base-url", server.base_url, "--model", "m").code == 0
        server.script(completion("a jpeg"))
        r = run("-m", "srv", "--at", str(blob), "image/jpeg", "--no-stream", "what is it")
        assert r.code == 0, r.err
        sent = server.seen[0].body["messages"][-1]["content"][0]["image_url"]["url"]
    assert sent.startswith("data:image/jpeg;base64,")


@pytest.mark.parametrize("case", ["missing path", "bad type", "type with parameters", "url 404", "refused",
                                  "one argument", "two stdins"])
def test_bad_attachment_types_are_one_line_and_nothing_is_logged(run, files, tmp_path, case):
    assert run("seed").code == 0
    blob = tmp_path / "photo.bin"
    blob.write_bytes(PNG)
    args, fragment = {
        "missing path": (["--at", str(tmp_path / "nope.jpg"), "image/jpeg"], "does not exist"),
        "bad type": (["--at", str(blob), "jpeg"], "type/subtype"),
        "type with parameters": (["--at", str(blob), "text/plain; charset=utf-8"], "type/subtype"),
        "url 404": (["--at", files.url("/gone"), "image/png"], "404"),
        "refused": (["--at", f"http://127.0.0.1:{_refused_port()}/x", "image/png"], "cannot be fetched"),
        "one argument": (["--at", str(blob)], "--at"),
        "two stdins": (["--at", "-", "image/png", "-f", "-"], "stdin (-) can be read once"),
    }[case]
    before = db_state()
    # The type is checked before anything is fetched.
    r = run(*args, "describe", input="x") if case != "one argument" else run(*args)
    assert_one_line_error(r, fragment)
    assert r.out == ""
    assert db_state() == before
    if case == "bad type":
        assert files.hits == []
