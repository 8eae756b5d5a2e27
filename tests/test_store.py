import base64
import hashlib
import sqlite3

import pytest

from localfirst.errors import BadInput, NotFound
from localfirst.records import Attachment, Part, Response
from localfirst.store import Store


def full_exchange(**overrides):
    data = dict(
        model="claude-x",
        prompt="What is the weather in Paris?",
        system="You are terse.",
        resolved_model="claude-x-2026-01-01",
        prompt_json={"messages": [{"role": "user", "content": "What is the weather in Paris?"}]},
        options={"temperature": 0.2, "max_tokens": 100},
        response_json={"id": "msg_1", "stop_reason": "tool_use"},
        input_tokens=12,
        output_tokens=30,
        token_details={"cache_read_input_tokens": 4},
        duration_ms=850,
        finish_reason="tool_use",
        extras={"anthropic:cache_control": {"type": "ephemeral"}},
        parts=[
            Part(type="attachment", role="user",
                 attachment=Attachment(b"\x89PNG data", "image/png", path="/tmp/a.png")),
            Part(type="reasoning", text="The user wants weather."),
            Part(type="text", text="Let me check."),
            Part(type="tool_call", tool_call_id="toolu_1", tool_name="weather", arguments={"city": "Paris"}),
        ],
    )
    data.update(overrides)
    return Response(**data)


def test_log_and_read_back_every_field(fresh_store):
    rid = fresh_store.log(full_exchange())
    got = fresh_store.get_response(rid)
    assert got.model == "claude-x" and got.resolved_model == "claude-x-2026-01-01"
    assert got.system == "You are terse."
    assert got.options == {"temperature": 0.2, "max_tokens": 100}
    assert got.prompt_json["messages"][0]["role"] == "user"
    assert got.response_json == {"id": "msg_1", "stop_reason": "tool_use"}
    assert (got.input_tokens, got.output_tokens, got.duration_ms) == (12, 30, 850)
    assert got.token_details == {"cache_read_input_tokens": 4}
    assert got.extras == {"anthropic:cache_control": {"type": "ephemeral"}}
    assert got.finish_reason == "tool_use"
    # text parts fill the response text, reasoning parts the reasoning
    assert got.response == "Let me check."
    assert got.reasoning == "The user wants weather."
    assert [(p.role, p.type) for p in got.parts] == [
        ("user", "attachment"), ("assistant", "reasoning"), ("assistant", "text"), ("assistant", "tool_call")]
    call = got.parts[3]
    assert (call.tool_call_id, call.tool_name, call.arguments) == ("toolu_1", "weather", {"city": "Paris"})
    att = got.parts[0].attachment
    assert att.id == hashlib.sha256(b"\x89PNG data").hexdigest() and att.size == 9
    assert att.mime_type == "image/png" and att.path == "/tmp/a.png"
    assert fresh_store.attachment_content(att.id) == b"\x89PNG data"
    assert got.datetime_utc.endswith("Z") and len(got.datetime_utc) == 27


def test_text_and_tool_use_are_two_ordered_parts_of_one_response(fresh_store):
    rid = fresh_store.log(Response(model="m", prompt="p", parts=[
        Part(type="text", text="I'll look."),
        Part(type="tool_call", tool_call_id="t1", tool_name="search", arguments={"q": "x"}),
    ]))
    rows = fresh_store.conn.execute(
        "SELECT ordinal, type FROM parts WHERE response_id = ? ORDER BY ordinal", [rid]).fetchall()
    assert rows == [(0, "text"), (1, "tool_call")]
    assert fresh_store.conn.execute("SELECT count(*) FROM responses").fetchone()[0] == 1


def test_tool_result_and_simulated_turns(fresh_store):
    first = fresh_store.log(Response(model="m", prompt="Say hi", response="hi", simulated=True))
    cid = fresh_store.get_response(first).conversation_id
    second = fresh_store.log(Response(model="m", conversation_id=cid, parts=[
        Part(type="tool_result", role="user", tool_call_id="t1", tool_name="search", text="42", error=None),
        Part(type="text", text="The answer is 42."),
    ]))
    history = fresh_store.history(cid)
    assert [r.id for r in history] == [first, second]
    assert history[0].simulated is True and history[1].simulated is False
    result = history[1].parts[0]
    assert (result.type, result.role, result.tool_call_id, result.text) == ("tool_result", "user", "t1", "42")


