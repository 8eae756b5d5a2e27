"""Checking what arrives from elsewhere, before any of it is applied.

A changeset, a snapshot or another database file is untrusted input. Its
rows become a :class:`Checked` batch here, value by value against the kinds
of the registry (``localfirst.registry``); the apply path accepts nothing
else, so "already checked" is a type, not a convention.

What is checked, by column kind: keys and references in their canonical
form; text is text and never bytes; integers within SQLite's 64-bit range;
no NaN or infinity anywhere; JSON columns hold one JSON value of bounded
nesting (an object where the column says so); times in the stored format;
HLCs well formed and not far ahead of this machine's clock; NOT NULL
honoured; no value longer than :data:`MAX_VALUE`; an attachment's bytes hash
to its id. Checks run column by column, not row by row: a pull runs them on
every row it applies.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from localfirst import hlc
from localfirst.registry import TABLES, TOMBSTONE_KINDS, Column, SyncedTable, present

__all__ = [
    "Schema", "Checked", "Bad", "check_rows", "check_del", "check_key_value", "hlc_ok", "defaults",
    "HLC_RE", "MAX_VALUE", "MAX_DEPTH", "Turns", "no_pause",
]

ULID_RE = re.compile(r"^[0-7][0-9a-hjkmnp-tv-z]{25}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
HLC_RE = re.compile(r"^\d{13}\.\d{4}\.[0-9a-hjkmnp-tv-z]{26}$", re.ASCII)
TIME_RE = re.compile(r"^\d{4}-[01]\d-[0-3]\dT[0-2]\d:[0-5]\d:[0-6]\d\.\d{6}Z$", re.ASCII)
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$")
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
# The longest text or bytes value accepted (a changeset's text is capped at
# about the same size), and the deepest JSON nesting in a JSON column.
MAX_VALUE = 16 * 1024 * 1024
MAX_DEPTH = 64


class Turns:
    """How a checking thread and an applying thread share Python's lock.

    A pull checks the next changeset in a thread of its own while it applies
    the one before: SQLite lets go of the lock while it writes, so the two
    overlap. Except where the applier binds rows one at a time: each row is
    a short step of SQLite, and after each the applier waits for the checker
    to hand the lock back, so the two would take turns row by row, slower
    than one after the other. Instead the applier holds the checker back
    while it binds (:meth:`binding`); the checker waits at :meth:`pause`
    between chunks of its work. Leaving a ``with Turns()`` block lets the
    checker go, so that a thread waiting for it to finish (a
    ``ThreadPoolExecutor`` left after this block) never waits on an applier
    that was interrupted.
    """

    def __init__(self) -> None:
        self._free = threading.Event()
        self._free.set()

    def __enter__(self) -> Turns:
        return self

    def __exit__(self, *exc: object) -> None:
        self._free.set()

    def pause(self) -> None:
        self._free.wait()

    @contextmanager
    def binding(self) -> Iterator[None]:
        try:
            # Inside the try: a Ctrl-C as the checker is held back still lets it go.
            self._free.clear()
            yield
        finally:
            self._free.set()


def no_pause() -> None:
    """The :meth:`Turns.pause` of a check that runs alone."""


class Bad(Exception):
    """A value that fails a check; ``index`` is the row (or line) it was found in."""

    def __init__(self, message: str, index: int = 0) -> None:
        super().__init__(message)
        self.index = index


class Schema:
    """The synced columns of this database, in registry order; read once per connection."""

    def __init__(self, conn: sqlite3.Connection, version: int) -> None:
        self.version = version
        here = present(conn)
        self.tables = frozenset(t.name for t in here)
        self.columns: dict[str, tuple[str, ...]] = {t.name: () for t in TABLES}
        for t in here:
            live = {r[1] for r in conn.execute(f"PRAGMA main.table_info({t.name})")}
            self.columns[t.name] = tuple(c for c in t.columns if c in live)
        self.known = {name: frozenset(cols) for name, cols in self.columns.items()}
        #: the time HLCs are judged against (ms since the epoch); None: this
        #: machine's clock. A pull sets the later of ours and the remote's.
        self.now_ms: int | None = None


@dataclass
class Checked:
    """Operations whose every name, key and value passed the checks.

    ``dels`` are tombstones (table, key, hlc); ``rows`` holds, per table, tuples
    in the order of ``schema.columns[table]``.
    """

    schema: Schema
    dels: list[tuple[str, str, str]] = field(default_factory=list)
    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.dels) + sum(len(r) for r in self.rows.values())


def check_key_value(kind: str, value: object) -> bool:
    """Whether ``value`` is a valid key part of this kind (never a path or SQL)."""
    if kind == "ulid":
        return type(value) is str and ULID_RE.fullmatch(value) is not None
    if kind == "sha256":
        return type(value) is str and SHA256_RE.fullmatch(value) is not None
    if kind == "ordinal":
        return type(value) is int and 0 <= value < 1_000_000
    if kind == "name":
        return type(value) is str and NAME_RE.fullmatch(value) is not None
    raise AssertionError(kind)


def hlc_ok(stamp: Any, *, now_ms: int | None = None) -> bool:
    """A well-formed HLC whose wall clock is not implausibly far ahead of ours.

    Observing one would drag every later local edit past it, and past the
    13 digits of the format: such a value is refused instead.
    """
    return type(stamp) is str and HLC_RE.fullmatch(stamp) is not None and hlc.plausible(stamp, now_ms=now_ms)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _depth_ok(text: str) -> bool:
    """Whether JSON ``text`` nests at most MAX_DEPTH deep (brackets inside strings count: a safe bound)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return True
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return False
        elif ch in "]}":
            depth -= 1
    return True


