"""``export --format llm`` written in bulk: the same rows, the same schema, whatever the batching.

The exporter writes rows in batches, builds llm's indexes and full-text index
once the rows are in, and looks up only the messages a conversation opens
with. These tests hold the result to what a plain walk of the conversations
gives, and to llm's schema.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from llm_dbs import HAVE_LLM, NO_LLM

from localfirst.exporters import llm_db
from localfirst.exporters.llm_schema import LLM_SCHEMA
from localfirst.exporters.llm_turns import LlmMessage, turn_messages
from localfirst.records import Attachment, Part, Response
from localfirst.store import Store

_TEXTS = ["hello", "hi there", 'a "quote", a \\ backslash', "tab\tnew\nline \x01\x1f\x7f", "émoji 🎉 ü ✓", ""]


def varied_store(store: Store, seed: int, conversations: int = 40) -> None:
    """Conversations that open alike, repeat or extend one another, change their system
    prompt, and carry reasoning, tool calls and results and attachments (some shared),
    in text that JSON must escape."""
    rng = random.Random(seed)
    images = [Attachment(b"\x89PNG" + bytes([i]) * 40, "image/png", path=f"/tmp/{i}.png") for i in range(3)]
    made: list[list[dict[str, Any]]] = []
    clock = 0
    for _ in range(conversations):
        if made and rng.random() < 0.4:  # the whole or the start of an earlier one, then maybe more
            earlier = rng.choice(made)
            specs = [dict(s) for s in earlier[:rng.randint(1, len(earlier))]]
        else:
            specs = []
        for _ in range(rng.randint(0 if specs else 1, 3)):
            specs.append({"system": rng.choice([None, "be brief", "be kind ✓"]), "prompt": rng.choice(_TEXTS),
                          "response": rng.choice(_TEXTS), "reasoning": rng.random() < 0.2,
                          "call": rng.random() < 0.3, "result": rng.random() < 0.2,
                          "image": rng.choice([None, None, 0, 1, 2]), "options": rng.random() < 0.5})
        made.append(specs)
        cid = None
        for s in specs:
            clock += 1
            parts = []
            if s["result"]:
                parts.append(Part(type="tool_result", role="user", text="12:00", tool_name="clock",
                                  tool_call_id="call_1", error="late" if clock % 2 else None))
            if s["image"] is not None:
                parts.append(Part(type="attachment", role="user", attachment=images[s["image"]]))
            if s["reasoning"]:
                parts.append(Part(type="reasoning", text="thinking " + s["prompt"]))
            parts.append(Part(type="text", text=s["response"]))
            if s["call"]:
                parts.append(Part(type="tool_call", tool_name="clock", tool_call_id="call_1",
                                  arguments={"tz": "UTC", "ü": [1, 2.5, None]}))
            r = Response(model="m", prompt=s["prompt"], response=s["response"], system=s["system"],
                         conversation_id=cid, parts=parts, input_tokens=clock, output_tokens=2,
                         options={"temperature": 0.5, "name": "ü"} if s["options"] else None,
                         token_details={"cached": 1} if s["options"] else None,
                         response_json={"id": f"r{clock}", "text": s["response"]},
                         datetime_utc=f"2026-01-01T00:{clock // 60:02d}:{clock % 60:02d}.000000Z")
            store.log_many([r])
            cid = r.conversation_id


def dump(path: Path) -> dict[str, Any]:
    """Everything an export holds that llm reads: the schema as a set of statements, each
    table's rows in order, and each full-text index as its terms and where they occur
    (the layout of its segments depends on how it was built, and is left out)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    schema = sorted(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"), key=repr)
    out: dict[str, Any] = {"schema": schema}
    fts = [name for kind, name, _, sql in schema if kind == "table" and "VIRTUAL TABLE" in (sql or "")]
    for kind, name, _, _ in schema:
        if kind != "table" or name in fts or any(name.startswith(f"{f}_") for f in fts):
            continue
        cols = ", ".join(f'"{r[1]}"' for r in conn.execute(f'PRAGMA table_info("{name}")'))
        out[name] = conn.execute(f'SELECT {cols} FROM "{name}" ORDER BY {cols}').fetchall()
    for f in fts:
        conn.execute(f"CREATE VIRTUAL TABLE temp.vocab_{f} USING fts5vocab(main, '{f}', 'instance')")
        out[f] = conn.execute(f"SELECT term, doc, col, offset FROM temp.vocab_{f} ORDER BY 1, 2, 3, 4").fetchall()
        out[f + "_docsize"] = conn.execute(f"SELECT * FROM {f}_docsize ORDER BY id").fetchall()
    conn.close()
    return out


@pytest.fixture
def varied(tmp_path: Path) -> Store:
    store = Store.open(tmp_path / "varied.db")
    varied_store(store, seed=7)
    return store


def test_batches_and_the_filter_change_nothing_written(varied: Store, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # A message is looked for only while its conversation has written nothing new; a
    # flush after every conversation, one for all, and a filter that always says "maybe"
    # (so that every such message is looked for in the file) must write the same rows.
    dumps = []
    for flush, bits in [(5000, 1 << 26), (1, 1 << 26), (1, 8), (3, 8)]:
        monkeypatch.setattr(llm_db, "_FLUSH", flush)
        monkeypatch.setattr(llm_db._Written, "BITS", bits)
        target = tmp_path / f"llm-{flush}-{bits}.db"
        llm_db.export_llm(varied, target)
        dumps.append(dump(target))
    assert dumps[0]["turns"] and all(d == dumps[0] for d in dumps[1:])


def test_messages_are_those_of_a_plain_walk(varied: Store, tmp_path: Path) -> None:
    # Walk every conversation, hashing each message as llm does: the export holds each
    # distinct message once, its parts numbered in the order the walk first meets it.
    target = tmp_path / "llm.db"
    result = llm_db.export_llm(varied, target)
    first_seen: dict[str, tuple[str | None, LlmMessage]] = {}
    tips: dict[str | None, tuple[str | None, str | None]] = {}  # by conversation: its system prompt and tip
    walked = 0
    for r in varied.stream_responses(count=0, by_conversation=True):
        system, tip = tips.get(r.conversation_id, (None, None))
        inputs, reply = turn_messages(r, system=system)
        for m in [*inputs, reply]:
            h = llm_db.message_hash(m, tip)
            first_seen.setdefault(h, (tip, m))
            tip = h
            walked += 1
        tips[r.conversation_id] = (r.system or system, tip)
    conn = sqlite3.connect(target)
    messages = dict(conn.execute("SELECT hash, parent_hash FROM messages").fetchall())
    assert messages == {h: parent for h, (parent, _) in first_seen.items()}
    parts = conn.execute("SELECT id, message_hash, position, type FROM parts ORDER BY id").fetchall()
    assert [p[0] for p in parts] == list(range(1, len(parts) + 1))
    assert [(h, pos, part["type"]) for h, (_, m) in first_seen.items() for pos, part in enumerate(m.parts)] == [
        p[1:] for p in parts]
    threads = dict(conn.execute("SELECT id, tip_message_hash FROM threads").fetchall())
    assert threads == {cid: tip for cid, (_, tip) in tips.items()} and len(threads) == result.conversations
    assert len(first_seen) < walked  # conversations that open alike share messages
    shared_images = conn.execute("SELECT count(*), count(DISTINCT attachment_id) FROM part_attachments").fetchone()
    assert conn.execute("SELECT count(*) FROM attachments").fetchone()[0] == shared_images[1] > 0


def test_schema_search_and_indexes_are_there_once_complete(varied: Store, tmp_path: Path) -> None:
    target = tmp_path / "llm.db"
    llm_db.export_llm(varied, target)
    reference = sqlite3.connect(":memory:")
    reference.executescript(LLM_SCHEMA)
    want = sorted(reference.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"))
    conn = sqlite3.connect(target)
    assert sorted(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master")) == want
    conn.execute("INSERT INTO turn_search_fts (turn_search_fts) VALUES ('integrity-check')")
    hits = conn.execute("SELECT count(*) FROM turn_search_fts WHERE turn_search_fts MATCH 'quote'").fetchone()[0]
    assert hits == conn.execute("SELECT count(*) FROM turn_search WHERE prompt LIKE '%quote%' "
                                "OR response LIKE '%quote%'").fetchone()[0] > 0
    # The insert trigger made after the rows indexes what llm adds later.
    conn.execute("INSERT INTO turn_search (turn_id, prompt, response) VALUES ('x', 'zebra', '')")
    assert conn.execute("SELECT count(*) FROM turn_search_fts WHERE turn_search_fts MATCH 'zebra'").fetchone()[0] == 1
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.skipif(not HAVE_LLM, reason=NO_LLM)
def test_schema_is_the_one_llm_migrates_to(varied: Store, tmp_path: Path) -> None:
    # Column by column and index by index, as llm's own migrations lay it out.
    import sqlite_utils
    from llm.migrations import migrate

    target = tmp_path / "llm.db"
    llm_db.export_llm(varied, target)
    theirs = sqlite_utils.Database(memory=True)
    migrate(theirs)

    def shape(conn: sqlite3.Connection) -> dict[str, Any]:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: (conn.execute(f'PRAGMA table_xinfo("{t}")').fetchall(),
                    sorted((i[1], i[2], i[3], conn.execute(f'PRAGMA index_xinfo("{i[1]}")').fetchall())
                           for i in conn.execute(f'PRAGMA index_list("{t}")')),
                    conn.execute(f'PRAGMA foreign_key_list("{t}")').fetchall())
                for t in tables}

    ours = shape(sqlite3.connect(target))
    assert ours == shape(theirs.conn)
    triggers = "SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name"
    assert sqlite3.connect(target).execute(triggers).fetchall() == theirs.conn.execute(triggers).fetchall()


_part_text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=40)


@given(role=st.sampled_from(["system", "user", "assistant", "tool"]),
       parts=st.lists(st.one_of(
           st.fixed_dictionaries({"type": st.sampled_from(["text", "reasoning"]), "text": _part_text}),
           st.fixed_dictionaries({"type": st.just("tool_call"), "name": _part_text,
                                  "arguments": st.dictionaries(_part_text, st.integers() | _part_text)})),
           max_size=4),
       parent=st.none() | st.just("b2:" + "0" * 32) | _part_text)
def test_message_hash_is_blake2b_of_the_canonical_json(role: str, parts: list[dict[str, Any]],
                                                      parent: str | None) -> None:
    # The JSON is joined by hand from pieces; llm's rule is the whole object's canonical JSON.
    message = LlmMessage(role, parts, [[] for _ in parts], [{} for _ in parts])
    canonical = json.dumps({"parent": parent, "message": {"role": role, "parts": parts}}, sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False)
    assert llm_db.message_hash(message, parent) == "b2:" + hashlib.blake2b(canonical.encode(),
                                                                             digest_size=16).hexdigest()
