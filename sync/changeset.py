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
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from operator import itemgetter
from typing import Any, Literal, overload

from localfirst.errors import CorruptObject, FormatTooNew

from .check import Bad, Checked, Schema, check_del, check_rows, defaults, no_pause
from .tables import BY_NAME, TOMBSTONE_TABLES, SyncedTable

__all__ = [
    "FORMAT", "Header", "Op", "encode", "signed_text", "read_header", "decode", "decode_lines", "text_lines",
    "op_line", "inflate", "sha256",
    "FormatTooNew", "Schema", "MAX_TEXT", "MAX_ROWS",
]

FORMAT = 1
TYPE = "localfirst-changeset"
# What one changeset may hold once decompressed, and how many rows. A push
# keeps under both; a pull refuses more (a gzip bomb stops at MAX_TEXT).
MAX_TEXT = 32 * 1024 * 1024
MAX_ROWS = 100_000

# (op, table, row or None, key or None, hlc or None)
Op = tuple[str, str, dict[str, Any] | None, str | None, str | None]


@dataclass(frozen=True)
class Header:
    store: str
    host: str
    seq: int
    prev: str
    schema: int
    rows: int
    format: int = FORMAT
    #: on a team remote: the writer key that signed the changeset, and its signature
    writer: str | None = None
    sig: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": TYPE, "format": self.format, "store": self.store, "host": self.host,
            "seq": self.seq, "prev": self.prev, "schema": self.schema, "rows": self.rows,
        }
        if self.writer is not None:
            doc["writer"] = self.writer
        if self.sig is not None:
            doc["sig"] = self.sig
        return doc


def signed_text(header: Header, lines: list[str]) -> bytes:
    """What a writer signs: the header without its signature, then every operation line.

    The header is written again from its parsed fields, so only what a
    reader understands is signed; the lines are signed as they were sent.
    """
    unsigned = _line(replace(header, sig=None).to_json())
    return ("\n".join([unsigned, *lines]) + "\n").encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def value_out(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode()}
    return value


def _line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def op_line(op: Op) -> str:
    """One operation as its line (no line break)."""
    kind, table, row, key, stamp = op
    if kind == "del":
        return _line({"op": kind, "table": table, "key": key, "hlc": stamp})
    assert row is not None
    return _line({"op": kind, "table": table, "row": {k: value_out(v) for k, v in row.items()}})


@overload
def encode(header: Header, ops: list[Op], *, sign: Callable[[Header, list[str]], Header] | None = None) -> bytes: ...
@overload
def encode(header: Header, ops: list[Op], *, with_size: Literal[True],
           sign: Callable[[Header, list[str]], Header] | None = None) -> tuple[bytes, int]: ...


def encode(header: Header, ops: list[Op], *, with_size: bool = False,
           sign: Callable[[Header, list[str]], Header] | None = None) -> bytes | tuple[bytes, int]:
    """The exact bytes of a changeset: the same input always gives the same bytes.

    ``with_size`` also returns the size of the text once inflated. ``sign``
    returns the header with a writer's signature of the lines (a team
    remote's changesets); Ed25519 signatures are deterministic, so the bytes
    still are.
    """
    assert header.rows == len(ops)
    body_lines = list(map(op_line, ops))
    if sign is not None:
        header = sign(header, body_lines)
    lines = [_line(header.to_json()), *body_lines]
    text = ("\n".join(lines) + "\n").encode()
    body = gzip.compress(text, compresslevel=6, mtime=0)
    return (body, len(text)) if with_size else body


def inflate(data: bytes, where: str, *, limit: int = MAX_TEXT) -> bytes:
    """The decompressed bytes of one gzip member, refusing more than ``limit`` of them.

    Decompression is streamed, so a small object that inflates to gigabytes
    (a gzip bomb) costs no more memory than ``limit``.
    """
    inflater = zlib.decompressobj(wbits=31)
    # Chunks of a MiB, joined once at the end: a buffer grown step by step
    # leaves the heap fragmented, at several times its final size.
    chunks: list[bytes] = []
    size = 0
    try:
        pending = data
        while not inflater.eof:
            chunk = inflater.decompress(pending, min(1 << 20, limit + 1 - size))
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise CorruptObject(f"{where} inflates to more than {limit // (1 << 20)} MiB; it was refused")
            pending = inflater.unconsumed_tail
            if not chunk and not pending:
                break  # the input ends before the gzip member does
    except zlib.error as exc:
        raise CorruptObject(f"{where} is damaged: not a gzip JSON Lines changeset") from exc
    if not inflater.eof or inflater.unused_data:
        raise CorruptObject(f"{where} is damaged: not a gzip JSON Lines changeset")
    return b"".join(chunks)


