"""What the llm readers hand to the importer: rows in localfirst's shape.

Rows are plain tuples in the column order of ``store.RESPONSE_COLUMNS`` and
``store.PART_COLUMNS`` so that the importer can write them with
``executemany`` instead of one ``Store.log`` per response.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import ids
from ..records import url_attachment_id
from ..timeutil import normalise

__all__ = ["Turn", "Thread", "Problem", "Attachments", "json_text", "utc", "dumps"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class Problem(Exception):
    """One row that cannot be imported; the rest of the import goes on."""


@dataclass
class Thread:
    id: str
    name: str | None
    model: str | None
    created_utc: str


@dataclass
class Turn:
    """One response: its column values and its ordered parts (without ordinals)."""

    values: dict[str, Any]
    # (role, type, text, tool_call_id, tool_name, arguments_json, error, attachment_id, extras)
    parts: list[tuple[Any, ...]] = field(default_factory=list)


def dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def json_text(value: Any, what: str, *, empty_is_null: bool = False, valid: int | None = None) -> str | None:
    """Check a JSON column from llm and keep its text; Problem when invalid.

    ``valid`` is SQLite's ``json_valid()`` of the column when the query
    asked for it, which is much faster than parsing in Python.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Problem(f"{what} is not JSON text")
    if valid is None:
        try:
            json.loads(value)
        except ValueError:
            valid = 0
    if valid == 0:
        raise Problem(f"{what} is not valid JSON")
    if empty_is_null and value.strip() in ("{}", "[]", "null"):
        return None
    return value


def utc(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise Problem(f"{what} is missing")
    if len(value) == 32 and value[10] == "T" and value.endswith("+00:00") and value[19] == ".":
        # llm's usual form, 2026-11-20T22:38:14.128427+00:00: skip the parser.
        return value[:26] + "Z"
    try:
        return normalise(value)
    except ValueError:
        raise Problem(f"{what} {value!r} is not a time") from None


def ulid(value: Any, what: str) -> str:
    if not isinstance(value, str) or not ids.is_id(value):
        raise Problem(f"{what} {value!r} is not a ULID")
    return value.lower()


class Attachments:
    """llm's attachments, keyed our way and collected once per import.

    With bytes: the sha256 of the bytes (llm's id too). Known only by path:
    the file is read when it is still there with the same sha256, else the
    row keeps llm's id, which is that same sha256, without content. Known only
    by URL: the same URL key as ``localfirst log`` uses, so both meet.
    """

    def __init__(self) -> None:
        self.rows: dict[str, tuple[Any, ...]] = {}
        self._by_llm_id: dict[str, str] = {}

    def add(self, llm_id: str, mime: str | None, path: str | None, url: str | None,
            content: bytes | None) -> str:
        known = self._by_llm_id.get(llm_id)
        if known is not None:
            return known
        size = 0
        if content:
            key = hashlib.sha256(content).hexdigest()
        elif path:
            content = _read_if_same(path, llm_id)
            if content is not None:
                key = llm_id.lower()
            elif _SHA256.match(llm_id.lower()):
                key = llm_id.lower()
            else:
                key = hashlib.sha256(("path:" + path).encode()).hexdigest()
        elif url:
            key = url_attachment_id(url)
        else:
            raise Problem(f"attachment {llm_id} has no content, path or url")
        if content is not None:
            size = len(content)
        self.rows[key] = (key, mime, size, content or None, path, url)
        self._by_llm_id[llm_id] = key
        return key


def _read_if_same(path: str, llm_id: str) -> bytes | None:
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError:
        return None
    return data if hashlib.sha256(data).hexdigest() == llm_id.lower() else None
