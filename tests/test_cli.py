import json
import os
import sqlite3
import sys

import pytest
from conftest import run_subprocess
from helpers import assert_one_line_error, dump

from localfirst import paths
from localfirst.store import Store

UNKNOWN = "01m7xhnvbscbetp2ef6kz6yg5v"


def db_file():
    return paths.default_db_path()


def log(run, *args, input=None):
    result = run("log", *args, input=input)
    assert result.code == 0, result.err
    return result.out.strip()


# -- log ---------------------------------------------------------------------

def test_log_prints_only_the_new_id_and_stores_the_exchange(run):
    rid = log(run, "-m", "gpt-x", "-p", "hello", "-r", "world", "-s", "be kind")
    assert len(rid) == 26
    got = json.loads(run("logs", "show", rid, "--json").out)
    assert (got["prompt"], got["response"], got["system"], got["model"]) == ("hello", "world", "be kind", "gpt-x")


def test_log_reads_the_prompt_from_stdin_and_continues(run):
    first = log(run, "-m", "m", "-r", "one", input="piped prompt")
    second = log(run, "-c", "-p", "again", "-r", "two")
    third = log(run, "--cid", json.loads(run("logs", "show", first, "--json").out)["conversation_id"],
                "-p", "p3", "--simulated", "-r", "example")
    rows = json.loads(run("logs", "list", "-n", "0", "--json").out)
    assert [r["id"] for r in rows] == [first, second, third]
    assert rows[0]["prompt"] == "piped prompt"
    assert len({r["conversation_id"] for r in rows}) == 1
    assert rows[1]["model"] == "m"  # a continued conversation keeps its model
    assert rows[2]["simulated"] is True


def test_log_json_takes_a_whole_exchange(run, tmp_path):
    image = tmp_path / "cat.png"
    image.write_bytes(b"\x89PNG fake")
    doc = {
        "model": "claude-x", "prompt": "weather?", "system": "terse",
        "reasoning": "think", "options": {"temperature": 0},
        "usage": {"input_tokens": 5, "output_tokens": 7, "details": {"cached": 2}},
        "extras": {"anthropic:cache_control": {"type": "ephemeral"}},
        "attachments": [{"path": str(image)}, {"content_base64": "aGVsbG8=", "mime_type": "text/plain"}],
        "parts": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_call", "tool_call_id": "t1", "name": "weather", "arguments": {"city": "Oslo"}},
            {"type": "tool_result", "tool_call_id": "t1", "name": "weather", "output": "cold"},
        ],
    }
    rid = log(run, "--json", input=json.dumps(doc))
    got = json.loads(run("logs", "show", rid, "--json").out)
    assert got["response"] == "Checking." and got["reasoning"] == "think"
    assert (got["input_tokens"], got["output_tokens"], got["token_details"]) == (5, 7, {"cached": 2})
    assert [p["type"] for p in got["parts"]] == ["attachment", "attachment", "text", "tool_call", "tool_result"]
    assert got["parts"][0]["attachment"]["mime_type"] == "image/png"
    assert got["parts"][1]["attachment"]["size"] == 5
    assert got["parts"][3]["arguments"] == {"city": "Oslo"}
    assert got["parts"][4]["output"] == "cold" and got["parts"][4]["role"] == "user"
    assert got["extras"] == {"anthropic:cache_control": {"type": "ephemeral"}}


def test_logs_list_json_output_can_be_logged_again(run, tmp_path):
    rid = log(run, "--json", input=json.dumps({"model": "m", "prompt": "p", "response": "r",
                                               "parts": [{"type": "text", "text": "r"}]}))
    exported = json.loads(run("logs", "show", rid, "--json").out)
    other = tmp_path / "other.db"
    exported.pop("conversation_id")
    result = run("--db", str(other), "log", "--json", input=json.dumps(exported))
    assert result.code == 0, result.err
    again = json.loads(run("--db", str(other), "logs", "show", rid, "--json").out)
    assert {k: v for k, v in again.items() if k not in ("conversation_id",)} == \
        {k: v for k, v in exported.items() if k != "conversation_id"}


# -- prompt -----------------------------------------------------------------