def text_lines(data: bytes, where: str) -> list[str]:
    try:
        text = inflate(data, where).decode()
    except UnicodeDecodeError as exc:
        raise CorruptObject(f"{where} is damaged: not UTF-8 text") from exc
    # Only "\n" ends a line: JSON strings may hold U+2028 and other breaks.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def peek_header(data: bytes, where: str) -> Header:
    """The header alone, decompressing only the start of the changeset."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        start = inflater.decompress(data[: 1 << 16], 1 << 16)
        first = start.split(b"\n", 1)[0].decode()
    except (zlib.error, UnicodeDecodeError) as exc:
        raise CorruptObject(f"{where} is damaged: not a gzip JSON Lines changeset") from exc
    return _parse_header(first, where)


def read_header(data: bytes, where: str) -> tuple[Header, list[str]]:
    """Parse and check the header line; returns it with the operation lines."""
    lines = text_lines(data, where)
    header = _parse_header(lines[0] if lines else "", where)
    if header.rows > MAX_ROWS:
        raise CorruptObject(f"{where} says it holds {header.rows} rows; at most {MAX_ROWS} are accepted")
    if header.rows != len(lines) - 1:
        raise CorruptObject(f"{where} is truncated: header says {header.rows} rows, it holds {len(lines) - 1}")
    return header, lines[1:]


def _parse_header(line: str, where: str) -> Header:
    try:
        raw = json.loads(line) if line else None
    except (ValueError, RecursionError) as exc:
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
            writer=_opt_str(raw.get("writer")), sig=_opt_str(raw.get("sig")),
        )
    except (KeyError, TypeError) as exc:
        raise CorruptObject(f"{where} has a damaged header") from exc
    return header


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError(v)
    return v


def _opt_str(v: Any) -> str | None:
    return None if v is None else _str(v)


def _int(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise TypeError(v)
    return v


def decode(data: bytes, schema: Schema, *, where: str) -> tuple[Header, Checked]:
    """Parse and check every line; raise CorruptObject before returning anything bad.

    Unknown columns are dropped when the changeset comes from a newer schema
    and refused otherwise (nothing we know of writes them).
    """
    header, lines = read_header(data, where)
    return header, decode_lines(lines, schema, where=where, newer=header.schema > schema.version)


# Lines parsed between two pauses of the checker (a pull's applier waits for
# it there: see sync.check.Turns).
PARSE_CHUNK = 512
_DECODER = json.JSONDecoder()


def _parse_chunk(chunk: list[str]) -> list[Any] | None:
    """The value of each line, when each is exactly one JSON value with nothing around it; else None.

    Each line on its own: parsed together as one array, half an object on
    one line and the rest on the next would pass as one operation as long as
    another line held two.
    """
    out = []
    try:
        for line in chunk:
            value, end = _DECODER.raw_decode(line)
            if end != len(line):
                return None
            out.append(value)
    except (ValueError, RecursionError):
        return None
    return out


def decode_lines(lines: list[str], schema: Schema, *, where: str, newer: bool,
                 pause: Callable[[], None] = no_pause) -> Checked:
    """The operation lines of a changeset or a snapshot part (line 2 on), checked."""
    raws: list[Any] = []
    for start in range(0, len(lines), PARSE_CHUNK):
        pause()
        chunk = lines[start:start + PARSE_CHUNK]
        parsed = _parse_chunk(chunk)
        if parsed is None:
            # A line with spaces around its value is read as json.loads reads it, and a
            # bad one is named: the chunk again, line by line.
            parsed = []
            for n, line in enumerate(chunk, start=start + 2):
                try:
                    parsed.append(json.loads(line))
                except (ValueError, RecursionError) as exc:
                    raise CorruptObject(f"{where} line {n} is not JSON (or nests too deep)") from exc
        raws += parsed
    try:
        return check_ops(raws, schema, newer=newer, pause=pause)
    except Bad as exc:
        raise CorruptObject(f"{where} line {exc.index}: {exc}") from None


_SCALARS = frozenset({str, int, float, type(None)})


def check_ops(raws: list[Any], schema: Schema, *, newer: bool, first_line: int = 2,
              pause: Callable[[], None] = no_pause) -> Checked:
    """Check every operation: names against the schema first, then every value, table by table.

    A :class:`Bad` names the line (``first_line`` is the line of ``raws[0]``).
    Written for speed (a pull checks every row it applies): the shape of a
    row is checked once per distinct set of column names, and values column
    by column. ``pause`` is called every 256 operations and before each
    column (see :class:`sync.check.Turns`).
    """
    out = Checked(schema)
    lines: dict[str, list[int]] = {}
    shapes: dict[tuple[str, tuple[str, ...]], tuple[Callable[[dict[str, Any]], tuple[Any, ...]], bool]] = {}
    for n, raw in enumerate(raws, start=first_line):
        if not n & 255:
            pause()
        if type(raw) is not dict:
            raise Bad("an operation must be an object", n)
        op = raw.get("op")
        if op == "del":
            name = raw.get("table")
            if name not in TOMBSTONE_TABLES or name not in schema.tables:
                raise _unknown_table(name, newer, n)
            try:
                out.dels.append(check_del(name, raw.get("key"), raw.get("hlc"), now_ms=schema.now_ms))
            except Bad as exc:
                raise Bad(str(exc), n) from None
            continue
        name = raw.get("table")
        table = BY_NAME.get(name) if type(name) is str else None
        if op not in ("put", "set"):
            raise Bad(f"unknown operation {_short(op)}", n)
        if table is None or table.name not in schema.tables:
            raise _unknown_table(name, newer, n)
        if op != table.op:
            raise Bad(f"{op!r} is not allowed on {table.name}", n)
        row = raw.get("row")
        if type(row) is not dict:
            raise Bad("row must be an object", n)
        shape = (table.name, tuple(row))
        if shape not in shapes:
            shapes[shape] = _shape(table, shape[1], schema, newer=newer, line=n)
        pick, plain = shapes[shape]
        values = pick(row)
        if not plain or not _SCALARS.issuperset(map(type, values)):
            values = tuple(_value_in(v, n) for v in values)
        out.rows.setdefault(table.name, []).append(values)
        lines.setdefault(table.name, []).append(n)
    for name, rows in out.rows.items():
        try:
            check_rows(schema, BY_NAME[name], rows, pause=pause)
        except Bad as exc:
            raise Bad(str(exc), lines[name][exc.index]) from None
    return out


def _shape(table: SyncedTable, cols: tuple[str, ...], schema: Schema, *, newer: bool,
           line: int) -> tuple[Callable[[dict[str, Any]], tuple[Any, ...]], bool]:
    """A function that turns a row of these columns into a tuple in schema order.

    Columns a newer schema added are dropped; unknown columns from the same
    or an older schema are refused; missing ones take their default.
    """
    known = schema.known[table.name]
    unknown = sorted(c for c in cols if c not in known)
    if unknown and not newer:
        raise Bad(f"unknown column {_short(unknown[0])} of {table.name}", line)
    order = schema.columns[table.name]
    fill = defaults(table, order)
    named = set(cols)
    if named.issuperset(order):
        getter = itemgetter(*order)
        if len(order) == 1:
            return (lambda row: (getter(row),)), True
        return getter, True
    picks = [(c, d, c in named) for c, d in zip(order, fill, strict=True)]
    return (lambda row: tuple(row[c] if has else d for c, d, has in picks)), False


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unknown_table(name: Any, newer: bool, line: int) -> Bad:
    hint = "; it comes from a newer localfirst: upgrade this one" if newer else ""
    return Bad(f"unknown table {_short(name)}{hint}", line)


def _value_in(value: Any, line: int) -> Any:
    if type(value) in _SCALARS:
        return value
    if type(value) is dict and set(value) == {"b64"} and type(value["b64"]) is str:
        try:
            return base64.b64decode(value["b64"], validate=True)
        except ValueError:
            raise Bad("invalid base64 value", line) from None
    raise Bad("values must be strings, numbers, null or bytes", line)
