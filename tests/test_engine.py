"""Push and pull: request budgets, no echo, forks, crashes and tampering."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import pytest
from synctools import CountingRemote, Crash, CrashingRemote, dump, log, new_store, raw_get, raw_put

import sync
from localfirst.errors import CorruptObject, ForkDetected
from localfirst.store import Store
from sync import receive as pull_module
from sync import send as push_module
from sync.changeset import Header, encode, sha256
from sync.remotes import Remote, RemoteConfig, open_remote
from sync.session import head_key, log_key

# Every test here runs against a plain and an encrypted remote.
pytestmark = pytest.mark.usefixtures("both_remotes")


@pytest.fixture(params=["folder", "s3"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "folder":
        return f"file://{tmp_path}/remote"
    request.getfixturevalue("aws")
    return "s3://bucket/team"


def machine(url: str, path: Path | None = None) -> tuple[Store, CountingRemote]:
    store = new_store(path)
    sync.add_remote(store, "origin", url, region="us-east-1" if url.startswith("s3") else None)
    return store, CountingRemote(open_remote(sync.get_remote(store, "origin")))


def test_push_of_new_rows_is_list_and_two_puts(url: str) -> None:
    a, remote = machine(url)
    log(a)
    sync.push(a, client=remote)  # first contact creates format.json
    for _ in range(20):
        log(a, attachment=b"bytes")
    remote.reset()
    result = sync.push(a, client=remote)
    assert dict(remote.calls) == {"list": 1, "put": 2}
    assert result.requests == 3 and result.rows == 20 * 4 + 1  # one shared attachment
    assert [k for _, k in remote.keys] == ["heads/", log_key(a.host_id, 2), head_key(a.host_id)]


def test_pull_of_k_changesets_from_h_hosts_costs_one_plus_h_plus_k(url: str) -> None:
    reader, remote = machine(url)
    log(reader)
    sync.sync(reader, client=remote)  # first contact: learns the remote's store id
    writers = [machine(url)[0] for _ in range(2)]
    for n, w in enumerate(writers):
        for i in range(n + 2):  # 2 and 3 changesets
            log(w, f"w{n} {i}")
            sync.push(w)
    remote.reset()
    result = sync.pull(reader, client=remote)
    assert result.changesets == 5 and result.hosts == 2
    assert remote.total == 1 + 2 + 5 == result.requests
    assert ("list", "heads/") in remote.keys
    assert not any(op == "list" and key.startswith("log") for op, key in remote.keys)


def test_sync_with_nothing_new_is_one_request(url: str) -> None:
    a, remote = machine(url)
    b = machine(url)[0]
    log(a)
    log(b)
    for s in (a, b, a):
        sync.sync(s)
    remote.reset()
    assert sync.sync(a, client=remote).requests == 1
    assert dict(remote.calls) == {"list": 1}


@pytest.mark.slow
def test_nothing_new_is_one_request_after_two_thousand_changesets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"file://{tmp_path}/remote"
    a, remote = machine(url)
    b = machine(url)[0]
    keys = push_module.MAX_KEYS
    monkeypatch.setattr(push_module, "MAX_KEYS", 1)
    from localfirst.records import Response

    b.log_many([Response(model="m", prompt=f"p{i}") for i in range(1000)])
    assert sync.push(b).changesets == 2000  # a conversation and a response per exchange
    monkeypatch.setattr(push_module, "MAX_KEYS", keys)
    assert sync.pull(a).changesets == 2000
    remote.reset()
    assert sync.sync(a, client=remote).requests == 1 and remote.total == 1


def test_applied_rows_are_not_pushed_back(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/remote"
    a, _ = machine(url)
    b, remote = machine(url)
    log(a, attachment=b"x")
    a.rename_conversation(a.conversations()[0].id, "renamed")
    a.delete([log(a, "gone")])
    sync.sync(a)
    sync.pull(b)
    assert b.conn.execute("SELECT count(*) FROM sync_changes").fetchone()[0] == 0
    remote.reset()
    assert sync.push(b, client=remote).changesets == 0 and remote.total == 0
    assert dump(a) == dump(b)


def copied_pair(tmp_path: Path) -> tuple[Store, Store]:
    """a has synced once; b is a copy of a's database file, host id and all."""
    url = f"file://{tmp_path}/remote"
    a, _ = machine(url, tmp_path / "a.db")
    log(a, "before copy")
    sync.sync(a)
    a.close()
    shutil.copy(tmp_path / "a.db", tmp_path / "b.db")
    a, b = new_store(tmp_path / "a.db"), new_store(tmp_path / "b.db")
    return a, b


