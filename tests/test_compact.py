"""Snapshots, compaction and purge: a new machine in few requests, deletes that leave the bucket."""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from pathlib import Path
from typing import Any

import pytest
from helpers import assert_one_line_error
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from synctools import CountingRemote, Crash, CrashingRemote, dump, log, new_store, raw_get, raw_put

import sync
from localfirst.errors import BadInput, CorruptObject, RemoteError
from localfirst.store import Store
from sync import receive
from sync import send as push_module
from sync.compaction import LEASE_KEY, parse_duration
from sync.remotes import open_remote

# Every test here runs against a plain and an encrypted remote.
pytestmark = pytest.mark.usefixtures("both_remotes")

SECRET = "the launch code is 0000-SWORDFISH"


def machines(root: Path, *names: str) -> list[Store]:
    out = []
    for name in names:
        store = new_store(root.parent / f"{name}.db")
        sync.add_remote(store, "origin", root.as_uri())
        out.append(store)
    return out


def every_object(root: Path) -> dict[str, bytes]:
    """Every object of a folder remote, and its bytes inflated when it is gzip."""
    out = {}
    for path in root.rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            data = raw_get(root, path.relative_to(root).as_posix(), strict=False)
            if data[:2] == b"\x1f\x8b":
                data = zlib.decompressobj(wbits=31).decompress(data)
            out[str(path.relative_to(root))] = data
    return out


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "remote"
    path.mkdir()
    return path


def test_after_rm_and_compact_purge_no_object_holds_the_text(root: Path, run: Any) -> None:
    a, b = machines(root, "a", "b")
    gone = log(a, SECRET)
    log(a, "something else")
    sync.sync(a)
    sync.sync(b)
    assert any(SECRET.encode() in data for data in every_object(root).values())
    b.delete([gone])
    sync.sync(b)
    b.close()
    result = run("--db", str(b.path), "compact", "--purge", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["deleted"] and report["snapshot"]
    leaks = [key for key, data in every_object(root).items() if SECRET.encode() in data]
    assert leaks == []
    # Every machine still converges, and a new one bootstraps from the snapshot.
    sync.sync(a)
    c, = machines(root, "c")
    sync.sync(c)
    assert dump(a) == dump(c)
    assert SECRET not in {r.prompt for r in c.list_responses(count=0)}


def test_a_new_machine_bootstraps_in_requests_that_do_not_grow_with_history(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, = machines(root, "a")
    monkeypatch.setattr(push_module, "MAX_KEYS", 1)
    counts = []
    for rounds in (30, 60):
        for i in range(rounds):
            log(a, f"round {rounds} exchange {i}")
        sync.sync(a)
        sync.compact(a, margin=0)
        log(a, "after the cut")  # a short tail after the snapshot
        sync.sync(a)
        fresh, = machines(root, f"fresh{rounds}")
        counting = CountingRemote(open_remote(sync.get_remote(fresh)))
        got = sync.pull(fresh, client=counting)
        assert dump(fresh)["responses"] == dump(a)["responses"]
        assert got.changesets == 3  # the tail: a conversation, a response, a part
        counts.append(counting.total)
    assert counts[0] == counts[1], counts  # history doubled (and more), requests the same


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from(["log", "rm", "rename", "sync"])),
                      min_size=3, max_size=14),
       cut=st.integers(0, 14))
def test_snapshot_plus_tail_equals_replay_equals_a_machine_that_synced_all_along(
        tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, str]], cut: int) -> None:
    base = tmp_path_factory.mktemp("prop")
    root = base / "remote"
    root.mkdir()
    stores = dict(zip("abc", machines(root, "a", "b", "c"), strict=True))
    watcher, = machines(root, "watcher")
    for i, (who, what) in enumerate(steps):
        s = stores[who]
        if i == cut:
            sync.sync(s)
            sync.compact(s, margin=0)
        if what == "log":
            log(s, f"{who} {i}")
        elif what == "rm":
            rows = s.list_responses(count=0)
            if rows:
                s.delete([rows[i % len(rows)].id])
        elif what == "rename":
            found = s.conversations()
            if found:
                s.rename_conversation(found[i % len(found)].id, f"name {i}")
        else:
            sync.sync(s)
        sync.sync(watcher)
    for s in stores.values():
        sync.sync(s)
    sync.sync(watcher)
    replay, = machines(root, "replay")  # snapshot + tail
    sync.sync(replay)
    assert dump(replay) == dump(watcher)
    for key, data in every_object(root).items():
        if key.startswith("snapshots/") and key.endswith(".jsonl.gz"):
            ops = [json.loads(line) for line in data.decode().splitlines()[1:]]
            dead = {op["key"] for op in ops if op["op"] == "del"}
            kept = {op["row"].get("id") for op in ops if op["op"] != "del"}
            kept |= {op["row"].get("response_id") for op in ops if op["op"] != "del"}
            assert not dead & kept  # a row its own tombstones cover is in no snapshot