def test_prompt_with_echo_logs_and_continues(run):
    result = run("prompt", "hi there", "-s", "sys", "-o", "temperature", "0.5", "-o", "stop", "END")
    assert result.code == 0 and result.out == "hi there\n"
    result = run("prompt", "-c", "second")
    assert result.out == "second\n"
    rows = json.loads(run("logs", "list", "--json").out)
    assert [r["prompt"] for r in rows] == ["hi there", "second"]
    assert rows[0]["options"] == {"temperature": 0.5, "stop": "END"}
    assert rows[0]["system"] == "sys" and rows[0]["model"] == "echo"
    assert rows[0]["conversation_id"] == rows[1]["conversation_id"]
    assert rows[1]["input_tokens"] > rows[0]["input_tokens"]  # the history was sent along


def test_prompt_reads_stdin_and_respects_no_log_and_logs_off(run):
    assert run("prompt", input="from stdin").out == "from stdin\n"
    assert run("prompt", "--no-log", "not kept").code == 0
    assert run("logs", "off").code == 0
    assert "OFF" in run("logs", "status").out
    assert run("prompt", "also not kept").code == 0
    assert run("logs", "on").code == 0
    prompts = [r["prompt"] for r in json.loads(run("logs", "list", "-n", "0", "--json").out)]
    assert prompts == ["from stdin"]


def test_prompt_with_cid(run):
    run("prompt", "start")
    cid = json.loads(run("conversations", "list", "--json").out)[0]["id"]
    run("prompt", "new one")
    assert run("prompt", "--cid", cid, "back").code == 0
    rows = json.loads(run("logs", "list", "--cid", cid, "--json").out)
    assert [r["prompt"] for r in rows] == ["start", "back"]


# -- logs -------------------------------------------------------------------

@pytest.fixture
def three_days(run):
    ids = []
    for day, text in (("01", "apples and pears"), ("02", "bananas"), ("03", "cherries and apples")):
        doc = {"model": "m1" if day != "02" else "m2", "prompt": f"about {text}", "response": f"yes {text}",
               "datetime_utc": f"2026-01-{day}T10:00:00.000000Z"}
        ids.append(log(run, "--json", input=json.dumps(doc)))
    return ids


def test_logs_list_options(run, three_days):
    a, b, c = three_days
    ids = lambda *args: [r["id"] for r in json.loads(run("logs", "list", "--json", *args).out)]  # noqa: E731
    assert ids() == [a, b, c]
    assert ids("-n", "0") == [a, b, c]
    assert ids("-n", "1") == [c]
    assert ids("-q", "pears") == [a]
    assert ids("-q", "bananas") == [b]
    assert ids("-m", "m2") == [b]
    assert ids("--since", "2026-01-02") == [b, c]
    assert ids("--until", "2026-01-02") == [a, b]
    assert ids("--since", "2026-01-02T09:00", "--until", "2026-01-02T11:00:00Z") == [b]
    assert run("logs", "list", "-r").out == "yes cherries and apples\n"
    short = run("logs", "list", "-s").out
    assert short.count("- model:") == 3 and "about bananas" in short
    text = run("logs", "list", "-n", "1").out
    assert "## Prompt" in text and "about cherries and apples" in text
    long_id = log(run, "-m", "m", "-p", "x" * 500, "-r", "y")
    truncated = run("logs", "list", "-n", "1", "-t").out
    assert "x" * 100 not in truncated and long_id in truncated
    log(run, "--json", input=json.dumps({"model": "m1", "prompt": "apples apples apples", "response": "apples",
                                         "datetime_utc": "2025-06-01T00:00:00Z"}))
    best = json.loads(run("logs", "list", "--json", "-q", "apples", "-n", "1").out)[0]
    assert best["prompt"] == "apples apples apples"
    row = json.loads(run("logs", "list", "--json", "-n", "1").out)[0]
    for key in ("id", "conversation_id", "model", "prompt", "system", "response", "datetime_utc",
                "input_tokens", "output_tokens", "parts"):
        assert key in row


def test_logs_show_path_and_status(run, three_days):
    shown = run("logs", "show", three_days[1]).out
    assert "about bananas" in shown and "yes bananas" in shown
    assert run("logs", "path").out.strip() == str(db_file())
    status = run("logs", "status").out
    assert "Responses: 3" in status and "Conversations: 3" in status and "Logging is ON" in status


