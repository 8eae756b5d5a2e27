"""Attacks on the typer-free ``logs list``, the plain-Datasette plugin, m070_parts and the overlapped bootstrap.

Each test is a way a user or a hostile file could break one of them, run
against the real parts: a subprocess of the command, Datasette's own class
on a real SQLite file, a folder remote.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from localfirst.records import Attachment, Part, Response
from localfirst.store import Store

# -- the transcript page and Datasette's permissions ----------------------------------------------


def _transcript_db(path: Path) -> str:
    store = Store.open(path)
    rid = store.log(Response(model="m", prompt="a secret plan", response="noted", parts=[
        Part(type="attachment", role="user", attachment=Attachment(b"\x89PNG secret", "image/png"))]))
    cid = store.get_response(rid).conversation_id
    store.close()
    assert cid is not None
    return cid


@pytest.mark.parametrize("tables", [
    # responses open to all: Datasette's one-list check stopped there and showed the denied tables' rows.
    {"responses": {"allow": True}},
    {"responses": {"allow": True}, "conversations": {"allow": True}, "parts": {"allow": True}},
    # the database open, one table shut: the attachments' bytes were shown inline all the same.
    {"attachments": {"allow": False}},
    {"parts": {"allow": False}},
])
def test_the_transcript_needs_every_table_it_shows(tmp_path: Path, tables: dict[str, Any]) -> None:
    pytest.importorskip("datasette")
    from datasette.app import Datasette

    db = tmp_path / "logs.db"
    cid = _transcript_db(db)
    shut = {"allow": {"id": "admin"}} if any(v["allow"] is True for v in tables.values()) else {}
    metadata = {"databases": {"logs": {**shut, "tables": tables}}}

    async def go() -> tuple[int, list[int]]:
        ds = Datasette([str(db)], metadata=metadata)
        page = (await ds.client.get(f"/logs/-/conversation/{cid}")).status_code
        own = [(await ds.client.get(f"/logs/{t}")).status_code
               for t in ("responses", "conversations", "parts", "attachments")]
        return page, own

    page, own = asyncio.run(go())
    assert 403 in own  # one of the tables is shut to this visitor ...
    assert page == 403  # ... so the page that shows its rows is too


def test_the_transcript_is_shown_when_every_table_is_open(tmp_path: Path) -> None:
    pytest.importorskip("datasette")
    from datasette.app import Datasette

    db = tmp_path / "logs.db"
    cid = _transcript_db(db)
    names = ("responses", "conversations", "parts", "attachments")
    metadata = {"databases": {"logs": {"allow": {"id": "admin"},
                                       "tables": {t: {"allow": True} for t in names}}}}

    async def go() -> int:
        return (await Datasette([str(db)], metadata=metadata).client.get(f"/logs/-/conversation/{cid}")).status_code

    assert asyncio.run(go()) == 200