def test_a_machine_offline_across_a_purge_converges_and_keeps_its_own_rows(root: Path) -> None:
    a, b, offline = machines(root, "a", "b", "offline")
    doomed = log(a, SECRET)
    sync.sync(a)
    sync.sync(offline)  # it holds the row locally
    for i in range(5):
        log(a, f"later {i}")
    sync.sync(a)
    sync.sync(b)
    b.delete([doomed])
    sync.sync(b)
    sync.compact(b, purge=True)
    mine = log(offline, "written offline, never pushed")
    assert offline.get_response(doomed).prompt == SECRET  # still here until it hears of the delete
    got = sync.sync(offline)
    assert got.pulled.snapshot is not None  # its next changesets were gone: it started from the snapshot
    for s in (a, b):
        sync.sync(s)
    assert dump(a) == dump(b) == dump(offline)
    assert mine in {r.id for r in a.list_responses(count=0)}
    assert doomed not in {r.id for r in offline.list_responses(count=0)}
    assert not any(SECRET.encode() in data for data in every_object(root).values())


def test_compaction_keeps_changesets_within_the_margin(root: Path) -> None:
    a, b = machines(root, "a", "b")
    log(a, "x")
    sync.sync(a)
    result = sync.compact(a)  # default margin: 7 days
    assert result.deleted == []
    assert (root / "log" / a.host_id / f"{1:012d}.jsonl.gz").exists()
    sync.sync(b)
    assert dump(a) == dump(b)


@pytest.fixture(params=["folder", "s3-http"])
def shared(request: pytest.FixtureRequest, root: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A function that makes machines on one remote: a folder, or moto's S3 server over HTTP."""
    if request.param == "folder":
        yield lambda *names: machines(root, *names)
        return
    import boto3
    from moto.server import ThreadedMotoServer
    from synctools import free_port

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint)
    if "race" not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
        client.create_bucket(Bucket="race")

    def make(*names: str) -> list[Store]:
        out = []
        for name in names:
            store = new_store(root.parent / f"{name}.db")
            # moto keeps its buckets for the whole process: a prefix of this test's own
            sync.add_remote(store, "origin", f"s3://race/{root.parent.name}", endpoint_url=endpoint)
            out.append(store)
        return out

    yield make
    server.stop()


def test_two_compactions_at_once_never_both_delete_and_pushes_meanwhile_lose_nothing(shared: Any) -> None:
    a, b, writer = shared("a", "b", "writer")
    for i in range(4):
        log(a, f"x{i}")
        sync.sync(a)
    sync.sync(b)
    results: dict[str, Any] = {}
    barrier = threading.Barrier(3)

    def compact(name: str, store: Store) -> None:
        barrier.wait()
        try:
            results[name] = sync.compact(store, purge=True)
        except RemoteError as exc:
            results[name] = exc

    written: list[str] = []

    def push() -> None:
        barrier.wait()
        for i in range(6):
            written.append(log(writer, f"pushed during the compaction {i}"))
            sync.sync(writer)

    # Each thread has its own database file, as two machines would.
    threads = [threading.Thread(target=compact, args=(n, s)) for n, s in (("a", a), ("b", b))]
    threads.append(threading.Thread(target=push))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    deleters = [n for n, r in results.items() if isinstance(r, sync.Compacted) and r.deleted]
    assert len(deleters) <= 1, results
    assert any(isinstance(r, sync.Compacted) for r in results.values()), results
    c, = shared("c")
    sync.sync(c)
    sync.sync(a)
    assert {r.id for r in c.list_responses(count=0)} >= set(written)
    assert dump(c)["responses"] == dump(a)["responses"]


def test_a_live_lease_stops_a_second_compaction_and_an_expired_one_is_taken_over(root: Path, run: Any) -> None:
    a, = machines(root, "a")
    log(a, "x")
    sync.sync(a)
    raw_put(root, LEASE_KEY, json.dumps({"type": "localfirst-lease", "holder": "someone", "generation": 4,
                                         "expires": 4_000_000_000}).encode())
    with pytest.raises(RemoteError, match="another compaction is running"):
        sync.compact(a, purge=True)
    raw_put(root, LEASE_KEY, json.dumps({"type": "localfirst-lease", "holder": "someone", "generation": 4,
                                         "expires": 1}).encode())
    assert sync.compact(a, purge=True).deleted
    assert json.loads(raw_get(root, LEASE_KEY))["generation"] == 5
    (root / LEASE_KEY).write_text("<html>garbage</html>")
    a.close()
    before = sorted(every_object(root))
    assert_one_line_error(run("--db", str(a.path), "compact", "--purge"), LEASE_KEY)
    assert sorted(every_object(root)) == before  # nothing deleted