def test_logs_rm_by_id_conversation_and_before(run, three_days):
    a, b, c = three_days
    assert run("logs", "rm", a, "--yes").out.strip() == "Deleted 1 response."
    assert run("logs", "list", "-q", "pears", "--json").out.strip() == "[]"
    cid = json.loads(run("logs", "show", c, "--json").out)["conversation_id"]
    assert run("logs", "rm", "--conversation", cid, "--yes").code == 0
    assert run("logs", "rm", "--before", "2026-01-03", "--yes").out.strip() == "Deleted 1 response."
    assert json.loads(run("logs", "list", "--json").out) == []
    assert run("logs", "rm", "--before", "2026-01-03", "--yes").out.strip() == "Nothing to delete."


def test_logs_rm_asks_first(run, three_days, monkeypatch):
    before = dump(db_file())
    result = run("logs", "rm", three_days[0])  # not a terminal and no --yes
    assert_one_line_error(result, "--yes")
    assert dump(db_file()) == before


def test_logs_rm_confirms_at_a_terminal(run, three_days, monkeypatch, capsys):
    import io

    from localfirst import cli

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdin", Tty("n\n"))
    assert cli.main(["logs", "rm", three_days[0]]) != 0
    assert json.loads(run("logs", "show", three_days[0], "--json").out)["id"] == three_days[0]
    monkeypatch.setattr(sys, "stdin", Tty("y\n"))
    assert cli.main(["logs", "rm", three_days[0]]) == 0
    assert run("logs", "show", three_days[0]).code != 0


# -- conversations ----------------------------------------------------------

def test_conversations_list_and_rename(run):
    run("prompt", "first conversation")
    run("prompt", "second conversation")
    convs = json.loads(run("conversations", "list", "--json").out)
    assert [c["name"] for c in convs] == ["second conversation", "first conversation"]
    assert run("conversations", "rename", convs[1]["id"], "Renamed").code == 0
    assert "Renamed" in run("conversations", "list").out
    assert json.loads(run("conversations", "list", "--json").out)[1]["name"] == "Renamed"


# -- global options and entry points ------------------------------------------

def test_db_option_overrides_the_home(run, tmp_path):
    other = tmp_path / "elsewhere.db"
    assert run("--db", str(other), "log", "-m", "m", "-p", "x").code == 0
    assert other.exists() and not db_file().exists()
    assert run("--db", str(other), "logs", "path").out.strip() == str(other)


def test_python_dash_m_and_version(tmp_path):
    env = {"LOCALFIRST_HOME": str(tmp_path)}
    result = run_subprocess("--version", env=env)
    assert result.returncode == 0 and result.stdout.startswith("localfirst ")
    result = run_subprocess("log", "-m", "m", "-p", "hi", env=env)
    assert result.returncode == 0 and len(result.stdout.strip()) == 26
    result = run_subprocess(env=env)
    assert result.returncode == 0 and "Usage" in result.stdout


