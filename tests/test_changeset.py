"""Changesets: deterministic bytes, names not positions, untrusted input refused."""

from __future__ import annotations

import gzip
import hashlib
import json
from typing import Any

import pytest

from localfirst.errors import CorruptObject
from sync.changeset import FormatTooNew, Header, Op, Schema, decode, encode, read_header

HOST = "01h" + "0" * 20 + "hst"
RID = "01h" + "0" * 20 + "r0d"
CID = "01h" + "0" * 20 + "c0d"
HLC = f"1700000000000.0000.{HOST}"
T = "2026-11-30T12:00:00.000000Z"
BYTES = b"\x00\xff\x01"
ATT = hashlib.sha256(BYTES).hexdigest()


def header(rows: int, **kw: Any) -> Header:
    base: dict[str, Any] = dict(store="01h000000000000000000store", host=HOST, seq=1, prev="", schema=2, rows=rows)
    base.update(kw)
    return Header(**base)


def ops() -> list[Op]:
    return [
        ("del", "responses", None, "01h" + "0" * 19 + "dead", HLC),
        ("set", "conversations", {"id": CID, "name": "n", "model": None, "created_utc": T, "name_hlc": HLC},
         None, None),
        ("put", "attachments", {"id": ATT, "mime_type": None, "size": 3, "content": BYTES,
                                "path": None, "url": None}, None, None),
        ("put", "responses", {"id": RID, "conversation_id": CID, "model": "m", "datetime_utc": T}, None, None),
        ("put", "parts", {"response_id": RID, "ordinal": 0, "role": "user", "type": "text", "text": "héllo"},
         None, None),
    ]


def test_same_changes_make_the_same_bytes() -> None:
    assert encode(header(5), ops()) == encode(header(5), ops())
    # gzip mtime is zero, so the bytes do not depend on when they were made
    assert encode(header(5), ops())[4:8] == b"\x00\x00\x00\x00"


def test_round_trip_keeps_every_value(schema: Schema) -> None:
    data = encode(header(5), ops())
    h, decoded = decode(data, schema, where="x")
    assert h == header(5)

    def value(table: str, column: str) -> Any:
        return decoded.rows[table][0][schema.columns[table].index(column)]

    assert value("attachments", "content") == BYTES
    assert value("parts", "text") == "héllo"
    assert decoded.dels == [("responses", "01h" + "0" * 19 + "dead", HLC)]
    assert sorted(decoded.rows) == ["attachments", "conversations", "parts", "responses"] and len(decoded) == 5


def test_lines_name_columns_and_sort_keys() -> None:
    lines = gzip.decompress(encode(header(5), ops())).decode().splitlines()
    first = json.loads(lines[0])
    assert first["type"] == "localfirst-changeset" and first["rows"] == 5 and first["prev"] == ""
    assert lines[4].index('"conversation_id"') < lines[4].index('"datetime_utc"') < lines[4].index('"id"')


def _raw(lines: list[dict[str, Any]], **kw: Any) -> bytes:
    head = header(len(lines), **kw).to_json()
    text = "\n".join(json.dumps(x) for x in [head, *lines]) + "\n"
    return gzip.compress(text.encode(), mtime=0)


def test_newer_schema_columns_are_ignored(schema: Schema) -> None:
    row = {"response_id": RID, "ordinal": 0, "role": "user", "type": "text", "colour": "blue"}
    _, decoded = decode(_raw([{"op": "put", "table": "parts", "row": row}], schema=99), schema, where="x")
    assert decoded.rows["parts"][0] == (RID, 0, "user", "text", None, None, None, None, None, None, None)


def test_higher_format_is_refused_clearly(schema: Schema) -> None:
    with pytest.raises(FormatTooNew, match="upgrade"):
        decode(_raw([], format=2), schema, where="x")


BAD_OPS = {
    "unknown table": {"op": "put", "table": "secrets", "row": {"id": RID}},
    "sql in table name": {"op": "put", "table": "responses; DROP TABLE responses; --", "row": {"id": RID}},
    "unknown column": {"op": "put", "table": "responses", "row": {"id": RID, "evil": 1}},
    "sql in column name": {"op": "put", "table": "responses", "row": {"id": RID, "id) VALUES (1); --": 1}},
    "local column": {"op": "put", "table": "responses", "row": {"id": RID, "rowid": 5}},
    "path in key": {"op": "put", "table": "responses", "row": {"id": "../../etc/passwd"}},
    "path in del key": {"op": "del", "table": "responses", "key": "../x", "hlc": HLC},
    "del of unknown table": {"op": "del", "table": "meta", "key": RID, "hlc": HLC},
    "bad hlc": {"op": "del", "table": "responses", "key": RID, "hlc": "tomorrow"},
    "put on mutable table": {"op": "put", "table": "conversations", "row": {"id": CID}},
    "unknown op": {"op": "drop", "table": "responses"},
    "object value": {"op": "put", "table": "responses", "row": {"id": RID, "model": {"x": 1}}},
    "negative ordinal": {"op": "put", "table": "parts", "row": {"response_id": RID, "ordinal": -1}},
    "bad attachment ref": {"op": "put", "table": "parts",
                           "row": {"response_id": RID, "ordinal": 0, "attachment_id": "../x"}},
}


@pytest.mark.parametrize("name", sorted(BAD_OPS))
def test_untrusted_operations_are_refused(schema: Schema, name: str) -> None:
    with pytest.raises(CorruptObject):
        decode(_raw([BAD_OPS[name]]), schema, where="x")


def test_unknown_table_from_newer_schema_says_upgrade(schema: Schema) -> None:
    with pytest.raises(CorruptObject, match="upgrade"):
        decode(_raw([{"op": "put", "table": "snippets", "row": {}}], schema=99), schema, where="x")


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[:-5],
        lambda b: b[:20] + bytes([b[20] ^ 1]) + b[21:],
        lambda b: gzip.compress(b"not json\n"),
        lambda b: gzip.compress(json.dumps({"type": "other"}).encode()),
        lambda b: b"",
    ],
)
def test_damaged_bytes_are_refused(schema: Schema, damage: Any) -> None:
    with pytest.raises(CorruptObject):
        decode(damage(encode(header(5), ops())), schema, where="x")


def test_row_count_must_match(schema: Schema) -> None:
    data = _raw([{"op": "del", "table": "responses", "key": RID, "hlc": HLC}])
    text = gzip.decompress(data).decode().replace('"rows": 1', '"rows": 2')
    with pytest.raises(CorruptObject, match="truncated"):
        read_header(gzip.compress(text.encode()), "x")


def test_a_newline_after_a_key_is_refused(schema: Schema) -> None:
    with pytest.raises(CorruptObject):
        decode(_raw([{"op": "del", "table": "responses", "key": RID + "\n", "hlc": HLC}]), schema, where="x")
