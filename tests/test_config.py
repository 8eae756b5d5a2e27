"""Remotes kept in the database, beside their state."""

from __future__ import annotations

from pathlib import Path

import pytest
from synctools import log, new_store

import sync
from localfirst.errors import BadInput, NotFound


def test_removing_a_remote_forgets_its_state(tmp_path: Path) -> None:
    store = new_store()
    sync.add_remote(store, "origin", f"file://{tmp_path}/r")
    log(store)
    sync.push(store)
    log(store)
    sync.remove_remote(store, "origin")
    for table in ("sync_outbox", "sync_chain", "sync_pending", "sync_remotes"):
        assert store.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0
    assert (tmp_path / "r" / "format.json").exists(), "the remote itself is untouched"


def test_the_only_remote_is_the_default(tmp_path: Path) -> None:
    store = new_store()
    with pytest.raises(NotFound, match="remote add"):
        sync.get_remote(store)
    sync.add_remote(store, "origin", f"file://{tmp_path}/r")
    assert sync.get_remote(store).name == "origin"
    sync.add_remote(store, "other", f"file://{tmp_path}/o")
    with pytest.raises(BadInput, match="origin, other"):
        sync.get_remote(store)


def test_progress_is_reported_as_changesets_move(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sync import send

    monkeypatch.setattr(send, "MAX_KEYS", 2)
    a, b = new_store(), new_store()
    for s in (a, b):
        sync.add_remote(s, "origin", f"file://{tmp_path}/r")
    for i in range(3):
        log(a, f"p{i}")
    seen: list[tuple[int, int]] = []
    sync.push(a, progress=lambda done, total: seen.append((done, total)))
    assert len(seen) > 1 and seen[-1][0] == seen[-1][1]
    seen.clear()
    sync.pull(b, progress=lambda done, total: seen.append((done, total)))
    assert [d for d, _ in seen] == list(range(1, len(seen) + 1)) and seen[-1][0] == seen[-1][1]