def test_attachments_are_stored_once_per_content(fresh_store):
    for _ in range(3):
        fresh_store.log(Response(model="m", prompt="see", parts=[
            Part(type="attachment", role="user", attachment=Attachment(b"same bytes", "text/plain"))]))
    assert fresh_store.conn.execute("SELECT count(*) FROM attachments").fetchone()[0] == 1


def test_conversation_is_created_and_named_after_the_prompt(fresh_store):
    rid = fresh_store.log(Response(model="m", prompt="Plan a trip to\nLisbon in spring " + "x" * 60))
    conv = fresh_store.conversations()[0]
    assert conv.id == fresh_store.get_response(rid).conversation_id
    assert conv.name.startswith("Plan a trip to Lisbon") and len(conv.name) == 40


def test_unknown_conversation_and_malformed_ids_are_refused(fresh_store):
    with pytest.raises(NotFound):
        fresh_store.log(Response(model="m", prompt="x", conversation_id="01m7xhnvbscbetp2ef6kz6yg5t"))
    with pytest.raises(BadInput):
        fresh_store.log(Response(model="m", prompt="x", conversation_id="nope"))
    with pytest.raises(NotFound):
        fresh_store.get_response("01m7xhnvbscbetp2ef6kz6yg5v")
    assert fresh_store.conn.execute("SELECT count(*) FROM responses").fetchone()[0] == 0


def test_a_failed_batch_leaves_nothing(fresh_store):
    good = Response(model="m", prompt="fine")
    bad = Response(model="m", prompt="bad", conversation_id="01m7xhnvbscbetp2ef6kz6yg5t")
    with pytest.raises(NotFound):
        fresh_store.log_many([good, bad])
    assert fresh_store.conn.execute("SELECT count(*) FROM responses").fetchone()[0] == 0
    assert fresh_store.conn.execute("SELECT count(*) FROM conversations").fetchone()[0] == 0


def test_continue_picks_the_latest_response_by_time_not_by_id(fresh_store):
    newer_by_time = fresh_store.log(Response(model="m", prompt="a", datetime_utc="2030-01-01T00:00:00.000000Z"))
    fresh_store.log(Response(model="m", prompt="b", datetime_utc="2020-01-01T00:00:00.000000Z"))
    expected = fresh_store.get_response(newer_by_time).conversation_id
    assert fresh_store.pick_conversation(continue_latest=True) == expected


def test_full_text_search_is_ranked_and_filtered(fresh_store):
    fresh_store.log(Response(model="a", prompt="gardening tips", response="water tomatoes daily"))
    fresh_store.log(Response(model="b", prompt="tomatoes tomatoes tomatoes", response="tomatoes everywhere"))
    fresh_store.log(Response(model="a", prompt="unrelated", response="nothing here"))
    found = fresh_store.list_responses(query="tomatoes", count=0)
    assert [r.model for r in found] == ["b", "a"]
    assert [r.model for r in fresh_store.list_responses(query="tomatoes", model="a")] == ["a"]
    # user input is never parsed as FTS syntax
    assert fresh_store.list_responses(query='tomato" OR -x AND (') == []
    assert fresh_store.list_responses(query="   ") == []


def test_list_filters_by_time_and_returns_latest_last(fresh_store):
    for day in ("01", "02", "03", "04"):
        fresh_store.log(Response(model="m", prompt=day, datetime_utc=f"2026-01-{day}T12:00:00.000000Z"))
    assert [r.prompt for r in fresh_store.list_responses(count=2)] == ["03", "04"]
    got = fresh_store.list_responses(count=0, since="2026-01-02T00:00:00.000000Z",
                                     until="2026-01-03T23:59:59.999999Z")
    assert [r.prompt for r in got] == ["02", "03"]