# One decoder for every value: json.loads with an argument builds a new one per call.
_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def _json_ok(value: str, *, obj: bool) -> bool:
    if not _depth_ok(value):
        return False
    try:
        parsed = _DECODER.decode(value)
    except (ValueError, RecursionError):
        return False
    return isinstance(parsed, dict) if obj else True


# For each kind: (test of one non-NULL value, what a good value is).
_TESTS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "ulid": (lambda v: check_key_value("ulid", v), "a ULID"),
    "sha256": (lambda v: check_key_value("sha256", v), "a sha256 in hex"),
    "ordinal": (lambda v: check_key_value("ordinal", v), "an ordinal from 0 to 999999"),
    "text": (lambda v: type(v) is str and len(v) <= MAX_VALUE, "text"),
    "name": (lambda v: type(v) is str and NAME_RE.fullmatch(v) is not None, "a template name"),
    "json": (lambda v: type(v) is str and len(v) <= MAX_VALUE and _json_ok(v, obj=False), "JSON text"),
    "object": (lambda v: type(v) is str and len(v) <= MAX_VALUE and _json_ok(v, obj=True), "a JSON object"),
    "int": (lambda v: type(v) is int and INT_MIN <= v <= INT_MAX, "a 64-bit integer"),
    "real": (lambda v: (type(v) is float and math.isfinite(v)) or (type(v) is int and INT_MIN <= v <= INT_MAX),
             "a finite number"),
    "bool": (lambda v: type(v) is int and v in (0, 1), "0 or 1"),
    "blob": (lambda v: type(v) is bytes and len(v) <= MAX_VALUE, "bytes"),
    "time": (lambda v: type(v) is str and TIME_RE.fullmatch(v) is not None,
             "a UTC time like 2026-01-31T09:30:00.000000Z"),
    "hlc": (hlc_ok, "an HLC not far in the future"),
}
# Kinds whose good values are all of one Python type: a column of them is
# checked with one pass over the types before any value is looked at.
_PLAIN = {"text": str, "blob": bytes}
# Kinds checked by one regular expression over all the values of a column at
# once, one value a line (a value holding a line break adds a line, so the
# count of lines is checked too).
_LINES = {
    kind: re.compile(f"(?:{pattern.pattern.strip('^$')}\n)*", re.ASCII)
    for kind, pattern in (("ulid", ULID_RE), ("sha256", SHA256_RE), ("time", TIME_RE), ("name", NAME_RE),
                          ("hlc", HLC_RE))
}
_RANGES = {"int": (INT_MIN, INT_MAX), "ordinal": (0, 999_999), "bool": (0, 1)}


