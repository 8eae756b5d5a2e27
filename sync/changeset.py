"""Changesets: gzip JSON Lines with deterministic bytes.

Line 1 is the header; every further line is one operation on one row:

    {"format":1,"host":H,"prev":SHA,"rows":N,"schema":S,"seq":Q,"store":ID,"type":"localfirst-changeset"}
    {"op":"set","row":{"created_utc":...,"id":...,"name":...,"name_hlc":...},"table":"conversations"}
    {"op":"put","row":{"id":...,...},"table":"responses"}
    {"op":"del","hlc":HLC,"key":ID,"table":"responses"}

Keys are sorted, separators compact and the gzip mtime zero, so the same
changes always make the same bytes. Byte values are written ``{"b64": ...}``.

A changeset is untrusted input: :func:`decode` checks the header, every
table and column name against the registry and the live schema, and every
key, before anything builds SQL from them.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import sqlite3
import zlib
from dataclasses import dataclass
from typing import Any

from localfirst import hlc
from localfirst.errors import CorruptObject, RemoteError

from .tables import (
    BY_NAME,
    HLC_RE,
    TABLES,
    TOMBSTONE_KINDS,
    TOMBSTONE_TABLES,
    SyncedTable,
    check_key_value,
    columns,
    present,
)

__all__ = ["FORMAT", "Header", "Op", "encode", "decode", "sha256", "FormatTooNew", "Schema"]

FORMAT = 1
TYPE = "localfirst-changeset"

# (op, table, row or None, key or None, hlc or None)
Op = tuple[str, str, dict[str, Any] | None, str | None, str | None]


class FormatTooNew(RemoteError):
    """The remote holds data of a newer sync format than this version reads."""


@dataclass(frozen=True)
class Header:
    store: str
    host: str
    seq: int
    prev: str
    schema: int
    rows: int
    format: int = FORMAT

    def to_json(self) -> dict[str, Any]:
        return {
            "type": TYPE, "format": self.format, "store": self.store, "host": self.host,
            "seq": self.seq, "prev": self.prev, "schema": self.schema, "rows": self.rows,
        }


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _value_out(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode()}
    return value


def _line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def encode(header: Header, ops: list[Op]) -> bytes:
    """The exact bytes of a changeset: the same input always gives the same bytes."""
    assert header.rows == len(ops)
    lines = [_line(header.to_json())]
    for op, table, row, key, stamp in ops:
        if op == "del":
            lines.append(_line({"op": op, "table": table, "key": key, "hlc": stamp}))
        else:
            assert row is not None
            lines.append(_line({"op": op, "table": table, "row": {k: _value_out(v) for k, v in row.items()}}))
    text = "\n".join(lines) + "\n"
    return gzip.compress(text.encode(), compresslevel=6, mtime=0)


class Schema:
    """The synced columns of this database, read once per connection."""

    def __init__(self, conn: sqlite3.Connection, version: int) -> None:
        self.version = version
        here = present(conn)
        self.tables = frozenset(t.name for t in here)
        # A registered table this database lacks has no columns: its rows are refused.
        self.columns: dict[str, frozenset[str]] = {t.name: frozenset() for t in TABLES}
        self.columns.update({t.name: frozenset(columns(conn, t)) for t in here})
        # Per table: declared types, and the NOT NULL columns without a default
        # (a row missing one would be skipped by INSERT OR IGNORE: refuse it).
        self.types: dict[str, dict[str, str]] = {}
        self.required: dict[str, frozenset[str]] = {}
        for t in here:
            info = [r for r in conn.execute(f"PRAGMA main.table_info({t.name})") if r[1] not in t.local]
            self.types[t.name] = {r[1]: str(r[2]).upper() for r in info}
            self.required[t.name] = frozenset(r[1] for r in info if r[3] and r[4] is None)


def _text(data: bytes, where: str) -> list[str]:
    try:
        return gzip.decompress(data).decode().splitlines()
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise CorruptObject(f"{where} is damaged: not a gzip JSON Lines changeset") from exc


def peek_header(data: bytes, where: str) -> Header:
    """The header alone, decompressing only the start of the changeset."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
            first = f.readline(1 << 16).decode()
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise CorruptObject(f"{where} is damaged: not a gzip JSON Lines changeset") from exc
    return _parse_header(first, where)