# This compaction makes 22 requests: LIST heads, the lease, the replay (
# heads, changesets, the LIST of snapshots it makes when far behind is not
# needed here), the snapshot's part and manifest, the LISTs of snapshots and
# gc/, the gc record, a HEAD of the lease before each delete, the deletes,
# and the release.
@pytest.mark.parametrize("at", range(1, 23))
def test_a_crash_at_any_step_of_compact_loses_nothing(root: Path, at: int) -> None:
    a, b = machines(root, "a", "b")
    for i in range(3):
        log(a, f"x{i}")
        sync.sync(a)
    b.delete([a.list_responses(count=0)[0].id])
    sync.sync(b)
    crashing = CrashingRemote(open_remote(sync.get_remote(a)), at=at, after=at % 2 == 0)
    with pytest.raises(Crash):
        sync.compact(a, purge=True, client=crashing)
    assert crashing.crashed
    (root / LEASE_KEY).unlink(missing_ok=True)  # a crashed holder's lease runs out; here at once
    sync.compact(a, purge=True)
    c, = machines(root, "c")
    for s in (c, a, b):
        sync.sync(s)
    assert dump(c) == dump(a) == dump(b)


def test_bad_margins_are_one_line_errors(run: Any, root: Path) -> None:
    for bad in ("soon", "7", "-1d", "1y", ""):
        with pytest.raises(BadInput):
            parse_duration(bad)
    assert parse_duration("0") == 0 and parse_duration("7d") == 7 * 86400 and parse_duration("90m") == 5400
    run("remote", "add", "origin", root.as_uri())
    assert_one_line_error(run("compact", "--margin", "soon"), "--margin")


def _plant_manifest(root: Path, store: str, doc: Any) -> None:
    from localfirst import ids

    sid = ids.new_id()
    raw_put(root, f"snapshots/{sid}.json", (json.dumps(doc) if not isinstance(doc, str) else doc).encode())