def _column_ok(column: Column, values: Sequence[Any], now_ms: int | None) -> bool:
    """A fast yes for a whole column of good values (False: look value by value)."""
    values = list(values)
    nulls = values.count(None)
    if nulls:
        if column.required:
            return False
        values = [v for v in values if v is not None]
    if not values:
        return True
    kind = column.kind
    if kind == "hlc" and column.default == "":
        values = [v for v in values if v != ""]
        if not values:
            return True
    types = set(map(type, values))
    plain = _PLAIN.get(kind)
    if plain is not None:
        return types == {plain} and max(map(len, values)) <= MAX_VALUE
    lines = _LINES.get(kind)
    if lines is not None:
        if types != {str}:
            return False
        joined = "\n".join(values) + "\n"
        if joined.count("\n") != len(values) or lines.fullmatch(joined) is None:
            return False
        # HLCs have a fixed width: the greatest is the one furthest ahead.
        return kind != "hlc" or hlc_ok(max(values), now_ms=now_ms)
    bounds = _RANGES.get(kind)
    if bounds is not None:
        return types == {int} and bounds[0] <= min(values) and max(values) <= bounds[1]
    return False


def _describe(value: Any) -> str:
    if type(value) is bytes:
        return f"{len(value)} bytes"
    if type(value) is str and len(value) > 40:
        return f"text of {len(value)} characters"
    if type(value) is float and not math.isfinite(value):
        return str(value)
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_column(table: SyncedTable, name: str, column: Column, values: Sequence[Any], *,
                  now_ms: int | None) -> None:
    if _column_ok(column, values, now_ms):
        return
    test, good = _TESTS[column.kind]
    if column.kind == "hlc" and now_ms is not None:
        def test(v: Any) -> bool:
            return hlc_ok(v, now_ms=now_ms)
    plain = _PLAIN.get(column.kind)
    blank_ok = column.kind == "hlc" and column.default == ""
    for i, v in enumerate(values):
        if v is None:
            if column.required:
                raise Bad(f"{table.name}.{name} is missing (it may not be null)", i)
            continue
        if plain is not None and type(v) is plain and len(v) <= MAX_VALUE:
            continue
        if blank_ok and v == "":
            continue
        if not test(v):
            raise Bad(f"{table.name}.{name} must be {good}, not {_describe(v)}", i)


def check_rows(schema: Schema, table: SyncedTable, rows: list[tuple[Any, ...]], *,
               pause: Callable[[], None] = no_pause) -> None:
    """Check every value of ``rows`` (tuples in ``schema.columns`` order); raise :class:`Bad`.

    ``pause`` is called before each column (see :class:`Turns`).
    """
    cols = schema.columns[table.name]
    if not rows:
        return
    for j, name in enumerate(cols):
        pause()
        values = [r[j] for r in rows]
        _check_column(table, name, table.columns[name], values, now_ms=schema.now_ms)
    if table.name == "attachments":
        _check_attachments(cols, rows)


def _check_attachments(cols: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """An attachment's bytes hash to its id and its size is theirs."""
    i_id, i_content, i_size = cols.index("id"), cols.index("content"), cols.index("size")
    for n, row in enumerate(rows):
        content = row[i_content]
        if content is None:
            if row[i_size] < 0:
                raise Bad(f"attachment {row[i_id]} has a negative size", n)
            continue
        if hashlib.sha256(content).hexdigest() != row[i_id]:
            raise Bad(f"the bytes of attachment {row[i_id]} do not hash to its id", n)
        if row[i_size] != len(content):
            raise Bad(f"attachment {row[i_id]} says it has {row[i_size]} bytes, it has {len(content)}", n)


def check_del(name: Any, key: Any, stamp: Any, *, now_ms: int | None = None) -> tuple[str, str, str]:
    """One tombstone, checked; raise :class:`Bad`."""
    if type(name) is not str or name not in TOMBSTONE_KINDS:
        raise Bad(f"unknown table {name!r} in a deletion")
    if not check_key_value(TOMBSTONE_KINDS[name], key):
        raise Bad(f"invalid key {_describe(key)} for {name}")
    if not hlc_ok(stamp, now_ms=now_ms):
        raise Bad(f"invalid hlc {_describe(stamp)}")
    return name, key, stamp


def defaults(table: SyncedTable, cols: Sequence[str]) -> tuple[Any, ...]:
    """What a row that does not name a column holds there."""
    return tuple(table.columns[c].default for c in cols)

