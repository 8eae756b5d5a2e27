"""verify: a healthy remote is whole (exit 0); each kind of damage is found by name (exit 1)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from synctools import log, new_store, raw_get, raw_put

import sync
from localfirst.store import Store
from sync.session import head_key, log_key

# Every test here runs against a plain and an encrypted remote.
pytestmark = pytest.mark.usefixtures("both_remotes")


def _remote(tmp_path: Path) -> tuple[Path, Store, Store]:
    root = tmp_path / "remote"
    root.mkdir()
    a, b = new_store(tmp_path / "a.db"), new_store(tmp_path / "b.db")
    for s in (a, b):
        sync.add_remote(s, "origin", root.as_uri())
    for i in range(3):
        log(a, f"first {i}")
        sync.sync(a)
    sync.compact(a, margin=0)
    for i in range(3):
        log(a, f"after {i}")
        sync.sync(a)
    sync.sync(b)
    return root, a, b


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _part(root: Path) -> Path:
    return next((root / "snapshots").rglob("part-*.jsonl.gz"))


DAMAGE: dict[str, tuple[Callable[[Path, Store], str], str]] = {
    "a flipped byte in a changeset": (
        lambda root, a: (_flip(root / log_key(a.host_id, 5)), log_key(a.host_id, 5))[1], "damaged"),
    "a changeset missing from the middle": (
        lambda root, a: ((root / log_key(a.host_id, 5)).unlink(), log_key(a.host_id, 5))[1], "missing"),
    "a truncated snapshot part": (
        lambda root, a: (_part(root).write_bytes(_part(root).read_bytes()[:40]),
                         str(_part(root).relative_to(root)))[1], "manifest"),
    "a manifest naming a part that is gone": (
        lambda root, a: (lambda p: (p.unlink(), str(p.relative_to(root)))[1])(_part(root)), "gone"),
    "a head ahead of its log": (
        lambda root, a: _head_ahead(root, a), "head"),
}


def _head_ahead(root: Path, a: Store) -> str:
    doc = json.loads(raw_get(root, head_key(a.host_id)))
    doc["seq"] += 1
    raw_put(root, head_key(a.host_id), json.dumps(doc).encode())
    return log_key(a.host_id, doc["seq"])


def test_a_healthy_remote_is_whole(tmp_path: Path, run: Any) -> None:
    _, a, b = _remote(tmp_path)
    b.close()
    result = run("--db", str(b.path), "verify", "--read-data-subset", "100", "--local")
    assert result.code == 0, result.out + result.err
    assert "whole" in result.out
    found = sync.verify(a)
    assert found.problems == [] and found.objects > 0


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_each_kind_of_damage_is_reported_by_object_name(tmp_path: Path, case: str, run: Any) -> None:
    root, a, b = _remote(tmp_path)
    damage, word = DAMAGE[case]
    key = damage(root, a)
    before = sorted(p.name for p in root.rglob("*"))
    b.close()
    result = run("--db", str(b.path), "verify", "--read-data-subset", "100", "--json")
    assert result.code == 1, result.out + result.err
    problems = json.loads(result.out)["problems"]
    if sync.get_remote(a).encrypted and word in ("damaged", "manifest"):
        word = "crypt"  # altered sealed bytes do not decrypt (or no longer look sealed)
    assert any(p["object"] == key and word in p["what"] for p in problems), problems
    assert sorted(p.name for p in root.rglob("*")) == before  # nothing repaired, nothing written


def test_verify_usage_and_unreachable_remote_have_their_own_codes(tmp_path: Path, run: Any) -> None:
    run("remote", "add", "usb", (tmp_path / "stick").as_uri())
    assert run("verify", "--read-data-subset", "150").code == 2
    (tmp_path / "stick").rmdir()
    result = run("verify")
    assert result.code == 7 and result.err.startswith("Error: ")


def test_local_verify_finds_a_missing_capture_trigger(tmp_path: Path) -> None:
    _, a, _ = _remote(tmp_path)
    a.conn.execute("DROP TRIGGER sync_capture_responses_insert")
    found = sync.verify(a, local=True)
    assert [p.object for p in found.problems] == ["sync_capture_responses_insert"]