def test_delete_removes_rows_from_search_and_leaves_tombstones(fresh_store):
    keep = fresh_store.log(Response(model="m", prompt="keep bananas"))
    gone = fresh_store.log(Response(model="m", prompt="secret bananas", parts=[
        Part(type="attachment", role="user", attachment=Attachment(b"private", "text/plain"))]))
    cid = fresh_store.get_response(gone).conversation_id
    assert fresh_store.delete(fresh_store.select_for_delete(response_ids=[gone])) == 1
    assert [r.id for r in fresh_store.list_responses(query="bananas")] == [keep]
    assert fresh_store.list_responses(query="secret") == []
    tombs = dict(fresh_store.conn.execute("SELECT key, tbl FROM tombstones"))
    assert tombs == {gone: "responses"}
    # the emptied conversation stays (another machine may add to it) but is not listed
    assert fresh_store.conversation_exists(cid)
    assert cid not in [c.id for c in fresh_store.conversations()]
    assert fresh_store.conn.execute("SELECT count(*) FROM attachments").fetchone()[0] == 0
    assert fresh_store.conn.execute("SELECT count(*) FROM parts").fetchone()[0] == 0


def test_deleting_a_named_conversation_tombstones_it(fresh_store):
    rid = fresh_store.log(Response(model="m", prompt="whole conversation"))
    cid = fresh_store.get_response(rid).conversation_id
    fresh_store.delete(fresh_store.select_for_delete(conversation_id=cid.upper()), conversation_id=cid.upper())
    tombs = sorted(fresh_store.conn.execute("SELECT tbl, key FROM tombstones"))
    assert tombs == [("conversations", cid), ("responses", rid)]
    assert not fresh_store.conversation_exists(cid)


def test_delete_by_conversation_and_before(fresh_store):
    a = fresh_store.log(Response(model="m", prompt="old", datetime_utc="2020-01-01T00:00:00.000000Z"))
    b = fresh_store.log(Response(model="m", prompt="new"))
    fresh_store.log(Response(model="m", prompt="new too", conversation_id=fresh_store.get_response(b).conversation_id))
    assert fresh_store.select_for_delete(before="2021-01-01T00:00:00.000000Z") == [a]
    cid = fresh_store.get_response(b).conversation_id
    assert len(fresh_store.select_for_delete(conversation_id=cid)) == 2
    with pytest.raises(NotFound):
        fresh_store.select_for_delete(response_ids=["01m7xhnvbscbetp2ef6kz6yg5v"])


def test_rename_uses_an_advancing_hybrid_clock(fresh_store):
    rid = fresh_store.log(Response(model="m", prompt="x"))
    cid = fresh_store.get_response(rid).conversation_id
    fresh_store.rename_conversation(cid, "first")
    fresh_store.rename_conversation(cid, "second")
    name, stamp = fresh_store.conn.execute("SELECT name, name_hlc FROM conversations").fetchone()
    assert name == "second" and stamp.endswith(fresh_store.host_id)
    with pytest.raises(NotFound):
        fresh_store.rename_conversation("01m7xhnvbscbetp2ef6kz6yg5v", "x")


def test_file_store_uses_wal_and_busy_timeout(db_path):
    store = Store.open(db_path)
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    store.close()


def test_no_synced_table_uses_an_integer_identity(fresh_store):
    """Every synced table is keyed by a ULID, a content hash, or a ULID plus ordinal."""
    keys = {}
    for table in ("conversations", "responses", "parts", "attachments", "tombstones"):
        cols = fresh_store.conn.execute(f"PRAGMA table_info({table})").fetchall()
        pk = [c[1] for c in sorted(cols, key=lambda c: c[5]) if c[5]]
        unique = [r[1] for r in fresh_store.conn.execute(f"PRAGMA index_list({table})") if r[2]]
        keys[table] = (pk, unique)
    assert keys["conversations"][0] == ["id"]
    assert keys["attachments"][0] == ["id"]
    assert keys["parts"][0] == ["response_id", "ordinal"]
    assert keys["tombstones"][0] == ["tbl", "key"]
    # responses: keyed by the ULID; rowid is a local locator for the full-text index, unique but no key
    assert keys["responses"][0] == ["id"] and len(keys["responses"][1]) == 2