def read_header(data: bytes, where: str) -> tuple[Header, list[str]]:
    """Parse and check the header line; returns it with the operation lines."""
    lines = _text(data, where)
    header = _parse_header(lines[0] if lines else "", where)
    if header.rows != len(lines) - 1:
        raise CorruptObject(f"{where} is truncated: header says {header.rows} rows, it holds {len(lines) - 1}")
    return header, lines[1:]


def _parse_header(line: str, where: str) -> Header:
    try:
        raw = json.loads(line) if line else None
    except ValueError as exc:
        raise CorruptObject(f"{where} is damaged: its header is not JSON") from exc
    if not isinstance(raw, dict) or raw.get("type") != TYPE:
        raise CorruptObject(f"{where} is not a localfirst changeset")
    fmt = raw.get("format")
    if isinstance(fmt, int) and fmt > FORMAT:
        raise FormatTooNew(f"{where} uses sync format {fmt}; this localfirst reads format {FORMAT}: upgrade it")
    try:
        header = Header(
            store=_str(raw["store"]), host=_str(raw["host"]), seq=_int(raw["seq"]), prev=_str(raw["prev"]),
            schema=_int(raw["schema"]), rows=_int(raw["rows"]), format=_int(fmt),
        )
    except (KeyError, TypeError) as exc:
        raise CorruptObject(f"{where} has a damaged header") from exc
    return header


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError(v)
    return v


