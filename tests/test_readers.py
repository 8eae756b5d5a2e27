"""Readers never crash on what is in the database.

Another program, a damaged copy or an old bug can leave any value in any
column: text that is not JSON where JSON is expected, a BLOB or invalid UTF-8
where text is expected, numbers too large or not finite, JSON nested deeper
than Python can recurse, NULL where a value is always written. Such rows are
put in with raw sqlite3, bypassing the store; every reader must then answer
without a traceback, showing what it cannot interpret as its text.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from chat_server import running, stream_text

from localfirst import paths
from localfirst.records import Attachment, Part, Response
from localfirst.store import MAX_JSON_DEPTH, RAW_KEY, Store

DEEP = "[" * 100_000 + "]" * 100_000  # json.loads raises RecursionError
DEEPISH = "[" * 600 + "]" * 600  # loads, but is nested past MAX_JSON_DEPTH
HUGE_INT_JSON = '{"n": 1' + "0" * 5000 + "}"  # beyond Python's int-from-text digit limit


def _strict_json(text: str) -> Any:
    """Parse as standard JSON: NaN and Infinity are not JSON."""
    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} in JSON output")
    return json.loads(text, parse_constant=refuse)


def _relax_not_null(conn: sqlite3.Connection) -> None:
    """Drop the NOT NULL constraints, as a foreign or damaged copy might have none."""
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute("UPDATE sqlite_master SET sql = replace(sql, 'NOT NULL', '') "
                 "WHERE name IN ('responses', 'parts', 'conversations', 'attachments')")
    version = conn.execute("PRAGMA schema_version").fetchone()[0]
    conn.execute(f"PRAGMA schema_version = {version + 1}")
    conn.execute("PRAGMA writable_schema = OFF")


@pytest.fixture
def hostile() -> dict[str, str]:
    """The home database: one conversation of responses, each then damaged in its own way."""
    path = paths.ensure_home() / "logs.db"
    store = Store.open(path)
    first = store.log(Response(model="m", prompt="clean start", response="fine"))
    cid = store.get_response(first).conversation_id
    assert cid is not None
    rids = {"clean": first}
    for name in ("bad_json", "blobs", "numbers", "deep", "nulls", "parts"):
        rids[name] = store.log(Response(
            model="m", prompt=f"prompt {name}", response=f"answer {name}", conversation_id=cid,
            parts=[Part(type="tool_call", tool_call_id="c1", tool_name="t", arguments={"a": 1}),
                   Part(type="attachment", role="user", attachment=Attachment(f"bytes {name}".encode(), "text/plain"))],
        ))
    store.close()
    conn = sqlite3.connect(path, isolation_level=None)
    _relax_not_null(conn)
    conn.close()
    conn = sqlite3.connect(path, isolation_level=None)
    upd = conn.execute
    upd("UPDATE responses SET options_json = '{not json', prompt_json = 'plain words', "
        "response_json = '{\"a\": ', token_details = '[1, 2]', extras = 'NaN' WHERE id = ?", [rids["bad_json"]])
    upd("UPDATE parts SET arguments_json = '{\"a\": tru', extras = '\"just a string\"' WHERE response_id = ?",
        [rids["bad_json"]])
    upd("UPDATE responses SET prompt = ?, response = CAST(x'41ff42' AS TEXT), system = ?, model = ?, "
        "reasoning = ?, finish_reason = ?, datetime_utc = ?, options_json = ? WHERE id = ?",
        [b"\x00\xffbinary", b"sys\xfe", b"blob-model", b"\x80", b"stop", b"2030-01-01T00:00:00.000000Z",
         b'{"t": 1}', rids["blobs"]])
    upd("UPDATE parts SET text = ?, tool_name = ?, tool_call_id = CAST(x'ff' AS TEXT) WHERE response_id = ?",
        [b"\xff\xfe", b"tool\xff", rids["blobs"]])
    upd("UPDATE conversations SET name = ? WHERE id = ?", [b"name\xff", cid])
    upd("UPDATE responses SET input_tokens = 99999999999999999999, output_tokens = ?, duration_ms = ?, "
        "token_details = ?, simulated = 'yes', options_json = '{\"t\": 1e999}' WHERE id = ?",
        [float("nan"), float("inf"), HUGE_INT_JSON, rids["numbers"]])
    upd("UPDATE attachments SET size = 'big', mime_type = ? WHERE id IN "
        "(SELECT attachment_id FROM parts WHERE response_id = ?)", [b"\xff", rids["numbers"]])
    upd("UPDATE responses SET response_json = ?, prompt_json = ?, extras = ? WHERE id = ?",
        [DEEP, DEEPISH, '{"x:y": ' + "[" * 1000 + "]" * 1000 + "}", rids["deep"]])
    upd("UPDATE parts SET arguments_json = ? WHERE response_id = ?", [DEEP, rids["deep"]])
    upd("DELETE FROM attachments WHERE id IN (SELECT attachment_id FROM parts WHERE response_id = ?)",
        [rids["deep"]])
    upd("UPDATE responses SET model = NULL, datetime_utc = NULL, simulated = NULL, prompt = NULL, "
        "response = NULL WHERE id = ?", [rids["nulls"]])
    upd("UPDATE parts SET role = NULL, type = NULL WHERE response_id = ?", [rids["nulls"]])
    upd("UPDATE parts SET type = 'weird', role = 'nobody', attachment_id = 'no-such-attachment' "
        "WHERE response_id = ?", [rids["parts"]])
    upd("UPDATE attachments SET content = 'text, not bytes' WHERE id IN "
        "(SELECT attachment_id FROM parts WHERE response_id = ?)", [rids["bad_json"]])
    upd("UPDATE conversations SET created_utc = NULL WHERE id = ?", [cid])
    conn.close()
    return {**rids, "cid": cid}


def _ok(result: Any) -> Any:
    assert "Traceback" not in result.err
    assert result.code == 0, result.err
    return result


def test_logs_list_json_shows_what_it_cannot_read_as_text(run, hostile):
    rows = {r["id"]: r for r in _strict_json(_ok(run("logs", "list", "-n", "0", "--json")).out)}
    assert len(rows) == 7
    bad = rows[hostile["bad_json"]]
    assert bad["options"] == {RAW_KEY: "{not json"}
    assert bad["prompt_json"] == "plain words" and bad["response_json"] == '{"a": '
    assert bad["token_details"] == {RAW_KEY: "[1, 2]"} and bad["extras"] == {RAW_KEY: "NaN"}
    call = next(p for p in bad["parts"] if p["type"] == "tool_call")
    assert call["arguments"] == '{"a": tru' and call["extras"] == {RAW_KEY: '"just a string"'}
    blobs = rows[hostile["blobs"]]
    assert blobs["prompt"] == "\x00\ufffdbinary" and blobs["response"] == "A\ufffdB"
    assert blobs["model"] == "blob-model" and blobs["options"] == {"t": 1}
    assert blobs["conversation_name"] == "name\ufffd"
    numbers = rows[hostile["numbers"]]
    assert numbers["input_tokens"] is None  # 1e20: more than an INTEGER column holds
    assert numbers["output_tokens"] is None  # SQLite stores NaN as NULL
    assert numbers["duration_ms"] is None  # an infinity is no number of milliseconds
    assert numbers["token_details"] == {RAW_KEY: HUGE_INT_JSON}
    assert numbers["options"] == {RAW_KEY: '{"t": 1e999}'}
    assert next(p for p in numbers["parts"] if p["type"] == "attachment")["attachment"]["size"] == 0
    deep = rows[hostile["deep"]]
    assert deep["response_json"] == DEEP and deep["prompt_json"] == DEEPISH
    assert deep["extras"] == {RAW_KEY: '{"x:y": ' + "[" * 1000 + "]" * 1000 + "}"}
    nulls = rows[hostile["nulls"]]
    assert nulls["model"] == "" and nulls["datetime_utc"] is None and nulls["simulated"] is False
    assert {p["type"] for p in nulls["parts"]} == {""}
    odd = rows[hostile["parts"]]
    assert {p["type"] for p in odd["parts"]} == {"weird"}


@pytest.mark.parametrize("flags", [[], ["-s"], ["-t"], ["-r"], ["-q", "prompt"]])
def test_logs_list_in_every_form(run, hostile, flags):
    out = _ok(run("logs", "list", "-n", "0", *flags)).out
    assert out.strip()


def test_logs_show_every_damaged_response(run, hostile):
    for name, rid in hostile.items():
        if name == "cid":
            continue
        shown = _ok(run("logs", "show", rid)).out
        assert rid in shown
        assert _strict_json(_ok(run("logs", "show", rid, "--json")).out)["id"] == rid
    assert "{not json" in run("logs", "show", hostile["bad_json"]).out
    assert "\x00\ufffdbinary" in run("logs", "show", hostile["blobs"]).out


def test_conversations_and_status(run, hostile):
    assert hostile["cid"] in _ok(run("conversations", "list")).out
    listed = _strict_json(_ok(run("conversations", "list", "--json")).out)
    assert listed[0]["name"] == "name\ufffd" and listed[0]["created_utc"] == ""
    assert "Responses: 7" in _ok(run("logs", "status")).out


@pytest.mark.parametrize("fmt", ["jsonl", "markdown", "llm"])
def test_export_in_every_format(run, hostile, tmp_path: Path, fmt):
    if fmt == "llm":
        target = tmp_path / "llm.db"
        _ok(run("export", "-f", "llm", str(target)))
        conn = sqlite3.connect(target)
        assert conn.execute("SELECT count(*) FROM turns").fetchone()[0] == 7
        # stored as text, exported as the same bytes
        assert conn.execute("SELECT count(*) FROM attachments WHERE content = CAST('text, not bytes' AS BLOB)"
                            ).fetchone()[0] == 1
        conn.close()
        return
    out = _ok(run("export", "-f", fmt)).out
    if fmt == "jsonl":
        assert len([_strict_json(line) for line in out.splitlines()]) == 7
    else:
        assert "{not json" in out and "\x00\ufffdbinary" in out and "A\ufffdB" in out


def test_prompt_continuing_a_damaged_conversation(run, hostile):
    r = _ok(run("prompt", "--cid", hostile["cid"], "-m", "echo", "next please"))
    assert "next please" in r.out
    rows = _strict_json(_ok(run("logs", "list", "-n", "0", "--json")).out)
    assert [r["conversation_id"] for r in rows if r["prompt"] == "next please"] == [hostile["cid"]]


def test_prompt_continuing_a_damaged_conversation_with_a_chat_model(run, hostile, monkeypatch):
    """The history goes to a real chat-completions server: every message must be sendable JSON."""
    with running() as server:
        monkeypatch.setenv("TEST_KEY", "sk-test")
        assert run("models", "add", "srv", "--base-url", server.base_url, "--model", "served",
                   "--api-key-env", "TEST_KEY").code == 0
        server.script(stream_text("ok"))
        r = _ok(run("prompt", "--cid", hostile["cid"], "-m", "srv", "go on"))
        assert r.out.strip() == "ok"
        sent = server.seen[0].body["messages"]
    assert sent[-1] == {"role": "user", "content": "go on"}
    calls = [c for m in sent for c in m.get("tool_calls", [])]
    assert '{"a": tru' in [c["function"]["arguments"] for c in calls]  # sent as it was stored
    assert DEEP in [c["function"]["arguments"] for c in calls]


def test_json_nested_past_the_limit_is_kept_as_text(fresh_store):
    at_limit = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    past = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
    rid = fresh_store.log(Response(model="m", prompt="p"))
    fresh_store.conn.execute("UPDATE responses SET prompt_json = ?, response_json = ? WHERE id = ?",
                             [at_limit, past, rid])
    got = fresh_store.get_response(rid)
    assert got.prompt_json == json.loads(at_limit) and got.response_json == past
    json.dumps(got.to_json(), indent=2)
