"""The merge rules: order does not matter, twice is once, deleted keys stay deleted."""

from __future__ import annotations

import hashlib
import itertools
import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from synctools import dump, new_store

from localfirst import hlc, migrations
from localfirst.store import Store
from sync import capture
from sync.apply import apply_ops
from sync.changeset import Op
from sync.check import Schema

HOST = "01h" + "0" * 20 + "hst"
RIDS = ["01h" + "0" * 22 + c for c in "0123"]
CIDS = ["01h" + "1" * 22 + c for c in "01"]
ATTS = [hashlib.sha256(c.encode()).hexdigest() for c in "ab"]
CONTENT = dict(zip(ATTS, [b"a", b"b"], strict=True))
T = "2026-11-30T12:00:00.000000Z"
SOON = time.time_ns() // 1_000_000 + 3_600_000  # an hour ahead: far enough, yet plausible


def stamp(ms: int, counter: int) -> str:
    return hlc.format_hlc(1_700_000_000_000 + ms, counter, HOST)


def put_response(i: int) -> list[Op]:
    rid, cid, att = RIDS[i], CIDS[i % 2], ATTS[i % 2]
    return [
        ("set", "conversations", {"id": cid, "name": None, "model": "m", "created_utc": T, "name_hlc": ""},
         None, None),
        ("put", "attachments", {"id": att, "mime_type": None, "size": 1, "content": CONTENT[att],
                                "path": None, "url": None}, None, None),
        ("put", "responses", {"id": rid, "conversation_id": cid, "model": "m", "prompt": f"p{i}",
                              "response": f"r{i}", "datetime_utc": f"2026-11-30T12:00:0{i}.000000Z"}, None, None),
        ("put", "parts", {"response_id": rid, "ordinal": 0, "role": "user", "type": "attachment",
                          "attachment_id": att}, None, None),
        ("put", "parts", {"response_id": rid, "ordinal": 1, "role": "assistant", "type": "text", "text": "x"},
         None, None),
    ]


@st.composite
def op_lists(draw: Any) -> list[list[Op]]:
    # A logged response is one group: a pushed part always travels with the
    # attachment it references (``carries``), so groups are never split.
    groups: list[list[Op]] = []
    n = draw(st.integers(1, 12))
    for counter in range(n):
        kind = draw(st.sampled_from(["put", "rename", "del_r", "del_c"]))
        ms = draw(st.integers(0, 5))
        if kind == "put":
            groups.append(put_response(draw(st.integers(0, 3))))
        elif kind == "rename":
            cid = draw(st.sampled_from(CIDS))
            groups.append([("set", "conversations", {"id": cid, "name": f"name {counter}", "model": "m",
                                                     "created_utc": T, "name_hlc": stamp(ms, counter)},
                            None, None)])
        elif kind == "del_r":
            groups.append([("del", "responses", None, draw(st.sampled_from(RIDS)), stamp(ms, counter))])
        else:
            groups.append([("del", "conversations", None, draw(st.sampled_from(CIDS)), stamp(ms, counter))])
    cuts = sorted(draw(st.lists(st.integers(0, len(groups)), min_size=2, max_size=2)))
    pieces = [groups[: cuts[0]], groups[cuts[0]: cuts[1]], groups[cuts[1]:]]
    return [[op for g in piece for op in g] for piece in pieces]


def apply_all(store: Store, changesets: list[list[Op]]) -> None:
    for ops in changesets:
        with store.write() as conn, capture.guard(conn, "test"):
            apply_ops(conn, ops, schema=Schema(conn, len(migrations.names())))


@settings(max_examples=40, deadline=None)
@given(op_lists())
def test_any_order_and_any_repetition_give_the_same_database(changesets: list[list[Op]]) -> None:
    results = []
    for order in itertools.permutations(changesets):
        store = new_store()
        apply_all(store, list(order))
        results.append(dump(store))
        apply_all(store, list(order))
        assert dump(store) == results[-1], "applying twice changed something"
        store.close()
    assert all(r == results[0] for r in results)