def test_copied_database_stops_with_fork_error_and_recovers(tmp_path: Path) -> None:
    a, b = copied_pair(tmp_path)
    log(a, "a after copy")
    log(b, "b after copy")
    sync.sync(a)
    before = {p: p.read_bytes() for p in (tmp_path / "remote").rglob("*") if p.is_file()}
    with pytest.raises(ForkDetected, match="reset-host") as info:
        sync.sync(b)
    assert info.value.exit_code == 8
    after = {p: p.read_bytes() for p in (tmp_path / "remote").rglob("*") if p.is_file()}
    assert after == before, "a fork must overwrite nothing"
    sync.reset_host(b)
    sync.sync(b)
    sync.sync(a)
    assert dump(a) == dump(b)
    prompts = {r.prompt for r in a.list_responses(count=0)}
    assert prompts == {"before copy", "a after copy", "b after copy"}


def test_a_copy_that_only_reads_is_told_of_the_fork(tmp_path: Path) -> None:
    """Pull skips our own host's log; a twin's new changesets must not be skipped silently."""
    a, b = copied_pair(tmp_path)
    log(a, "a after copy")
    sync.sync(a)
    with pytest.raises(ForkDetected, match="reset-host"):
        sync.pull(b)
    with pytest.raises(ForkDetected):
        sync.sync(b)
    sync.reset_host(b)
    sync.sync(b)
    assert {r.prompt for r in b.list_responses(count=0)} == {"before copy", "a after copy"}


def test_fork_is_caught_by_the_create_only_write(tmp_path: Path) -> None:
    """Even when the head does not show it yet, the log write refuses to replace."""
    a, b = copied_pair(tmp_path)
    log(a, "a")
    log(b, "b")
    crashing = CrashingRemote(open_remote(sync.get_remote(a)), at=3, after=False)  # list, put log, [put head]
    with pytest.raises(Crash):
        sync.push(a, client=crashing)
    body = (tmp_path / "remote" / log_key(a.host_id, 2)).read_bytes()
    with pytest.raises(ForkDetected):
        sync.push(b)
    assert (tmp_path / "remote" / log_key(a.host_id, 2)).read_bytes() == body


def _scenario(url: str, remote_for_a: Remote | None = None) -> tuple[Store, Store]:
    """a logs, renames and deletes, then syncs with b; returns both."""
    a = machine(url)[0]
    b = machine(url)[0]
    log(b, "from b")
    sync.sync(b)
    log(a, "one", attachment=b"att")
    gone = log(a, "two")
    a.rename_conversation(a.conversations()[0].id, "renamed")
    a.delete([gone])
    return a, b


def _check_log(root: Path, host: str) -> None:
    seqs = sorted(int(p.name.split(".")[0]) for p in (root / "log" / host).iterdir())
    assert seqs == list(range(1, len(seqs) + 1)), "no gap and no duplicate"


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
@pytest.mark.parametrize("at", range(1, 7))
def test_a_crash_at_any_push_step_loses_nothing(tmp_path: Path, at: int, after: bool, both_remotes: str) -> None:
    if at == 6 and both_remotes == "encrypted":
        pytest.skip("an encrypted remote's store id is known since `remote add`: its push makes one request fewer")
    url = f"file://{tmp_path}/remote"
    a, b = _scenario(url)
    crashing = CrashingRemote(open_remote(sync.get_remote(a)), at=at, after=after)
    with pytest.raises(Crash):
        sync.sync(a, client=crashing)
    assert crashing.crashed
    sync.sync(a)
    sync.sync(b)
    sync.sync(a)
    assert dump(a) == dump(b)
    assert a.conn.execute("SELECT count(*) FROM sync_changes").fetchone()[0] == 0
    _check_log(tmp_path / "remote", a.host_id)


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
@pytest.mark.parametrize("at", range(1, 5))  # LIST heads, GET head, GET changeset 1, GET changeset 2
def test_a_crash_at_any_pull_step_loses_nothing(tmp_path: Path, at: int, after: bool) -> None:
    url = f"file://{tmp_path}/remote"
    a, b = _scenario(url)
    sync.sync(a)
    log(a, "three")
    sync.sync(a)
    crashing = CrashingRemote(open_remote(sync.get_remote(b)), at=at, after=after)
    with pytest.raises(Crash):
        sync.pull(b, client=crashing)
    assert crashing.crashed
    sync.sync(b)
    assert dump(a) == dump(b)