def test_default_home_is_the_platform_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("LOCALFIRST_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.setattr(sys, "platform", "linux")
    assert paths.home() == tmp_path / "localfirst"


# -- bad input: one line, non-zero, nothing changed -------------------------

@pytest.fixture
def seeded(run):
    rid = log(run, "-m", "m", "-p", "seed", "-r", "row")
    return rid


BAD = [
    ("unknown --cid", ["log", "-m", "m", "-p", "x", "--cid", UNKNOWN], None, "no conversation"),
    ("unknown --cid for prompt", ["prompt", "--cid", UNKNOWN, "x"], None, "no conversation"),
    ("unknown --cid for list", ["logs", "list", "--cid", UNKNOWN], None, "no conversation"),
    ("malformed id", ["logs", "show", "not-an-id"], None, "not a valid response id"),
    ("malformed cid", ["log", "-m", "m", "-p", "x", "--cid", "zzz"], None, "not a valid conversation id"),
    ("malformed rename", ["conversations", "rename", "xyz", "n"], None, "not a valid"),
    ("since not a date", ["logs", "list", "--since", "last tuesday"], None, "--since"),
    ("until not a date", ["logs", "list", "--until", "2026-13-45"], None, "--until"),
    ("before not a date", ["logs", "rm", "--before", "soon", "--yes"], None, "--before"),
    ("-o without a value", ["prompt", "hi", "-o", "temperature"], None, "-o"),
    ("json not json", ["log", "--json"], "{not json", "not valid JSON"),
    ("json not an object", ["log", "--json"], "[1, 2]", "JSON object"),
    ("json without a model", ["log", "--json"], '{"prompt": "x"}', "model"),
    ("json without content", ["log", "--json"], '{"model": "m"}', "prompt"),
    ("json bad part", ["log", "--json"], '{"model": "m", "parts": [{"type": "video"}]}', "type"),
    ("json bad tokens", ["log", "--json"], '{"model": "m", "prompt": "x", "input_tokens": "many"}', "integer"),
    ("json unreadable attachment", ["log", "--json"],
     '{"model": "m", "prompt": "x", "attachments": [{"path": "/no/such/file.png"}]}', "cannot read"),
    ("rm unknown id", ["logs", "rm", UNKNOWN, "--yes"], None, "no response"),
    ("rm nothing named", ["logs", "rm", "--yes"], None, "name response ids"),
    ("rm unknown conversation", ["logs", "rm", "--conversation", UNKNOWN, "--yes"], None, "no conversation"),
    ("log without a model", ["log", "-p", "x"], None, "-m"),
    ("unknown model", ["prompt", "-m", "no-such-model", "x"], None, "unknown model"),
    ("negative count", ["logs", "list", "-n", "-1"], None, "--count"),
    ("huge count", ["logs", "list", "-n", "99999999999999999999"], None, "--count"),
    ("negative conversations count", ["conversations", "list", "-n", "-1"], None, "--count"),
    ("json id with a newline", ["log", "--json"],
     '{"model": "m", "prompt": "p", "id": "01m7xhnvbscbetp2ef6kz6yg5v\\n"}', "not a valid response id"),
    ("json bad time", ["log", "--json"], '{"model": "m", "prompt": "p", "datetime_utc": "yesterday"}', "datetime_utc"),
    ("json simulated not a bool", ["log", "--json"], '{"model": "m", "prompt": "p", "simulated": "false"}',
     "simulated"),
    ("log with empty stdin", ["log", "-m", "m"], "", "prompt"),
    ("both -c and --cid", ["prompt", "-c", "--cid", UNKNOWN, "x"], None, "either"),
]


@pytest.mark.parametrize("name,args,stdin,fragment", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_and_changes_nothing(run, seeded, name, args, stdin, fragment):
    before = dump(db_file())
    result = run(*args, input=stdin)
    assert_one_line_error(result, fragment)
    assert dump(db_file()) == before


def test_continue_on_an_empty_database(run):
    assert_one_line_error(run("log", "-c", "-m", "m", "-p", "x"), "no conversation to continue")
    assert_one_line_error(run("prompt", "-c", "x"), "no conversation to continue")
    assert json.loads(run("logs", "list", "--json").out) == []


def test_database_in_a_missing_directory(run, tmp_path):
    result = run("--db", str(tmp_path / "missing" / "x.db"), "log", "-m", "m", "-p", "x")
    assert_one_line_error(result, "does not exist")
    assert not (tmp_path / "missing").exists()


def test_database_in_a_read_only_directory(run, tmp_path):
    if os.geteuid() == 0:
        target = "/proc/localfirst-test.db"  # root ignores permission bits; /proc is read-only for everyone
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        target = str(ro / "x.db")
    result = run("--db", target, "log", "-m", "m", "-p", "x")
    assert_one_line_error(result, "cannot open")
    assert not os.path.exists(target)


def test_not_sqlite_and_corrupt_files_as_db(run, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("these are my notes, not a database\n" * 100)
    before = text.read_bytes()
    assert_one_line_error(run("--db", str(text), "logs", "list"), "not an SQLite database")
    assert text.read_bytes() == before

    corrupt = tmp_path / "corrupt.db"
    Store.open(corrupt).close()
    data = bytearray(corrupt.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)
    corrupt.write_bytes(bytes(data))
    assert_one_line_error(run("--db", str(corrupt), "logs", "list"))
    assert corrupt.read_bytes() == bytes(data)


def test_foreign_sqlite_file_is_not_taken_over(run, tmp_path):
    other = tmp_path / "app.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE notes (x)")
    conn.commit()
    conn.close()
    before = dump(other)
    assert_one_line_error(run("--db", str(other), "log", "-m", "m", "-p", "x"), "not a localfirst one")
    assert dump(other) == before


def test_newer_schema_is_refused(run, tmp_path):
    newer = tmp_path / "newer.db"
    Store.open(newer).close()
    conn = sqlite3.connect(newer)
    conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
                 "VALUES ('localfirst', 'm999_future', 'x')")
    conn.commit()
    conn.close()
    before = dump(newer)
    assert_one_line_error(run("--db", str(newer), "log", "-m", "m", "-p", "x"), "newer version")
    assert_one_line_error(run("--db", str(newer), "logs", "list"), "newer version")
    assert dump(newer) == before


def test_unknown_option_is_one_line(run):
    # A word that is not a command is a prompt, as in llm; an unknown option is an error.
    assert_one_line_error(run("--bogus"), "--bogus")
    assert_one_line_error(run("frobnicate", "--bogus"), "--bogus")
    assert_one_line_error(run("logs", "list", "--bogus"), "--bogus")


def test_continuing_keeps_the_documents_own_model(run):
    log(run, "-m", "old-model", "-p", "p1", "-r", "r1")
    rid = log(run, "--json", "-c", input=json.dumps({"model": "new-model", "prompt": "p2", "response": "r2"}))
    assert json.loads(run("logs", "show", rid, "--json").out)["model"] == "new-model"
    rid = log(run, "--json", "-c", input=json.dumps({"prompt": "p3", "response": "r3"}))
    assert json.loads(run("logs", "show", rid, "--json").out)["model"] == "new-model"  # the latest turn's


def test_an_unusable_home_is_one_line(run, monkeypatch, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for home in (a_file, "/proc/localfirst-home"):
        monkeypatch.setenv("LOCALFIRST_HOME", str(home))
        if home == a_file:
            assert_one_line_error(run("logs", "list"), "home directory")
        else:  # reading creates nothing, so a home that cannot be created reads as empty
            assert run("logs", "list", "--json").out.strip() == "[]"
        assert_one_line_error(run("logs", "off"), "home directory")
        assert_one_line_error(run("models", "add", "x", "--base-url", "http://127.0.0.1:9/v1", "--model", "x"))


def test_continue_and_failed_merge_do_not_create_a_database(run, tmp_path):
    assert_one_line_error(run("log", "-c", "-m", "m", "-p", "x"), "no conversation to continue")
    assert_one_line_error(run("prompt", "--cid", UNKNOWN, "x"), "no conversation")
    text = tmp_path / "notes.txt"
    text.write_text("not a database")
    assert_one_line_error(run("merge", str(text)), "not an SQLite database")
    assert not db_file().exists()


def test_a_database_damaged_beyond_its_first_page_is_one_line(run, tmp_path):
    damaged = tmp_path / "damaged.db"
    store = Store.open(damaged)
    from localfirst.records import Response

    store.log_many([Response(model="m", prompt=f"row {i} " + "text " * 100, response="r") for i in range(300)])
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    data = bytearray(damaged.read_bytes())
    for offset in range(4096 * 4, len(data), 4096):
        data[offset + 8: offset + 4000] = bytes((i * 37) % 256 for i in range(3992))
    damaged.write_bytes(bytes(data))
    for args in (["logs", "list", "-n", "0", "--json"], ["logs", "list", "-q", "row", "-n", "0"],
                 ["conversations", "list"], ["logs", "status"]):
        result = run("--db", str(damaged), *args)
        if result.code != 0:
            assert_one_line_error(result)
        assert "Traceback" not in result.err


def test_help_for_the_program_and_for_a_group(run):
    whole = run("--help")
    assert whole.code == 0 and "logs" in whole.out and "merge" in whole.out and "templates" in whole.out
    group = run("--db", "x.db", "logs", "--help")
    assert group.code == 0 and "list" in group.out and "rm" in group.out


def test_error_leaves_a_user_can_meet_live_in_the_one_error_tree():
    from localfirst import errors

    assert issubclass(errors.FormatTooNew, errors.RemoteError) and errors.FormatTooNew.exit_code == 7
    assert issubclass(errors.ObjectTooLarge, errors.CorruptObject) and errors.ObjectTooLarge.exit_code == 9
    assert {"FormatTooNew", "ObjectTooLarge"} <= set(errors.__all__)