def _int(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise TypeError(v)
    return v


def decode(data: bytes, schema: Schema, *, where: str) -> tuple[Header, list[Op]]:
    """Parse and check every line; raise CorruptObject before returning anything bad.

    Unknown columns are dropped when the changeset comes from a newer schema
    and refused otherwise (nothing we know of writes them).
    """
    header, lines = read_header(data, where)
    newer = header.schema > schema.version
    try:
        # One parse of the whole body is much faster than one per line; every
        # element is checked below whatever the lines held.
        raws = json.loads("[" + ",".join(lines) + "]") if lines else []
    except ValueError:
        raws = None
    if raws is None or len(raws) != len(lines):
        raws = []
        for n, line in enumerate(lines, start=2):
            try:
                raws.append(json.loads(line))
            except ValueError as exc:
                raise CorruptObject(f"{where} line {n} is not JSON") from exc
    try:
        return header, _check_ops(raws, schema, newer=newer)
    except _Bad as exc:
        raise CorruptObject(f"{where} line {exc.line}: {exc}") from None


class _Bad(Exception):
    """An operation that fails a check, on line ``line`` of the changeset."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.line = line


_SCALARS = frozenset({str, int, float, type(None)})


def _check_ops(raws: list[Any], schema: Schema, *, newer: bool) -> list[Op]:
    """Check every operation: names against the schema first, then keys table by table.

    Written for speed (a pull checks every row it applies): the shape of each
    row is checked once per distinct set of column names.
    """
    ops: list[Op] = []
    rows: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    shapes: dict[tuple[str, tuple[str, ...]], frozenset[str] | None] = {}
    for n, raw in enumerate(raws, start=2):
        if type(raw) is not dict:
            raise _Bad("an operation must be an object", n)
        op = raw.get("op")
        if op == "del":
            ops.append(_check_del(raw, schema, newer=newer, line=n))
            continue
        name = raw.get("table")
        table = BY_NAME.get(name) if type(name) is str else None
        if op not in ("put", "set"):
            raise _Bad(f"unknown operation {op!r}", n)
        if table is None or table.name not in schema.tables:
            raise _unknown_table(name, newer, n)
        if op != table.op:
            raise _Bad(f"{op!r} is not allowed on {table.name}", n)
        row = raw.get("row")
        if type(row) is not dict:
            raise _Bad("row must be an object", n)
        shape = (table.name, tuple(row))
        if shape not in shapes:
            shapes[shape] = _check_shape(table, shape[1], schema, newer=newer, line=n)
        keep = shapes[shape]
        if keep is not None:
            row = {k: v for k, v in row.items() if k in keep}
        if not _SCALARS.issuperset(map(type, row.values())):
            for col, value in row.items():
                if type(value) not in _SCALARS:
                    row[col] = _value_in(value, n)
        ops.append((op, table.name, row, None, None))
        rows.setdefault(table.name, []).append((n, row))
    for name, found in rows.items():
        _check_keys(BY_NAME[name], found)
        _check_values(name, found, schema)
    return ops


# Numeric columns must hold numbers (TEXT columns take what comes, as SQLite does).
_NUMERIC = {"INTEGER": frozenset({int, bool}), "REAL": frozenset({int, float})}


def _check_values(name: str, found: list[tuple[int, dict[str, Any]]], schema: Schema) -> None:
    """Every NOT NULL column is there, and numeric columns hold numbers.

    Column by column rather than row by row: a pull of 100,000 rows runs this
    for every one of them.
    """
    required, types = schema.required.get(name, frozenset()), schema.types.get(name, {})
    for col, declared in types.items():
        numeric = _NUMERIC.get(declared)
        if col in required:
            for n, row in found:
                if row.get(col) is None:
                    raise _Bad(f"missing column {col!r} of {name}", n)
        if numeric is not None:
            for n, row in found:
                value = row.get(col)
                if value is not None and type(value) not in numeric:
                    raise _Bad(f"column {col!r} of {name} must be {declared.lower()}, not {value!r}", n)


def _check_shape(table: SyncedTable, cols: tuple[str, ...], schema: Schema, *, newer: bool,
                 line: int) -> frozenset[str] | None:
    """None when every column is known; the columns to keep when a newer schema added some."""
    known = schema.columns[table.name]
    if known.issuperset(cols):
        return None
    if not newer:
        unknown = sorted(c for c in cols if c not in known)
        raise _Bad(f"unknown column {unknown[0]!r} of {table.name}", line)
    return known


def _check_del(raw: dict[str, Any], schema: Schema, *, newer: bool, line: int) -> Op:
    name, key, stamp = raw.get("table"), raw.get("key"), raw.get("hlc")
    if name not in TOMBSTONE_TABLES or name not in schema.tables:
        raise _unknown_table(name, newer, line)
    if not check_key_value(TOMBSTONE_KINDS[str(name)], key):
        raise _Bad(f"invalid key {key!r} for {name}", line)
    if not _hlc_ok(stamp):
        raise _Bad(f"invalid hlc {stamp!r}", line)
    return ("del", str(name), None, str(key), stamp)


def _hlc_ok(stamp: Any) -> bool:
    """A well-formed HLC whose wall clock is not implausibly far ahead of ours.

    Observing one would drag every later local edit past it, and past the
    13 digits of the format: such a changeset is refused instead.
    """
    return isinstance(stamp, str) and HLC_RE.fullmatch(stamp) is not None and hlc.plausible(stamp)


def _unknown_table(name: Any, newer: bool, line: int) -> _Bad:
    hint = "; it comes from a newer localfirst: upgrade this one" if newer else ""
    return _Bad(f"unknown table {name!r}{hint}", line)


def _check_keys(table: SyncedTable, found: list[tuple[int, dict[str, Any]]]) -> None:
    """Keys, HLCs and references of every row of one table."""
    for col, kind in table.key.items():
        bad = [(n, r.get(col)) for n, r in found if not check_key_value(kind, r.get(col))]
        if bad:
            raise _Bad(f"invalid key {col}={bad[0][1]!r} for {table.name}", bad[0][0])
    for col, stamp_col in table.mutable.items():
        for n, row in found:
            stamp = row.setdefault(stamp_col, "")
            if stamp != "" and not _hlc_ok(stamp):
                raise _Bad(f"invalid {stamp_col} {stamp!r}", n)
            row.setdefault(col, None)
    for col in table.observed:
        for n, row in found:
            stamp = row.get(col)
            if stamp is not None and not _hlc_ok(stamp):
                raise _Bad(f"invalid {col} {stamp!r}", n)
    for col, target in table.carries.items():
        kind = next(iter(BY_NAME[target].key.values()))
        bad = [(n, r[col]) for n, r in found if r.get(col) is not None and not check_key_value(kind, r[col])]
        if bad:
            raise _Bad(f"invalid reference {col}={bad[0][1]!r}", bad[0][0])


def _value_in(value: Any, line: int) -> Any:
    if value is None or isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except ValueError:
            raise _Bad("invalid base64 value", line) from None
    raise _Bad("values must be strings, numbers, null or bytes", line)