@pytest.mark.parametrize("doc", [
    "not json", {"type": "localfirst-snapshot"}, {"type": "other"},
    {"type": "localfirst-snapshot", "format": 1, "id": "x", "store": "y", "created_utc": "t", "schema": 1,
     "covers": {"../../x": {"seq": 1, "sha256": "0" * 64}}, "parts": []},
    "a cut beyond the heads",
])
def test_a_damaged_or_hostile_manifest_is_refused_and_applies_nothing(root: Path, doc: Any,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    a, fresh = machines(root, "a", "fresh")
    for i in range(3):
        log(a, f"x{i}")
    sync.sync(a)
    store_id = json.loads((root / "format.json").read_text())["store"]
    if doc == "a cut beyond the heads":
        from localfirst import ids

        sid = ids.new_id()
        doc = {"type": "localfirst-snapshot", "format": 1, "id": sid, "store": store_id,
               "created_utc": "2026-11-30T00:00:00.000000Z", "schema": 9, "parts": [],
               "covers": {a.host_id: {"seq": 999, "sha256": "0" * 64}}}
        raw_put(root, f"snapshots/{sid}.json", json.dumps(doc).encode())
    else:
        _plant_manifest(root, store_id, doc)
    monkeypatch.setattr(receive, "BOOTSTRAP_AFTER", 0)
    with pytest.raises(CorruptObject):
        sync.pull(fresh)
    # Reported, and it blocked nothing: the log is still there, and was replayed.
    assert dump(fresh)["responses"] == dump(a)["responses"]


def test_a_snapshot_part_that_does_not_match_its_manifest_is_refused(root: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    a, fresh = machines(root, "a", "fresh")
    log(a, SECRET)
    sync.sync(a)
    sync.compact(a, purge=True)
    part = next((root / "snapshots").rglob("part-*.jsonl.gz"))
    key = part.relative_to(root).as_posix()
    text = gzip.decompress(raw_get(root, key)).replace(SECRET.encode(), b"the launch code is 1234-SWORDFISH")
    raw_put(root, key, gzip.compress(text))
    with pytest.raises(CorruptObject, match="does not match its manifest"):
        sync.pull(fresh)
    assert fresh.list_responses(count=0) == []  # the log it would replay instead was purged


def test_idle_sync_after_a_compaction_is_still_one_request(root: Path) -> None:
    a, b = machines(root, "a", "b")
    for i in range(3):
        log(a, f"x{i}")
        sync.sync(a)
    sync.sync(b)
    sync.compact(b, purge=True)
    sync.sync(a)
    sync.sync(b)
    for s in (a, b):
        counting = CountingRemote(open_remote(sync.get_remote(s)))
        assert sync.sync(s, client=counting).requests == 1 and counting.total == 1


@pytest.mark.parametrize("at", range(1, 9))
def test_a_crash_at_any_step_of_a_bootstrap_loses_nothing(root: Path, at: int,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    a, = machines(root, "a")
    for i in range(3):
        log(a, f"x{i}")
        sync.sync(a)
    sync.compact(a, purge=True)
    log(a, "tail")
    sync.sync(a)
    fresh, = machines(root, "fresh")
    mine = log(fresh, "the new machine's own, not pushed yet")
    monkeypatch.setattr(receive, "BOOTSTRAP_AFTER", 0)
    # LIST heads, format.json, the head, LIST snapshots, the manifest, the part, the tail's changeset.
    crashing = CrashingRemote(open_remote(sync.get_remote(fresh)), at=at, after=at % 2 == 1)
    with pytest.raises(Crash):
        sync.sync(fresh, client=crashing)
    assert crashing.crashed
    sync.sync(fresh)
    sync.sync(a)
    assert dump(fresh) == dump(a)
    assert mine in {r.id for r in a.list_responses(count=0)}


def test_remote_status_shows_the_newest_snapshot_and_what_lies_after_it(root: Path, run: Any) -> None:
    a, = machines(root, "a")
    log(a, "x")
    sync.sync(a)
    assert sync.status(a).snapshot is None
    made = sync.compact(a, margin=0)
    for i in range(2):
        log(a, f"after {i}")
        sync.sync(a)
    found = sync.status(a).snapshot
    assert found is not None and found["id"] == made.snapshot and found["covers"] == {a.host_id: 1}
    assert found["changesets_after"] == 2 and found["bytes_after"] > 100 and found["age_seconds"] < 60
    a.close()
    out = run("--db", str(a.path), "remote", "status").out
    assert f"Newest snapshot {made.snapshot}" in out and "2 changesets" in out


def test_sync_compacts_on_its_own_past_the_threshold(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCALFIRST_AUTO_COMPACT", "5")
    a, b = machines(root, "a", "b")
    results = []
    for i in range(8):
        log(a, f"x{i}")
        results.append(sync.sync(a))
    made = [r.compacted for r in results if r.compacted]
    assert len(made) == 1 and made[0].covers == {a.host_id: 6}  # once past 5 changesets, then not again
    assert "Wrote snapshot" in next(r for r in results if r.compacted).summary()
    got = sync.sync(b)  # b is 8 behind, under the bootstrap threshold: it replays
    assert got.compacted is None  # what b knows: a snapshot exists and little lies after it
    counting = CountingRemote(open_remote(sync.get_remote(a)))
    assert sync.sync(a, client=counting).requests == 1
    monkeypatch.setenv("LOCALFIRST_AUTO_COMPACT", "off")
    for i in range(8):
        log(a, f"y{i}")
        assert sync.sync(a).compacted is None
    monkeypatch.setenv("LOCALFIRST_AUTO_COMPACT", "lots")
    log(a, "z")
    with pytest.raises(BadInput, match="LOCALFIRST_AUTO_COMPACT"):
        sync.sync(a)


def test_compact_on_a_remote_it_cannot_write_is_one_line_and_deletes_nothing(root: Path) -> None:
    """The kernel refuses the writes: a 0555 remote, and no capability that lets root ignore modes."""
    import os
    import shutil
    import subprocess
    import sys

    a, = machines(root, "a")
    for i in range(3):
        log(a, f"x{i}")
        sync.sync(a)
    a.close()
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot start a process that file modes stop")
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]
    folders = [p for p in [root, *root.rglob("*")] if p.is_dir()]
    before = every_object(root)
    for p in folders:
        p.chmod(0o555)
    try:
        probe = subprocess.run([*prefix, "touch", str(root / "probe")], capture_output=True, timeout=30)
        if probe.returncode == 0:
            pytest.skip("this machine lets the process write a 0555 folder anyway: the test would prove nothing")
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
        done = subprocess.run([*prefix, sys.executable, "-m", "localfirst", "--db", str(a.path), "compact",
                               "--purge"], capture_output=True, text=True, env=env, timeout=120)
    finally:
        for p in folders:
            p.chmod(0o755)
    assert_one_line_error(done, "cannot write")
    assert every_object(root) == before