def test_base64_attachment_from_json_round_trips():
    data = {"model": "m", "prompt": "p", "attachments": [
        {"content_base64": base64.b64encode(b"abc").decode(), "mime_type": "text/plain"}]}
    r = Response.from_json(data)
    assert r.parts[0].attachment.content == b"abc"
    with pytest.raises(BadInput):
        Response.from_json({"model": "m", "prompt": "p", "attachments": [{"content_base64": "!!"}]})
    with pytest.raises(BadInput):
        Response.from_json({"model": "m", "prompt": "p", "extras": {"not_namespaced": 1}})
    with pytest.raises(BadInput, match="datetime_utc"):
        Response.from_json({"model": "m", "prompt": "p", "datetime_utc": "yesterday"})
    with pytest.raises(BadInput, match="simulated"):
        Response.from_json({"model": "m", "prompt": "p", "simulated": "false"})
    moved = Response.from_json({"model": "m", "prompt": "p", "datetime_utc": "2026-01-02T03:04:05+01:00"})
    assert moved.datetime_utc == "2026-01-02T02:04:05.000000Z"


def test_writes_to_a_read_only_connection_fail_cleanly(db_path):
    Store.open(db_path).close()
    from localfirst.db import connect
    from localfirst.errors import DatabaseError

    store = Store(connect(db_path, readonly=True), path=str(db_path))
    with pytest.raises(DatabaseError):
        store.log(Response(model="m", prompt="x"))
    store.close()
    assert sqlite3.connect(db_path).execute("SELECT count(*) FROM responses").fetchone()[0] == 0


def test_a_response_id_cannot_be_logged_twice(fresh_store):
    rid = fresh_store.log(Response(model="m", prompt="once"))
    with pytest.raises(BadInput, match=rid):
        fresh_store.log_many([Response(model="m", prompt="fresh"), Response(model="m", prompt="again", id=rid)])
    assert fresh_store.conn.execute("SELECT count(*) FROM responses").fetchone()[0] == 1


def test_a_deleted_response_id_cannot_be_logged_again(fresh_store):
    rid = fresh_store.log(Response(model="m", prompt="once"))
    fresh_store.delete([rid])
    with pytest.raises(BadInput, match="deleted"):
        fresh_store.log(Response(model="m", prompt="back again", id=rid))
    assert fresh_store.conn.execute("SELECT count(*) FROM responses").fetchone()[0] == 0


def test_a_rolled_back_batch_leaves_the_callers_objects_ready_for_a_retry(fresh_store):
    first = Response(model="m", prompt="one", parts=[Part(type="text", role="assistant", text="hi")])
    clash = Response(model="m", prompt="two", id="01h" + "7" * 23)
    twin = Response(model="m", prompt="three", id="01h" + "7" * 23)
    with pytest.raises(BadInput):
        fresh_store.log_many([first, clash, twin])
    assert first.id in ("", None) and first.conversation_id is None and first.datetime_utc is None
    assert first.response is None
    ids = fresh_store.log_many([first, clash])
    assert ids == [first.id, clash.id] and first.response == "hi" and first.conversation_id
    assert [r.prompt for r in fresh_store.list_responses(count=0)] == ["one", "two"]


def test_deleting_a_conversation_takes_a_response_logged_after_the_selection(fresh_store):
    """`logs rm --conversation` selects, asks, then deletes: what was logged meanwhile goes too."""
    rid = fresh_store.log(Response(model="m", prompt="first"))
    cid = fresh_store.get_response(rid).conversation_id
    chosen = fresh_store.select_for_delete(conversation_id=cid)
    late = fresh_store.log(Response(model="m", prompt="logged while the user read the prompt",
                                    conversation_id=cid))
    assert fresh_store.delete(chosen, conversation_id=cid) == 2
    assert fresh_store.list_responses(count=0) == []
    dead = {k for (k,) in fresh_store.conn.execute("SELECT key FROM tombstones")}
    assert {rid, cid} <= dead and late not in {r.id for r in fresh_store.list_responses(count=0)}


def test_delete_before_selects_inside_its_transaction(fresh_store):
    old = fresh_store.log(Response(model="m", prompt="old", datetime_utc="2020-01-01T00:00:00.000000Z"))
    fresh_store.log(Response(model="m", prompt="new"))
    assert fresh_store.delete(before="2021-01-01T00:00:00.000000Z") == 1
    assert [r.prompt for r in fresh_store.list_responses(count=0)] == ["new"]
    assert fresh_store.conn.execute("SELECT key FROM tombstones").fetchall() == [(old,)]