def test_a_crash_between_two_applied_changesets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"file://{tmp_path}/remote"
    a, b = _scenario(url)
    sync.sync(a)
    log(a, "three")
    sync.sync(a)
    real = pull_module._apply
    calls = []

    def crash_on_second(*args: object, **kwargs: object) -> int:
        calls.append(1)
        if len(calls) == 2:
            raise Crash
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pull_module, "_apply", crash_on_second)
    with pytest.raises(Crash):
        sync.pull(b)
    monkeypatch.setattr(pull_module, "_apply", real)
    assert b.conn.execute("SELECT seq FROM sync_chain WHERE host = ?", [a.host_id]).fetchone()[0] == 1
    assert sync.pull(b).changesets == 1
    assert dump(a) == dump(b)


def test_applying_the_same_changesets_again_changes_nothing(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/remote"
    a, b = _scenario(url)
    sync.sync(a)
    sync.pull(b)
    before = dump(b)
    b.conn.execute("DELETE FROM sync_chain WHERE host = ?", [a.host_id])
    assert sync.pull(b).changesets == 1
    assert dump(b) == before


# -- tampering -------------------------------------------------------------


def _published(tmp_path: Path) -> tuple[Store, Store, Path]:
    url = f"file://{tmp_path}/remote"
    a, b = machine(url)[0], machine(url)[0]
    log(a, "first")
    sync.sync(a)
    sync.sync(b)
    log(a, "second")
    sync.sync(a)
    return a, b, tmp_path / "remote"


def _refused(b: Store, host: str) -> None:
    before = dump(b)
    chain = b.conn.execute("SELECT seq, sha256, head_etag FROM sync_chain WHERE host = ?", [host]).fetchone()
    with pytest.raises(CorruptObject):
        sync.pull(b)
    assert dump(b) == before, "nothing of a refused changeset is applied"
    assert b.conn.execute(
        "SELECT seq, sha256, head_etag FROM sync_chain WHERE host = ?", [host]).fetchone() == chain


def test_a_flipped_byte_is_refused(tmp_path: Path) -> None:
    a, b, root = _published(tmp_path)
    path = root / log_key(a.host_id, 2)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    _refused(b, a.host_id)


def test_a_replaced_changeset_breaks_the_chain(tmp_path: Path) -> None:
    a, b, root = _published(tmp_path)
    header = Header(store=b.conn.execute("SELECT store_id FROM sync_remotes").fetchone()[0],
                    host=a.host_id, seq=2, prev="0" * 64, schema=2, rows=0)
    forged = encode(header, [])
    raw_put(root, log_key(a.host_id, 2), forged)
    _rewrite_head(root, a.host_id, 2, sha256(forged))
    _refused(b, a.host_id)


def _rewrite_head(root: Path, host: str, seq: int, sha: str) -> None:
    raw_put(root, head_key(host), json.dumps({"host": host, "seq": seq, "sha256": sha}).encode())


def _forge(a: Store, b: Store, root: Path, line: dict[str, object]) -> None:
    """A consistent chain (as a writer with access could make) holding one bad line."""
    text = gzip.decompress(raw_get(root, log_key(a.host_id, 2))).decode().splitlines()
    head = json.loads(text[0])
    head["rows"] = 1
    body = gzip.compress((json.dumps(head) + "\n" + json.dumps(line) + "\n").encode(), mtime=0)
    raw_put(root, log_key(a.host_id, 2), body)
    _rewrite_head(root, a.host_id, 2, sha256(body))


RID = "01h" + "0" * 20 + "r0d"
BAD_LINES = {
    "unknown table": {"op": "put", "table": "meta", "row": {"key": "host_id", "value": "x"}},
    "sql in table name": {"op": "put", "table": "responses(id) VALUES ('x');--", "row": {"id": RID}},
    "unknown column": {"op": "put", "table": "responses", "row": {"id": RID, "nope": 1}},
    "path in key": {"op": "del", "table": "responses", "key": "../../etc", "hlc": "x"},
    "missing not-null column": {"op": "put", "table": "responses", "row": {"id": RID}},
    "wrong type": {"op": "put", "table": "responses", "row": {
        "id": RID, "conversation_id": RID, "model": "m", "datetime_utc": "2026-01-01T00:00:00.000000Z",
        "input_tokens": "lots"}},
    "hlc far in the future": {"op": "del", "table": "responses", "key": RID,
                              "hlc": "9999999999999.0000." + "01h" + "0" * 23},
}


@pytest.mark.parametrize("name", sorted(BAD_LINES))
def test_bad_lines_in_a_consistent_chain_are_refused(tmp_path: Path, name: str) -> None:
    a, b, root = _published(tmp_path)
    _forge(a, b, root, BAD_LINES[name])
    _refused(b, a.host_id)


def test_a_head_with_a_path_in_its_name_is_ignored(tmp_path: Path) -> None:
    a, b, root = _published(tmp_path)
    (root / "heads" / "..%2f..%2fx.json").write_text("{}")
    remote = CountingRemote(open_remote(RemoteConfig("origin", f"file://{root}")))
    sync.pull(b, client=remote)
    assert all(".." not in key for _, key in remote.keys)


@pytest.mark.parametrize("deleter_first", [True, False])
def test_a_delete_that_arrives_before_the_row_keeps_it_deleted(tmp_path: Path, deleter_first: bool) -> None:
    """c pulls a's row and b's deletion of it in one pull, in either host order."""
    url = f"file://{tmp_path}/remote"
    a, b, c = (machine(url)[0] for _ in range(3))
    low, high = sorted([a.host_id, b.host_id])
    a_id, b_id = (high, low) if deleter_first else (low, high)
    for store, host in ((a, a_id), (b, b_id)):
        store.conn.execute("UPDATE meta SET value = ? WHERE key = 'host_id'", [host])
    rid = log(a, "doomed")
    sync.sync(a)
    sync.sync(b)
    b.delete([rid])
    sync.sync(b)
    sync.pull(c)
    assert c.list_responses(count=0) == []
    sync.sync(a)
    assert dump(a) == dump(b) == dump(c)


def test_big_attachments_make_smaller_changesets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(push_module, "MAX_BYTES", 30_000)
    url = f"file://{tmp_path}/remote"
    a, b = machine(url)[0], machine(url)[0]
    for i in range(4):
        log(a, f"p{i}", attachment=os.urandom(20_000))
    assert sync.push(a).changesets >= 4
    sync.pull(b)
    assert dump(a) == dump(b)
    assert all(p.stat().st_size < 60_000 for p in (tmp_path / "remote" / "log").rglob("*.gz"))


def test_one_tampered_host_holds_back_neither_the_others_nor_our_push(tmp_path: Path) -> None:
    a, b, root = _published(tmp_path)
    c = machine(f"file://{root}")[0]
    log(c, "from c")
    sync.sync(c)
    path = root / log_key(a.host_id, 2)
    path.write_bytes(path.read_bytes()[:-3])
    log(b, "b's own")
    with pytest.raises(CorruptObject):
        sync.sync(b)
    assert "from c" in {r.prompt for r in b.list_responses(count=0)}
    assert b.conn.execute("SELECT count(*) FROM sync_changes").fetchone()[0] == 0, "b still pushed"
    sync.pull(c)
    assert "b's own" in {r.prompt for r in c.list_responses(count=0)}


class Recorder(CountingRemote):
    def __init__(self, inner: Remote) -> None:
        super().__init__(inner)
        self.puts: list[tuple[str, bool]] = []

    def put(self, key: str, data: bytes, *, sha256: str, create_only: bool, if_match: str | None = None) -> str:
        self.puts.append((key, create_only))
        return super().put(key, data, sha256=sha256, create_only=create_only, if_match=if_match)


def test_each_host_writes_only_its_own_keys_and_logs_only_create_only(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/remote"
    a, b = _scenario(url)
    for store in (a, b, a, b):
        recorder = Recorder(open_remote(sync.get_remote(store)))
        log(store, "more")
        sync.sync(store, client=recorder)
        for key, create_only in recorder.puts:
            assert key in ("format.json", head_key(store.host_id)) or key.startswith(f"log/{store.host_id}/")
            if key.startswith("log/") or key == "format.json":
                assert create_only


def test_a_changeset_not_yet_copied_is_retried_next_time(tmp_path: Path) -> None:
    """A folder on a synced drive: the head arrived, the changeset it names not yet."""
    from localfirst.errors import RemoteError

    a, b, root = _published(tmp_path)
    path = root / log_key(a.host_id, 2)
    body = path.read_bytes()
    path.unlink()
    before = dump(b)
    with pytest.raises(RemoteError, match="not copied there yet"):
        sync.sync(b)
    assert dump(b) == before
    path.write_bytes(body)
    assert sync.pull(b).changesets == 1
    assert dump(a) == dump(b)


def test_a_remote_removed_and_added_again_says_how_to_go_on(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/remote"
    a, _ = machine(url)
    log(a)
    sync.sync(a)
    sync.remove_remote(a, "origin")
    sync.add_remote(a, "origin", url)
    with pytest.raises(ForkDetected, match="removed and added again"):
        sync.sync(a)
    sync.reset_host(a)
    assert sync.sync(a).pushed.changesets == 1
    b = machine(url)[0]
    sync.sync(b)
    assert dump(a) == dump(b)


def test_two_pushes_of_one_store_at_once_send_each_changeset_once(tmp_path: Path) -> None:
    """A scheduled sync and a manual one on the same database file, interleaved."""
    url = f"file://{tmp_path}/remote"
    first, _ = machine(url, tmp_path / "same.db")
    second = new_store(tmp_path / "same.db")
    log(first)
    sync.sync(first)
    log(first, "one")

    class Interleaved(CountingRemote):
        def put(self, key: str, data: bytes, *, sha256: str, create_only: bool, if_match: str | None = None) -> str:
            etag = super().put(key, data, sha256=sha256, create_only=create_only, if_match=if_match)
            if key.startswith("log/") and not getattr(self, "done", False):
                self.done = True
                log(second, "two")
                sync.sync(second)  # resumes the same pending changeset, then sends "two"
            return etag

    sync.sync(first, client=Interleaved(open_remote(sync.get_remote(first))))
    sync.sync(second)
    reader = machine(url)[0]
    sync.sync(reader)
    assert {r.prompt for r in reader.list_responses(count=0)} == {"hello", "one", "two"}
    _check_log(tmp_path / "remote", first.host_id)
    assert first.conn.execute("SELECT count(*) FROM sync_changes").fetchone()[0] == 0


def test_an_interrupted_first_pull_keeps_what_it_applied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"file://{tmp_path}/remote"
    writer, _ = machine(url)
    reader, _ = machine(url)
    keys = push_module.MAX_KEYS
    monkeypatch.setattr(push_module, "MAX_KEYS", 1)
    for i in range(4):
        log(writer, f"p{i}")
    assert sync.push(writer).changesets == 12  # a conversation, a response and a part each
    monkeypatch.setattr(push_module, "MAX_KEYS", keys)
    # LIST heads, GET format.json (not for an encrypted remote: its store id is known since
    # `remote add`), GET head, then GET changesets 1..12: crash on the GET of changeset 6.
    at = 8 if sync.get_remote(reader).encrypted else 9
    crashing = CrashingRemote(open_remote(sync.get_remote(reader)), at=at, after=False)
    with pytest.raises(Crash):
        sync.pull(reader, client=crashing)
    applied = reader.conn.execute("SELECT seq FROM sync_chain WHERE host = ?", [writer.host_id]).fetchone()[0]
    assert applied == 4  # changeset 5 was fetched, but not yet vouched for by the next one
    counting = CountingRemote(open_remote(sync.get_remote(reader)))
    assert sync.pull(reader, client=counting).changesets == 8
    assert [k for op, k in counting.keys if op == "get" and k.startswith("log/")] == [
        log_key(writer.host_id, q) for q in range(5, 13)]
    assert dump(reader) == dump(writer)


def test_spool_folders_left_by_killed_pulls_are_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile
    import time

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    old = tmp_path / "tmp" / "localfirst-pull-abc123"
    fresh = tmp_path / "tmp" / "localfirst-pull-def456"
    for d in (old, fresh):
        d.mkdir()
        (d / "000000000001").write_bytes(b"x")
    hours_ago = time.time() - 7200
    os.utime(old, (hours_ago, hours_ago))
    url = f"file://{tmp_path}/remote"
    a, _ = machine(url)
    b, _ = machine(url)
    log(a, "x")
    sync.sync(a)
    sync.sync(b)
    assert not old.exists() and fresh.exists()  # a live pull's folder is left alone
