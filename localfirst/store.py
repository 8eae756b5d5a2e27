"""Store(db): write and read conversations, responses, parts and attachments.

The store takes an open connection and migrates it on construction. Every
write runs in one ``BEGIN IMMEDIATE`` transaction, so a failed write leaves
nothing behind and concurrent writers wait for each other instead of failing.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import sqlite3
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import hlc, ids
from .db import check_schema, connect, insert_rows, migrate, open_database, translate
from .errors import BadInput, NotFound
from .records import Attachment, Part, Response
from .timeutil import now_utc

TYPE_CHECKING = False  # typing is not imported at run time: it costs start-up (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any, Concatenate, ParamSpec, TypeVar

__all__ = ["Store", "Conversation", "Status"]

RESPONSE_COLUMNS = (
    "id", "conversation_id", "model", "resolved_model", "prompt", "system",
    "prompt_json", "options_json", "response", "response_json", "reasoning",
    "input_tokens", "output_tokens", "token_details", "duration_ms",
    "datetime_utc", "finish_reason", "simulated", "extras",
)
PART_COLUMNS = (
    "response_id", "ordinal", "role", "type", "text", "tool_call_id",
    "tool_name", "arguments_json", "error", "attachment_id", "extras",
)
# Reading takes whatever the file holds (another program, a damaged copy or
# an old bug may have put any value in any column), so every column but these
# numbers is selected as text: a BLOB's bytes become text, and Python never
# meets bytes where the records hold a str.
_NUMBER_COLUMNS = frozenset({"ordinal", "input_tokens", "output_tokens", "duration_ms", "simulated", "size"})


def _as_text(column: str) -> str:
    return column if column.rpartition(".")[2] in _NUMBER_COLUMNS else f"CAST({column} AS TEXT)"


_RESPONSE_FIELDS = (", ".join(_as_text(f"r.{c}") for c in RESPONSE_COLUMNS)
                    + ", CAST(c.name AS TEXT), CAST(c.model AS TEXT)")
_SELECT_RESPONSE = (
    f"SELECT {_RESPONSE_FIELDS} FROM responses r LEFT JOIN conversations c ON c.id = r.conversation_id"
)
_PART_FIELDS = [*(f"p.{c}" for c in PART_COLUMNS), "a.mime_type", "a.size", "a.path", "a.url"]
_SELECT_PARTS = (
    f"SELECT {', '.join(_as_text(c) for c in _PART_FIELDS)} "
    "FROM parts p LEFT JOIN attachments a ON a.id = p.attachment_id "
    "WHERE p.response_id IN (SELECT value FROM json_each(?)) ORDER BY p.response_id, p.ordinal"
)
# Responses read per query of their parts while streaming.
STREAM_CHUNK = 256
_INSERT_RESPONSE_HEAD = f"INSERT INTO responses ({', '.join(RESPONSE_COLUMNS)}, rowid)"
_INSERT_PART = (
    f"INSERT INTO parts ({', '.join(PART_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(PART_COLUMNS))})"
)


@dataclass
class Conversation:
    id: str
    name: str | None
    model: str | None
    created_utc: str
    responses: int
    last_utc: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "model": self.model,
            "created_utc": self.created_utc, "responses": self.responses,
            "last_utc": self.last_utc,
        }


@dataclass
class Status:
    path: str
    conversations: int
    responses: int
    attachments: int
    size_bytes: int


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


# The helpers below turn a stored value into the type the records declare,
# never raising; text columns arrive as text (see _NUMBER_COLUMNS).

# Text that is not valid UTF-8 is read with U+FFFD in place of the bad bytes.
_lenient_text = functools.partial(str, encoding="utf-8", errors="replace")

# The key that holds a *_json column's stored text when it is not the JSON
# object the field needs, so that nothing stored is hidden from a reader.
RAW_KEY = "localfirst:raw"

# Deeper JSON is shown as its text. Printing JSON (json.dumps) recurses once
# per level, so a value that parsed just under Python's recursion limit could
# still fail to print; no real payload comes near this depth.
MAX_JSON_DEPTH = 100


def _int(value: Any) -> int | None:
    """A whole number an INTEGER column can hold again, or None (text, a blob, an infinity, 1e30)."""
    if value is None or type(value) is int:
        return value
    number: int | None = None
    if isinstance(value, float) and math.isfinite(value):
        number = int(value)
    elif isinstance(value, str):
        try:
            number = int(value)
        except ValueError:
            return None
    return number if number is not None and -(2**63) <= number < 2**63 else None


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is not a finite number")
    return value


def _not_json(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


def _too_deep(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


# One decoder for every read: json.loads with arguments builds a new one per call.
# NaN and infinities count as not JSON, so that JSON output stays valid.
_DECODER = json.JSONDecoder(parse_float=_finite, parse_constant=_not_json)


def _loads(text: str | None) -> Any:
    """A *_json column's value; its text when that is not JSON that can be shown again."""
    if text is None:
        return None
    try:
        value = _DECODER.decode(text)
    except (ValueError, RecursionError):
        return text
    # Counting brackets is cheap and bounds the depth from above.
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and _too_deep(value, MAX_JSON_DEPTH):
        return text
    return value