@settings(max_examples=30, deadline=None)
@given(op_lists())
def test_a_deleted_key_never_comes_back(changesets: list[list[Op]]) -> None:
    store = new_store()
    apply_all(store, changesets)
    dead = {key for ops in changesets for op, _, _, key, _ in ops if op == "del"}
    alive = {r[0] for r in store.conn.execute("SELECT id FROM responses UNION SELECT id FROM conversations")}
    assert not dead & alive
    parts_of_dead = store.conn.execute(
        "SELECT count(*) FROM parts WHERE response_id IN (SELECT key FROM tombstones)").fetchone()[0]
    assert parts_of_dead == 0
    in_dead_conversations = store.conn.execute(
        "SELECT count(*) FROM responses WHERE conversation_id IN "
        "(SELECT key FROM tombstones WHERE tbl = 'conversations')").fetchone()[0]
    assert in_dead_conversations == 0
    orphans = store.conn.execute(
        "SELECT count(*) FROM parts WHERE response_id NOT IN (SELECT id FROM responses)").fetchone()[0]
    assert orphans == 0


def test_last_writer_wins_per_name_whatever_arrives_first() -> None:
    older = [("set", "conversations", {"id": CIDS[0], "name": "old", "model": None, "created_utc": T,
                                       "name_hlc": stamp(1, 0)}, None, None)]
    newer = [("set", "conversations", {"id": CIDS[0], "name": "new", "model": None, "created_utc": T,
                                       "name_hlc": stamp(2, 0)}, None, None)]
    for order in ([older, newer], [newer, older]):
        store = new_store()
        apply_all(store, order)
        assert store.conn.execute("SELECT name FROM conversations").fetchone()[0] == "new"


def test_equal_hlcs_pick_the_same_name_everywhere() -> None:
    one = [("set", "conversations", {"id": CIDS[0], "name": "apple", "model": None, "created_utc": T,
                                     "name_hlc": stamp(1, 0)}, None, None)]
    two = [("set", "conversations", {"id": CIDS[0], "name": "pear", "model": None, "created_utc": T,
                                     "name_hlc": stamp(1, 0)}, None, None)]
    for order in ([one, two], [two, one]):
        store = new_store()
        apply_all(store, order)
        assert store.conn.execute("SELECT name FROM conversations").fetchone()[0] == "pear"


def test_a_deleted_conversation_takes_responses_added_elsewhere() -> None:
    late = put_response(2)  # conversation 0, from a machine that had not heard of the delete
    gone = [("del", "conversations", None, CIDS[0], stamp(1, 0))]
    for order in ([late, gone], [gone, late]):
        store = new_store()
        apply_all(store, order)
        assert store.conn.execute("SELECT count(*) FROM responses").fetchone()[0] == 0
        assert store.conn.execute("SELECT count(*) FROM parts").fetchone()[0] == 0
        assert store.conn.execute("SELECT count(*) FROM attachments").fetchone()[0] == 0


def test_the_local_clock_moves_past_every_applied_hlc() -> None:
    store = new_store()
    future = hlc.format_hlc(SOON, 7, HOST)
    apply_all(store, [[("set", "conversations", {"id": CIDS[0], "name": "far", "model": None,
                                                  "created_utc": T, "name_hlc": future}, None, None)]])
    store.rename_conversation(CIDS[0], "mine, made later")
    name, stamp_now = store.conn.execute("SELECT name, name_hlc FROM conversations").fetchone()
    assert name == "mine, made later" and stamp_now > future


def test_the_local_clock_moves_past_applied_deletions_and_template_versions() -> None:
    store = new_store()
    deleted_at = hlc.format_hlc(SOON, 3, HOST)
    apply_all(store, [[("del", "responses", None, RIDS[0], deleted_at)]])
    with store.write() as conn:
        assert hlc.tick(conn) > deleted_at
    edited_at = hlc.format_hlc(SOON + 1000, 1, HOST)
    apply_all(store, [[
        ("put", "templates", {"id": CIDS[1], "name": "t", "created_utc": T}, None, None),
        ("put", "template_versions", {"id": RIDS[3], "template_id": CIDS[1], "hlc": edited_at,
                                      "prompt": "p", "created_utc": T}, None, None),
    ]])
    with store.write() as conn:
        assert hlc.tick(conn) > edited_at


def test_attachments_go_when_nothing_references_them() -> None:
    store = new_store()
    apply_all(store, [put_response(0), put_response(2)])  # both use attachment a
    apply_all(store, [[("del", "responses", None, RIDS[0], stamp(1, 0))]])
    assert store.conn.execute("SELECT count(*) FROM attachments").fetchone()[0] == 1
    apply_all(store, [[("del", "responses", None, RIDS[2], stamp(1, 1))]])
    assert store.conn.execute("SELECT count(*) FROM attachments").fetchone()[0] == 0