def _object(text: str | None) -> dict[str, Any] | None:
    """A *_json column that holds an object; anything else is kept as ``{RAW_KEY: text}``."""
    if text is None:
        return None
    value = _loads(text)
    if value is None or isinstance(value, dict):
        return value
    return {RAW_KEY: text}


# An id may be shortened to a unique prefix of at least this many characters.
MIN_PREFIX = 8
_PREFIX_RE = re.compile(r"^[0-9a-hjkmnp-tv-z]+$")
_KINDS = {"responses": "response", "conversations": "conversation"}


def check_id(value: str, what: str = "id") -> str:
    """Lower-case a ULID given by a user, or refuse it."""
    if not ids.is_id(value):
        raise BadInput(f"{value!r} is not a valid {what} (a 26-character ULID)")
    return value.lower()


def conversation_name(prompt: str | None) -> str | None:
    """A conversation is named after the start of its first prompt."""
    if not prompt:
        return None
    line = " ".join(prompt.split())
    return line if len(line) <= 40 else line[:39] + "…"


if TYPE_CHECKING:
    _P = ParamSpec("_P")
    _R = TypeVar("_R")


def _reads(method: Callable[Concatenate[Store, _P], _R]) -> Callable[Concatenate[Store, _P], _R]:
    """Translate an SQLite failure while reading (a damaged file) into our error.

    Text that is not valid UTF-8 makes Python's sqlite3 fail the fetch, with
    an error that carries no SQLite code. The read is then made once more
    with the bad bytes replaced by U+FFFD: only then, because decoding every
    text value that way costs ~13% of a bulk read, and only while reading,
    so that other users of the connection (sync) see stored values as they are.
    """
    @functools.wraps(method)
    def wrapper(self: Store, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        conn = self.conn
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            if getattr(exc, "sqlite_errorcode", None) is not None or conn.text_factory is _lenient_text:
                raise translate(exc, self.path) from exc
        factory = conn.text_factory
        conn.text_factory = _lenient_text
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc
        finally:
            conn.text_factory = factory

    return wrapper


class Store:
    """Conversations and responses in one SQLite database."""

    def __init__(self, conn: sqlite3.Connection, *, path: str = ":memory:") -> None:
        self.conn = conn
        self.path = path
        if check_schema(conn, path):
            migrate(conn, path)

    @classmethod
    def open(cls, path: str | Path, *, create: bool = True, for_reading: bool = False) -> Store:
        """The store in the file at ``path``; ``create``: a missing file is a new, empty store.

        ``for_reading``: the caller only reads, so nothing is created (a
        missing file reads as an empty store, in memory) and a file this
        process cannot write is read without writing. Such a file is still
        upgraded to this version's schema when it can be written; when it
        cannot, opening fails with an error that says so.
        """
        target = str(path)
        if for_reading and create and target != ":memory:" and not Path(target).exists():
            return cls(connect(":memory:"), path=target)
        conn = open_database(path, create=create, for_reading=for_reading)
        try:
            return cls(conn, path=str(path))
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; everything in it lands, or nothing does."""
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise translate(exc, self.path) from exc
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @property
    def host_id(self) -> str:
        return hlc.host_id(self.conn)

    # -- writing -----------------------------------------------------------

    def log(self, response: Response) -> str:
        """Record one exchange and return its response id."""
        return self.log_many([response])[0]

    def log_many(self, responses: Iterable[Response]) -> list[str]:
        """Record many exchanges in one transaction; returns their ids.

        Rows are gathered first and written with one ``executemany`` per
        table: the per-row cost is then mostly SQLite's own.
        """
        conversations: list[tuple[Any, ...]] = []
        rows: list[tuple[Any, ...]] = []
        parts: list[tuple[Any, ...]] = []
        attachments: dict[str, Attachment] = {}
        given: list[str] = []
        # What the caller's objects learn, once the transaction has committed:
        # a batch that rolls back leaves them as they were, ready for a retry.
        settled: list[tuple[Response, dict[str, Any]]] = []
        with self.write() as conn:
            known: set[str] = set()
            for r in responses:
                cid = r.conversation_id
                now = now_utc()
                if cid is None:
                    cid = ids.new_id()
                    conversations.append(
                        (cid, r.conversation_name or conversation_name(r.prompt), r.model, now))
                elif cid not in known:
                    cid = check_id(cid, "conversation id")
                    if conn.execute("SELECT 1 FROM conversations WHERE id = ?", [cid]).fetchone() is None:
                        raise NotFound(f"no conversation with id {cid}")
                known.add(cid)
                if r.id:
                    rid = check_id(r.id, "response id")
                    given.append(rid)
                else:
                    rid = ids.new_id()
                learnt: dict[str, Any] = {"id": rid, "conversation_id": cid,
                                          "datetime_utc": r.datetime_utc or now,
                                          "response": r.response, "reasoning": r.reasoning}
                if r.parts:
                    if r.response is None:
                        text = [p.text or "" for p in r.parts if p.role == "assistant" and p.type == "text"]
                        learnt["response"] = "".join(text) if text else None
                    if r.reasoning is None:
                        thought = [p.text or "" for p in r.parts if p.type == "reasoning"]
                        learnt["reasoning"] = "".join(thought) if thought else None
                    for ordinal, p in enumerate(r.parts):
                        if p.attachment is not None:
                            attachments.setdefault(p.attachment.id, p.attachment)
                        parts.append((
                            rid, ordinal, p.role, p.type, p.text, p.tool_call_id, p.tool_name,
                            _dumps(p.arguments), p.error, p.attachment.id if p.attachment else None,
                            _dumps(p.extras),
                        ))
                rows.append((
                    rid, cid, r.model, r.resolved_model, r.prompt, r.system,
                    _dumps(r.prompt_json), _dumps(r.options), learnt["response"],
                    _dumps(r.response_json), learnt["reasoning"], r.input_tokens,
                    r.output_tokens, _dumps(r.token_details), r.duration_ms,
                    learnt["datetime_utc"], r.finish_reason, int(r.simulated), _dumps(r.extras),
                ))
                settled.append((r, learnt))
            conn.executemany(
                "INSERT OR IGNORE INTO attachments (id, mime_type, size, content, path, url) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(a.id, a.mime_type, a.size, a.content, a.path, a.url) for a in attachments.values()],
            )
            conn.executemany(
                "INSERT INTO conversations (id, name, model, created_utc) VALUES (?, ?, ?, ?)", conversations)
            for rid in given:
                if conn.execute("SELECT 1 FROM responses WHERE id = ?", [rid]).fetchone():
                    raise BadInput(f"a response with id {rid} already exists")
                if conn.execute("SELECT 1 FROM tombstones WHERE tbl = 'responses' AND key = ?", [rid]).fetchone():
                    raise BadInput(f"response {rid} was deleted; a deleted id is never used again")
            try:
                insert_rows(conn, _INSERT_RESPONSE_HEAD, rows, width=len(RESPONSE_COLUMNS), numbered="responses")
            except sqlite3.IntegrityError as exc:
                raise BadInput("the same response id appears twice in one batch") from exc
            conn.executemany(_INSERT_PART, parts)
        for r, learnt in settled:
            for name, value in learnt.items():
                setattr(r, name, value)
        return [learnt["id"] for _, learnt in settled]

    def rename_conversation(self, cid: str, name: str) -> None:
        cid = check_id(cid, "conversation id")
        with self.write() as conn:
            stamp = hlc.tick(conn)
            cur = conn.execute(
                "UPDATE conversations SET name = ?, name_hlc = ? WHERE id = ?", [name, stamp, cid]
            )
            if cur.rowcount == 0:
                raise NotFound(f"no conversation with id {cid}")

    # -- reading -----------------------------------------------------------

    @_reads
    def resolve_id(self, value: str, table: str) -> str:
        """The full id in ``table`` (responses or conversations) that ``value`` is, or starts.

        A whole ULID is returned as it is (existence is the caller's check); a
        prefix of at least MIN_PREFIX characters must match exactly one row.
        An id of the other kind is named as such in the error.
        """
        kind = _KINDS[table]
        text = value.strip().lower()
        if ids.is_id(text):
            return text
        if len(text) < MIN_PREFIX or len(text) > 26 or not _PREFIX_RE.match(text):
            raise BadInput(f"{value!r} is not a valid {kind} id (a 26-character ULID, "
                           f"or its first {MIN_PREFIX} or more characters)")
        found = self._by_prefix(table, text)
        if len(found) > 1:
            raise BadInput(f"{value!r} starts more than one {kind} id; give more characters")
        if not found:
            raise self.missing(text, table)
        return found[0]

    def _by_prefix(self, table: str, prefix: str) -> list[str]:
        # Ids are lower-case base32; "~" sorts after every one of their characters.
        return [r[0] for r in self.conn.execute(
            f"SELECT CAST(id AS TEXT) FROM {table} WHERE id >= ? AND id < ? ORDER BY id LIMIT 2",
            [prefix, prefix + "~"])]

    def missing(self, value: str, table: str) -> NotFound:
        """The error for an id that ``table`` lacks; it says so when the id is of the other kind."""
        kind = _KINDS[table]
        other = "conversations" if table == "responses" else "responses"
        text = value.strip().lower()
        hit = self._by_prefix(other, text) if _PREFIX_RE.match(text) and len(text) >= MIN_PREFIX else []
        if len(hit) == 1:
            if other == "conversations":
                return NotFound(f"{value} is a conversation id, not a response id "
                                f"(`localfirst logs list --cid {hit[0]}` lists its responses)")
            row = self.conn.execute("SELECT CAST(conversation_id AS TEXT) FROM responses WHERE id = ?",
                                    [hit[0]]).fetchone()
            return NotFound(f"{value} is a response id, not a conversation id "
                            f"(its conversation is {row[0] if row else 'unknown'})")
        return NotFound(f"no {kind} with id {value}")

    @_reads
    def last_conversation_id(self) -> str | None:
        """The conversation with the most recent response, by time."""
        row = self.conn.execute(
            "SELECT CAST(conversation_id AS TEXT) FROM responses ORDER BY datetime_utc DESC, id DESC LIMIT 1"
        ).fetchone()
        return row[0] if row else None

    @_reads
    def pick_conversation(self, *, continue_latest: bool = False, cid: str | None = None) -> str | None:
        """The conversation ``-c`` or ``--cid`` names, checked; None for a new one."""
        if cid is not None:
            if continue_latest:
                raise BadInput("use either -c/--continue or --cid, not both")
            cid = self.resolve_id(cid, "conversations")
            if not self.conversation_exists(cid):
                raise self.missing(cid, "conversations")
            return cid
        if continue_latest:
            latest = self.last_conversation_id()
            if latest is None:
                raise NotFound("there is no conversation to continue yet")
            return latest
        return None

    @_reads
    def conversation_model(self, cid: str) -> str | None:
        row = self.conn.execute(
            "SELECT CAST(model AS TEXT) FROM responses WHERE conversation_id = ? ORDER BY datetime_utc DESC LIMIT 1",
            [cid],
        ).fetchone()
        return row[0] if row else None

    @_reads
    def conversation_exists(self, cid: str) -> bool:
        cid = check_id(cid, "conversation id")
        return self.conn.execute("SELECT 1 FROM conversations WHERE id = ?", [cid]).fetchone() is not None

    @_reads
    def history(self, cid: str) -> list[Response]:
        """Every response of a conversation, oldest first, with its parts."""
        cid = check_id(cid, "conversation id")
        if not self.conversation_exists(cid):
            raise NotFound(f"no conversation with id {cid}")
        rows = self.conn.execute(
            _SELECT_RESPONSE + " WHERE r.conversation_id = ? ORDER BY r.datetime_utc, r.id", [cid]
        ).fetchall()
        return self._build(rows)

    @_reads
    def get_response(self, rid: str) -> Response:
        rid = self.resolve_id(rid, "responses")
        rows = self.conn.execute(_SELECT_RESPONSE + " WHERE r.id = ?", [rid]).fetchall()
        if not rows:
            raise self.missing(rid, "responses")
        return self._build(rows)[0]

    def list_responses(
        self,
        *,
        count: int = 3,
        query: str | None = None,
        model: str | None = None,
        conversation_id: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> list[Response]:
        """Responses matching every filter given.

        Without ``query``: the latest ``count`` (0 for all), oldest first.
        With ``query``: full-text matches, the best ``count`` first.
        """
        return list(self.stream_responses(count=count, query=query, model=model, conversation_id=conversation_id,
                                          since=since, until=until))

    def stream_responses(
        self,
        *,
        count: int = 3,
        query: str | None = None,
        model: str | None = None,
        conversation_id: str | None = None,
        since: str | None = None,
        until: str | None = None,
        by_conversation: bool = False,
    ) -> Generator[Response, None, None]:
        """The responses :meth:`list_responses` returns, read a chunk at a time.

        The filters are checked before this returns (an unknown conversation
        is an error here, not half-way through the output); the rows are then
        read in one read transaction, so memory stays flat whatever their
        number. ``by_conversation``: every conversation's responses together,
        each oldest first, conversations in the order of their first response
        (the order a transcript reads in); ``count`` and ``query`` are ignored.
        Close the iterator (or read it to the end) to end the read transaction.
        """
        where: list[str] = []
        params: list[Any] = []
        if model:
            where.append("(r.model = ? OR r.resolved_model = ?)")
            params += [model, model]
        if conversation_id:
            cid = self.resolve_id(conversation_id, "conversations")
            if not self.conversation_exists(cid):
                raise self.missing(cid, "conversations")
            where.append("r.conversation_id = ?")
            params.append(cid)
        if since:
            where.append("r.datetime_utc >= ?")
            params.append(since)
        if until:
            where.append("r.datetime_utc <= ?")
            params.append(until)
        filters = " AND ".join(where) or "true"
        limit = f" LIMIT {int(count)}" if count > 0 else ""
        if by_conversation:
            # SQLite's min() makes the bare column r.id come from the row
            # holding the minimum: each conversation's first response.
            sql = (
                "WITH firsts AS (SELECT r.conversation_id AS cid, min(r.datetime_utc) AS fdt, r.id AS fid "
                f"FROM responses r WHERE {filters} GROUP BY r.conversation_id) "
                f"SELECT {_RESPONSE_FIELDS} FROM firsts f JOIN responses r ON r.conversation_id = f.cid "
                f"LEFT JOIN conversations c ON c.id = r.conversation_id WHERE {filters} "
                "ORDER BY f.fdt, f.fid, f.cid, r.datetime_utc, r.id"
            )
            return self._stream(sql, params * 2)
        if query:
            fts = fts_query(query)
            if fts is None:
                return _none()
            # Without other filters FTS5 can stop after the best `count`
            # matches; with filters every match has to be ranked.
            hits = "SELECT rowid, rank FROM responses_fts WHERE responses_fts MATCH ?"
            if not where:
                hits += " ORDER BY rank" + limit
            sql = (
                f"WITH hits AS ({hits}) " + _SELECT_RESPONSE + " JOIN hits ON hits.rowid = r.rowid"
                + f" WHERE {filters} ORDER BY hits.rank, r.datetime_utc DESC, r.id DESC" + limit
            )
            return self._stream(sql, [fts, *params])
        if limit:
            # The latest `count`, picked by the index on time, then read oldest first.
            sql = (_SELECT_RESPONSE + " WHERE r.rowid IN (SELECT r.rowid FROM responses r "
                   f"WHERE {filters} ORDER BY r.datetime_utc DESC, r.id DESC{limit}) "
                   "ORDER BY r.datetime_utc, r.id")
        else:
            sql = _SELECT_RESPONSE + f" WHERE {filters} ORDER BY r.datetime_utc, r.id"
        return self._stream(sql, params)

    def _stream(self, sql: str, params: list[Any]) -> Generator[Response, None, None]:
        """Responses from ``sql`` (a ``_SELECT_RESPONSE``), :data:`STREAM_CHUNK` rows at a time.

        As :func:`_reads` does for one read, text that is not valid UTF-8
        makes the read start again with the bad bytes replaced, skipping the
        responses already given; the read transaction keeps the rows the same.
        """
        conn = self.conn
        own = not conn.in_transaction
        factory = conn.text_factory
        done = 0
        try:
            if own:
                conn.execute("BEGIN")
            while True:
                try:
                    cur = conn.execute(sql, params)
                    skip = done
                    while rows := cur.fetchmany(STREAM_CHUNK):
                        if skip:
                            dropped = min(skip, len(rows))
                            rows, skip = rows[dropped:], skip - dropped
                            if not rows:
                                continue
                        for response in self._build(rows):
                            yield response
                            done += 1
                    return
                except sqlite3.Error as exc:
                    if getattr(exc, "sqlite_errorcode", None) is not None or conn.text_factory is _lenient_text:
                        raise translate(exc, self.path) from exc
                    conn.text_factory = _lenient_text
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc
        finally:
            conn.text_factory = factory
            if own and conn.in_transaction:
                conn.execute("COMMIT")

    def _build(self, rows: list[tuple[Any, ...]]) -> list[Response]:
        """Responses from rows of ``_SELECT_RESPONSE``, each value read as its field's type."""
        out = []
        for row in rows:
            d = dict(zip(RESPONSE_COLUMNS, row[:-2], strict=True))
            out.append(Response(
                id=d["id"], conversation_id=d["conversation_id"], conversation_name=row[-2],
                conversation_model=row[-1],
                model=d["model"] or "", resolved_model=d["resolved_model"], prompt=d["prompt"],
                system=d["system"], prompt_json=_loads(d["prompt_json"]),
                options=_object(d["options_json"]), response=d["response"],
                response_json=_loads(d["response_json"]), reasoning=d["reasoning"],
                input_tokens=_int(d["input_tokens"]), output_tokens=_int(d["output_tokens"]),
                token_details=_object(d["token_details"]), duration_ms=_int(d["duration_ms"]),
                datetime_utc=d["datetime_utc"], finish_reason=d["finish_reason"],
                simulated=bool(_int(d["simulated"])), extras=_object(d["extras"]),
            ))
        if out:
            self._attach_parts(out)
        return out

    def _attach_parts(self, responses: list[Response]) -> None:
        # One JSON array, not one variable per response: any number of
        # responses fits under SQLite's limit on variables.
        by_id = {r.id: r for r in responses}
        rows = self.conn.execute(_SELECT_PARTS, [json.dumps(list(by_id))]).fetchall()
        for row in rows:
            d = dict(zip(PART_COLUMNS, row[:len(PART_COLUMNS)], strict=True))
            owner = by_id.get(d["response_id"])
            if owner is None:
                continue
            att = None
            if d["attachment_id"] is not None:
                mime, size, path, url = row[len(PART_COLUMNS):]
                att = Attachment(None, mime, path, url, id=d["attachment_id"], size=_int(size) or 0)
            owner.parts.append(Part(
                type=d["type"] or "", role=d["role"] or "", text=d["text"], tool_call_id=d["tool_call_id"],
                tool_name=d["tool_name"], arguments=_loads(d["arguments_json"]), error=d["error"],
                attachment=att, extras=_object(d["extras"]),
            ))

    @_reads
    def text_rows(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read query, text that is not valid UTF-8 read with U+FFFD (see ``_reads``)."""
        return self.conn.execute(sql, list(params)).fetchall()

    @_reads
    def attachment_content(self, attachment_id: str) -> bytes | None:
        # As a BLOB whatever was stored: text comes back as its bytes, unchanged.
        row = self.conn.execute("SELECT CAST(content AS BLOB) FROM attachments WHERE id = ?",
                                [attachment_id]).fetchone()
        if row is None:
            raise NotFound(f"no attachment with id {attachment_id}")
        return None if row[0] is None else bytes(row[0])

    @_reads
    def conversations(self, *, count: int = 0) -> list[Conversation]:
        """Conversations that hold responses, most recently active first."""
        limit = f" LIMIT {int(count)}" if count > 0 else ""
        rows = self.conn.execute(
            "SELECT CAST(c.id AS TEXT), CAST(c.name AS TEXT), CAST(c.model AS TEXT), CAST(c.created_utc AS TEXT), "
            "count(r.id), CAST(max(r.datetime_utc) AS TEXT) AS last "
            "FROM conversations c LEFT JOIN responses r ON r.conversation_id = c.id "
            "GROUP BY c.id HAVING count(r.id) > 0 ORDER BY last DESC" + limit
        ).fetchall()
        return [Conversation(cid or "", name, model, created or "", count, last)
                for cid, name, model, created, count, last in rows]

    @_reads
    def status(self) -> Status:
        counts = [
            self.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("conversations", "responses", "attachments")
        ]
        size = 0
        if self.path != ":memory:":
            for suffix in ("", "-wal"):
                try:
                    size += os.path.getsize(self.path + suffix)
                except OSError:
                    pass
        return Status(self.path, counts[0], counts[1], counts[2], size)

    # -- deleting ----------------------------------------------------------

    @_reads
    def select_for_delete(
        self,
        *,
        response_ids: Iterable[str] = (),
        conversation_id: str | None = None,
        before: str | None = None,
    ) -> list[str]:
        """Ids of the responses a delete would remove; unknown ids are an error."""
        chosen: list[str] = []
        for rid in response_ids:
            rid = check_id(rid, "response id")
            if self.conn.execute("SELECT 1 FROM responses WHERE id = ?", [rid]).fetchone() is None:
                raise self.missing(rid, "responses")
            chosen.append(rid)
        if conversation_id is not None:
            cid = check_id(conversation_id, "conversation id")
            if not self.conversation_exists(cid):
                raise NotFound(f"no conversation with id {cid}")
            chosen += [r[0] for r in self.conn.execute(
                "SELECT id FROM responses WHERE conversation_id = ?", [cid])]
        if before is not None:
            chosen += [r[0] for r in self.conn.execute(
                "SELECT id FROM responses WHERE datetime_utc < ?", [before])]
        return list(dict.fromkeys(chosen))

    def delete(self, response_ids: Iterable[str] = (), *, conversation_id: str | None = None,
               before: str | None = None) -> int:
        """Delete responses, a whole conversation when one is named, and those before a time.

        The selection is made again inside the write transaction, so what is
        deleted is what the criteria name at that moment. Every deleted key
        gets a tombstone, so merge and sync never bring it back, and the
        registry's cascades apply (``localfirst.registry.bury``): a named
        conversation's tombstone also removes responses another machine adds
        to it before it hears of the delete, and one logged here meanwhile.
        A conversation merely left empty stays (hidden from ``conversations``):
        another machine may still be adding to it. Attachments no longer used
        are removed locally. Returns how many responses went.
        """
        from .registry import bury  # the write path only: the read path starts without it

        rids = [check_id(r, "response id") for r in response_ids]
        cid = check_id(conversation_id, "conversation id") if conversation_id is not None else None
        with self.write() as conn:
            if before is not None:
                rids += [r[0] for r in conn.execute("SELECT id FROM responses WHERE datetime_utc < ?", [before])]
            stamp = hlc.tick(conn)
            rids = list(dict.fromkeys(rids))
            # A conversation is named after its first prompt: a name that
            # quotes a deleted prompt goes too, or the text would live on in it.
            named = conn.execute(
                "SELECT c.id, c.name, r.prompt FROM conversations c JOIN responses r ON r.conversation_id = c.id "
                "WHERE r.id IN (SELECT value FROM json_each(?)) AND c.name IS NOT NULL", [json.dumps(rids)]
            ).fetchall()
            quoting = {c for c, name, prompt in named if name == conversation_name(prompt)}
            conn.executemany("UPDATE conversations SET name = NULL, name_hlc = ? WHERE id = ?",
                             [(stamp, c) for c in sorted(quoting)])
            dead = [("responses", rid, stamp) for rid in rids]
            if cid is not None:
                dead.append(("conversations", cid, stamp))
            gone = bury(conn, dead)
        return gone.get("responses", 0)


def _none() -> Generator[Response, None, None]:
    yield from ()


def fts_query(text: str) -> str | None:
    """Quote each word so that user input is never parsed as FTS5 syntax."""
    words = text.split()
    if not words:
        return None
    return " ".join('"' + w.replace('"', '""') + '"' for w in words)
