"""Team libraries under attack: a hostile bucket writer, a malicious or removed writer, a careless user, a reader.

Each test is one attack. An attack the code refuses is a plain test; an
attack that gets through is marked ``xfail(strict=True)`` with the defect
named in its reason, so the suite stays green and the test turns red (XPASS)
once the defect is fixed.
"""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from synctools import CountingRemote, log, new_store
from test_team import TID, VID, Team, _forge, _template_ops, objects, tree

import sync
from localfirst.errors import CorruptObject, LocalFirstError, NotFound, ReadOnly
from localfirst.store import Store
from localfirst.templates import add_template, get_template, label_template, remove_template
from sync.changeset import sha256
from sync.folder import FolderRemote
from sync.team import WRITERS_KEY, Writers, new_keys


@pytest.fixture
def team(tmp_path: Path) -> Team:
    return Team(tmp_path)


def team_id(store: Store, name: str = "acme") -> str:
    row = store.conn.execute("SELECT store_id FROM sync_remotes WHERE name = ?", [name]).fetchone()
    assert row and row[0]
    return str(row[0])


def keys_of(store: Store, name: str = "acme") -> Any:
    return sync.membership.load_team_keys(sync.get_remote(store, name))


def chain_of(store: Store, host: str, name: str = "acme") -> tuple[int, str]:
    row = store.conn.execute("SELECT seq, sha256 FROM sync_chain WHERE remote = ? AND host = ?",
                             [name, host]).fetchone()
    return (int(row[0]), str(row[1])) if row else (0, "")


def fresh_reader(team: Team, tmp_path: Path, name: str) -> Store:
    store = new_store(tmp_path / f"{name}.db")
    sync.join_team(store, "acme", team.url, trust=team.fingerprint, read_only=True)
    return store


def copy_object(root: Path, src_host: str, src_seq: int, dst_host: str, dst_seq: int) -> None:
    """Copy a changeset to another host or seq and write a head naming it, as a bucket writer could."""
    body = (root / "log" / src_host / f"{src_seq:012d}.jsonl.gz").read_bytes()
    target = root / "log" / dst_host / f"{dst_seq:012d}.jsonl.gz"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(body)
    (root / "heads" / f"{dst_host}.json").write_text(
        json.dumps({"host": dst_host, "seq": dst_seq, "sha256": sha256(body)}))


FAKE = "01h00000000000000000000fak"


def soon(minutes: int = 1) -> str:
    """An HLC a little ahead of now: it wins every LWW against what is here, and passes the skew check."""
    return f"{int(time.time() * 1000) + minutes * 60_000}.0000.01h00000000000000000000009"



# -- a hostile bucket writer: replays and moves ---------------------------------------------


def test_a_writers_changeset_replayed_under_another_host_is_refused(team: Team, tmp_path: Path) -> None:
    add_template(team.writer, "acme/w", prompt="genuine")
    sync.sync(team.writer, "acme")
    copy_object(team.root, team.writer.host_id, 1, FAKE, 1)
    reader = fresh_reader(team, tmp_path, "r1")
    with pytest.raises(CorruptObject, match="does not belong there"):
        sync.sync(reader, "acme")
    # The genuine one still arrived; nothing was recorded for the fake host.
    assert get_template(reader, "acme/w").prompt == "genuine"
    assert chain_of(reader, FAKE) == (0, "")


def test_a_writers_changeset_replayed_at_another_seq_is_refused(team: Team, tmp_path: Path) -> None:
    add_template(team.writer, "acme/w", prompt="genuine")
    sync.sync(team.writer, "acme")
    sync.sync(team.reader, "acme")
    host = team.writer.host_id
    copy_object(team.root, host, 1, host, 2)
    with pytest.raises(CorruptObject):
        sync.sync(team.reader, "acme")
    assert chain_of(team.reader, host)[0] == 1


def test_a_signed_changeset_moved_to_another_team_is_refused(team: Team, tmp_path: Path) -> None:
    # The same owner runs two teams; the writer key differs per team, the store id too.
    other_root = tmp_path / "beta"
    made = sync.create_team(team.owner, "beta", other_root.as_uri())
    add_template(team.owner, "acme/secret", prompt="acme only")
    sync.sync(team.owner, "acme")
    body = (team.root / "log" / team.owner.host_id / f"{1:012d}.jsonl.gz").read_bytes()
    target = other_root / "log" / FAKE / f"{1:012d}.jsonl.gz"
    target.parent.mkdir(parents=True)
    target.write_bytes(body)
    (other_root / "heads" / f"{FAKE}.json").write_text(json.dumps({"host": FAKE, "seq": 1, "sha256": sha256(body)}))
    member = new_store(tmp_path / "beta-member.db")
    sync.join_team(member, "beta", other_root.as_uri(), trust=made.fingerprint, read_only=True)
    with pytest.raises(CorruptObject):
        sync.sync(member, "beta")
    assert member.conn.execute("SELECT count(*) FROM templates").fetchone()[0] == 0


def test_a_writer_list_of_another_team_is_refused(team: Team, tmp_path: Path) -> None:
    other_root = tmp_path / "beta"
    sync.create_team(team.owner, "beta", other_root.as_uri())
    sync.team_writers(team.owner, "beta", add=sync.team_whoami(team.writer, "acme"))
    before = team.reader.conn.execute("SELECT writers FROM sync_teams WHERE remote = 'acme'").fetchone()[0]
    shutil.copy(other_root / WRITERS_KEY, team.root / WRITERS_KEY)
    with pytest.raises(LocalFirstError, match="another team|not the .* this machine trusts"):
        sync.sync(team.reader, "acme")
    after = team.reader.conn.execute("SELECT writers FROM sync_teams WHERE remote = 'acme'").fetchone()[0]
    assert after == before


# -- a malicious team writer against a member's personal templates --------------------------


def _personal(store: Store) -> tuple[str, str]:
    mine = add_template(store, "mine", prompt="my own words")
    return mine.template_id, mine.id


def test_team_rows_naming_a_personal_template_or_version_present_here_are_refused(team: Team) -> None:
    tid, vid = _personal(team.reader)
    wkeys = keys_of(team.writer)
    acme = team_id(team.reader)
    host = team.writer.host_id
    attacks = [
        # the personal template's id, now claimed by the team
        _template_ops("mine", "team words", team_id=acme, template_id=tid, version_id=VID),
        # a team version whose id is the personal version's
        [*_template_ops("t", "x", team_id=acme, template_id=TID, version_id=vid)],
        # a new version of the personal template
        [("put", "template_versions", {"id": VID, "template_id": tid, "hlc": soon(), "prompt": "hijacked",
                                       "created_utc": "2026-12-01T00:00:00.000000Z"}, None, None)],
        # a label on the personal template
        [("set", "template_labels", {"template_id": tid, "label": "production", "version_id": vid,
                                     "hlc": soon()}, None, None)],
        # a tombstone for the personal template
        [("del", "templates", None, tid, soon())],
    ]
    seq, prev = chain_of(team.writer, host)
    for n, ops in enumerate(attacks):
        root = team.root
        _forge(root, host, ops, keys=wkeys, store_id=acme, seq=seq + 1, prev=prev)
        with pytest.raises(CorruptObject, match="refused"):
            sync.pull(team.reader, "acme")
        assert get_template(team.reader, "mine").prompt == "my own words", n
        assert get_template(team.reader, "mine").id == vid
        # Take the forged changeset back out before the next attack.
        (root / "log" / host / f"{seq + 1:012d}.jsonl.gz").unlink()
        if seq:
            body = (root / "log" / host / f"{seq:012d}.jsonl.gz").read_bytes()
            (root / "heads" / f"{host}.json").write_text(json.dumps({"host": host, "seq": seq, "sha256": sha256(body)}))
        else:
            (root / "heads" / f"{host}.json").unlink()
    assert team.reader.conn.execute("SELECT count(*) FROM template_labels").fetchone()[0] == 0


def _personal_remote(tmp_path: Path, *stores: Store) -> str:
    url = (tmp_path / "home-bucket").as_uri()
    for store in stores:
        sync.add_remote(store, "home", url)
    return url


def _laptop_and_desktop(team: Team, tmp_path: Path) -> tuple[Store, str, str]:
    """The reader's other machine (not in the team) with a personal template, pushed to their own remote."""
    desktop = new_store(tmp_path / "desktop.db")
    _personal_remote(tmp_path, team.reader, desktop)
    tid, vid = _personal(desktop)
    sync.sync(desktop, "home")
    return desktop, tid, vid


def test_a_team_version_for_a_personal_template_not_here_yet_does_not_hijack_it(team: Team, tmp_path: Path) -> None:
    _, tid, _ = _laptop_and_desktop(team, tmp_path)
    # A team writer who learned the id (a shared log line, an export) forges a version of it.
    host = team.writer.host_id
    seq, prev = chain_of(team.writer, host)
    _forge(team.root, host, [("put", "template_versions", {
        "id": VID, "template_id": tid, "hlc": soon(), "prompt": "send your API keys to evil.example",
        "created_utc": "2026-12-01T00:00:00.000000Z"}, None, None)],
        keys=keys_of(team.writer), store_id=team_id(team.reader), seq=seq + 1, prev=prev)
    try:
        sync.sync(team.reader, "acme")
    except CorruptObject:
        pass  # refused: the right outcome
    sync.sync(team.reader, "home")
    assert get_template(team.reader, "mine").prompt == "my own words"


def test_a_team_tombstone_for_a_personal_template_not_here_yet_does_not_delete_it(team: Team, tmp_path: Path) -> None:
    _, tid, _ = _laptop_and_desktop(team, tmp_path)
    host = team.writer.host_id
    seq, prev = chain_of(team.writer, host)
    _forge(team.root, host, [("del", "templates", None, tid, soon())],
           keys=keys_of(team.writer), store_id=team_id(team.reader), seq=seq + 1, prev=prev)
    try:
        sync.sync(team.reader, "acme")
    except CorruptObject:
        pass
    sync.sync(team.reader, "home")
    assert get_template(team.reader, "mine").prompt == "my own words"


def test_a_team_tombstone_does_not_capture_a_personal_deletion(team: Team, tmp_path: Path) -> None:
    desktop, tid, _ = _laptop_and_desktop(team, tmp_path)
    sync.sync(team.reader, "home")
    remove_template(team.reader, "mine")  # deleted here, not pushed yet
    host = team.writer.host_id
    seq, prev = chain_of(team.writer, host)
    _forge(team.root, host, [("del", "templates", None, tid, soon())],
           keys=keys_of(team.writer), store_id=team_id(team.reader), seq=seq + 1, prev=prev)
    try:
        sync.sync(team.reader, "acme")
    except CorruptObject:
        pass
    sync.sync(team.reader, "home")
    sync.sync(desktop, "home")
    with pytest.raises(NotFound):
        get_template(desktop, "mine")  # the owner of both machines deleted it


def test_a_label_pointing_at_another_templates_version_does_not_run_it(team: Team) -> None:
    a = add_template(team.owner, "acme/a", prompt="text of a")
    b = add_template(team.owner, "acme/b", prompt="text of b")
    label_template(team.owner, "acme/a", "production")
    team.sync_all(team.owner, team.writer)
    personal = add_template(team.reader, "mine", prompt="my own words")
    host = team.writer.host_id
    seq, prev = chain_of(team.writer, host)
    for n, target in enumerate([b.id, personal.id]):
        _forge(team.root, host, [("set", "template_labels", {"template_id": a.template_id, "label": "production",
                                                              "version_id": target, "hlc": soon(n + 1)}, None, None)],
               keys=keys_of(team.writer), store_id=team_id(team.reader), seq=seq + 1 + n, prev=prev)
        prev = sha256((team.root / "log" / host / f"{seq + 1 + n:012d}.jsonl.gz").read_bytes())
        sync.sync(team.reader, "acme")
        with pytest.raises(NotFound, match="does not have"):
            get_template(team.reader, "acme/a@production")
    assert get_template(team.reader, "mine").prompt == "my own words"


# -- a careless user: team templates and personal ones crossing over ------------------------


def _hostile_file(path: Path, row: dict[str, Any], version_prompt: str) -> None:
    other = new_store(path)
    with other.write() as conn:
        conn.execute("INSERT INTO templates (id, name, created_utc, team) VALUES (:id, :name, :created_utc, :team)",
                     row)
        conn.execute("INSERT INTO template_versions (id, template_id, hlc, prompt, created_utc) VALUES "
                     "(?, ?, ?, ?, ?)", [VID, row["id"], "1764547200000.0000.01h00000000000000000000009",
                                         version_prompt, row["created_utc"]])
    other.close()


def _smaller_hash_row(store: Store, tid: str, team: str) -> dict[str, Any]:
    """A templates row for ``tid`` filed under ``team`` whose canonical hash beats the row here."""
    from localfirst.registry import BY_NAME
    from sync.apply import content_hash

    cols = [r[1] for r in store.conn.execute("PRAGMA table_info(templates)")]
    names = [c for c in cols if c in BY_NAME["templates"].immutable]
    mine = dict(zip(cols, store.conn.execute("SELECT * FROM templates WHERE id = ?", [tid]).fetchone(), strict=True))
    h_mine = content_hash((n, mine[n]) for n in names)
    for micro in range(1000):
        row = {**mine, "team": team, "created_utc": f"2026-01-01T00:00:00.{micro:06d}Z"}
        if content_hash((n, row[n]) for n in names) < h_mine:
            return row
    raise AssertionError("no smaller hash found")


def test_merging_a_file_never_moves_a_personal_template_into_a_team(team: Team, tmp_path: Path) -> None:
    tid, _ = _personal(team.writer)
    hostile = tmp_path / "given-to-me.db"
    _hostile_file(hostile, _smaller_hash_row(team.writer, tid, team_id(team.writer)), "whatever")
    try:
        sync.merge_database(team.writer, hostile)
    except LocalFirstError:
        pass  # refusing the file is fine too
    sync.sync(team.writer, "acme")
    assert all(b"my own words" not in data for data in objects(team.root).values())
    assert get_template(team.writer, "mine").team is None


def test_merging_a_file_with_a_teams_templates_does_not_reach_a_personal_remote(team: Team, tmp_path: Path) -> None:
    add_template(team.owner, "acme/t", prompt="team words")
    team.sync_all(team.owner)
    team.owner.conn.execute("VACUUM INTO ?", [str(tmp_path / "copy.db")])
    victim = new_store(tmp_path / "victim.db")
    url = _personal_remote(tmp_path, victim)
    sync.merge_database(victim, tmp_path / "copy.db")
    sync.sync(victim, "home")
    assert all(b"team words" not in data for data in objects(Path(url.removeprefix("file://"))).values())


def test_export_and_import_jsonl_keep_a_teams_templates_out_of_a_personal_remote(run: Any, team: Team,
                                                                                 tmp_path: Path) -> None:
    add_template(team.writer, "acme/t", prompt="team words")
    dump = tmp_path / "backup.jsonl"
    assert run("--db", team.writer.path, "export", "-o", str(dump)).code == 0
    restored = str(tmp_path / "restored.db")
    result = run("--db", restored, "import", "jsonl", str(dump))
    assert result.code == 0, result.err
    url = (tmp_path / "home-bucket").as_uri()
    assert run("--db", restored, "remote", "add", "home", url).code == 0
    assert run("--db", restored, "sync", "home").code == 0
    assert all(b"team words" not in data for data in objects(tmp_path / "home-bucket").values())


def test_a_second_personal_remote_added_later_never_gets_a_teams_templates(team: Team, tmp_path: Path) -> None:
    add_template(team.owner, "acme/t", prompt="team words")
    label_template(team.owner, "acme/t", "production")
    team.sync_all()
    remove_template(team.owner, "acme/t")
    add_template(team.owner, "acme/u", prompt="more team words")
    team.sync_all()
    log(team.writer, "personal history")
    add_template(team.writer, "mine", prompt="my own words")
    for n, store in enumerate([team.writer, team.reader]):
        root = tmp_path / f"second-{n}"
        sync.add_remote(store, "second", root.as_uri())
        sync.sync(store, "second")
        found = objects(root)
        assert all(b"team words" not in d and b"production" not in d for d in found.values())
        for data in found.values():
            for tid in store.conn.execute("SELECT id FROM templates WHERE team IS NOT NULL"):
                assert tid[0].encode() not in data
    assert any(b"my own words" in d for d in objects(tmp_path / "second-0").values())


# -- a removed writer, and writers impersonating each other ---------------------------------


def _remove_writer(team: Team) -> None:
    sync.team_writers(team.owner, "acme", remove=sync.team_whoami(team.writer, "acme"))


def test_a_removed_writer_cannot_rewrite_what_was_accepted(team: Team, tmp_path: Path) -> None:
    add_template(team.writer, "acme/w", prompt="accepted")
    team.sync_all(team.writer, team.owner)
    _remove_writer(team)
    # With the bucket still writable to them, they replace their own changeset 1 (same seq, same host).
    tid = get_template(team.writer, "acme/w").template_id
    _forge(team.root, team.writer.host_id,
           _template_ops("w", "rewritten after removal", team_id=team_id(team.writer), template_id=tid,
                         version_id=VID),
           keys=keys_of(team.writer), store_id=team_id(team.writer), seq=1)
    late = fresh_reader(team, tmp_path, "late")
    # The writer list pins their changeset 1 by sha256: the rewrite is refused, nothing of it applied.
    # (The genuine changeset is gone from a bucket they could overwrite: members who had it keep it.)
    with pytest.raises(CorruptObject, match="rewritten after its writer was removed"):
        sync.sync(late, "acme")
    assert [v.prompt for v in sync_history(late, "acme/w")] == []
    assert [v.prompt for v in sync_history(team.owner, "acme/w")] == ["accepted"]


def sync_history(store: Store, name: str) -> list[Any]:
    from localfirst.templates import template_history

    try:
        return template_history(store, name)
    except NotFound:
        return []


def test_a_writer_cannot_write_under_another_writers_host(team: Team) -> None:
    add_template(team.owner, "acme/o", prompt="the owner's")
    team.sync_all()
    owner_host = team.owner.host_id
    seq, prev = chain_of(team.writer, owner_host)
    _forge(team.root, owner_host, _template_ops("o2", "put in the owner's mouth", team_id=team_id(team.writer),
                                                 template_id=TID, version_id=VID),
           keys=keys_of(team.writer), store_id=team_id(team.writer), seq=seq + 1, prev=prev)
    try:
        sync.sync(team.reader, "acme")
    except CorruptObject:
        pass  # refused: the right outcome
    with pytest.raises(NotFound):
        get_template(team.reader, "acme/o2")  # not accepted as the owner's words


@pytest.mark.xfail(strict=True, reason="known limitation (docs/templates.md): a writer who can write anywhere in "
                   "the bucket can take another host's next log object first; members refuse it (see above), but "
                   "that host's next push stops on a fork error until the object is removed. Per-writer bucket "
                   "prefixes prevent it")
def test_a_writer_cannot_block_another_writers_host(team: Team) -> None:
    add_template(team.owner, "acme/o", prompt="the owner's")
    team.sync_all()
    owner_host = team.owner.host_id
    seq, prev = chain_of(team.writer, owner_host)
    _forge(team.root, owner_host, _template_ops("o2", "put in the owner's mouth", team_id=team_id(team.writer),
                                                 template_id=TID, version_id=VID),
           keys=keys_of(team.writer), store_id=team_id(team.writer), seq=seq + 1, prev=prev)
    add_template(team.owner, "acme/next", prompt="the owner goes on")
    sync.sync(team.owner, "acme")  # must not be forked off its own host id by a writer


def test_removing_the_writer_who_compacted_does_not_lock_new_members_out(team: Team, tmp_path: Path) -> None:
    for n in range(5):
        add_template(team.writer, f"acme/t{n}", prompt=f"prompt {n}")
        sync.sync(team.writer, "acme")
    team.sync_all(team.owner)
    made = sync.compact(team.writer, "acme", purge=True)
    assert made.snapshot
    _remove_writer(team)
    late = fresh_reader(team, tmp_path, "late")
    sync.sync(late, "acme")
    assert get_template(late, "acme/t4").prompt == "prompt 4"


def test_an_unsigned_snapshot_manifest_is_refused(team: Team, tmp_path: Path) -> None:
    for n in range(3):
        add_template(team.owner, f"acme/t{n}", prompt=f"prompt {n}")
        sync.sync(team.owner, "acme")
    made = sync.compact(team.owner, "acme", purge=True)
    manifest = team.root / "snapshots" / f"{made.snapshot}.json"
    doc = json.loads(manifest.read_bytes())
    doc.pop("sig")
    doc.pop("writer")
    manifest.write_text(json.dumps(doc))
    late = fresh_reader(team, tmp_path, "late")
    with pytest.raises(CorruptObject, match="is not signed"):
        sync.pull(late, "acme")
    assert late.conn.execute("SELECT count(*) FROM templates").fetchone()[0] == 0


def test_a_writer_not_on_the_list_cannot_compact(team: Team, tmp_path: Path) -> None:
    for n in range(3):
        add_template(team.owner, f"acme/t{n}", prompt=f"prompt {n}")
        sync.sync(team.owner, "acme")
    newcomer = new_store(tmp_path / "newcomer.db")
    sync.join_team(newcomer, "acme", team.url, trust=team.fingerprint)  # not listed by the owner
    sync.sync(newcomer, "acme")
    before = tree(team.root)
    counting = CountingRemote(FolderRemote(team.url))
    try:
        sync.compact(newcomer, "acme", purge=True, client=counting)
    except ReadOnly:
        pass
    assert counting.calls["put"] == 0 and counting.calls["delete"] == 0, counting.calls
    assert tree(team.root) == before
    late = fresh_reader(team, tmp_path, "late")
    sync.sync(late, "acme")
    assert get_template(late, "acme/t2").prompt == "prompt 2"


# -- a read-only member: not one write request ----------------------------------------------


def _encrypted_team(tmp_path: Path) -> tuple[Store, Store, str]:
    url = (tmp_path / "sealed").as_uri()
    owner, reader = new_store(tmp_path / "eo.db"), new_store(tmp_path / "er.db")
    made = sync.create_team(owner, "acme", url, encrypt=True, passphrase="team passphrase", scrypt_n=1 << 10)
    add_template(owner, "acme/a", prompt="sealed words")
    sync.sync(owner, "acme")
    sync.join_team(reader, "acme", url, trust=made.fingerprint, passphrase="team passphrase", read_only=True)
    sync.sync(reader, "acme")
    return owner, reader, url


@pytest.mark.parametrize("what", ["passphrase", "rotate"])
def test_a_reader_of_an_encrypted_team_changes_no_keys(tmp_path: Path, what: str) -> None:
    _, reader, url = _encrypted_team(tmp_path)
    counting = CountingRemote(FolderRemote(url))
    before = tree(tmp_path / "sealed")
    try:
        if what == "passphrase":
            sync.change_passphrase(reader, "acme", passphrase="mine now", client=counting, scrypt_n=1 << 10)
        else:
            sync.rotate_key(reader, "acme", client=counting)
    except ReadOnly:
        pass
    assert counting.calls["put"] == 0 and counting.calls["delete"] == 0, counting.calls
    assert tree(tmp_path / "sealed") == before


def test_a_reader_makes_no_write_request_in_status_verify_writers_and_pull(team: Team) -> None:
    add_template(team.owner, "acme/a", prompt="x")
    sync.sync(team.owner, "acme")
    sync.compact(team.owner, "acme", purge=True)
    add_template(team.owner, "acme/b", prompt="y")
    sync.sync(team.owner, "acme")
    counting = CountingRemote(FolderRemote(team.url))
    before = tree(team.root)
    # A reader whose store was changed behind its back still pushes nothing.
    with team.reader.write() as conn:
        conn.execute("INSERT INTO templates (id, name, created_utc, team) VALUES (?, 'sneak', "
                     "'2026-01-01T00:00:00.000000Z', ?)", [TID, team_id(team.reader)])
    sync.pull(team.reader, "acme", client=counting)
    sync.sync(team.reader, "acme", client=counting)
    sync.push(team.reader, "acme", client=counting)
    sync.status(team.reader, "acme", client=counting)
    sync.verify(team.reader, "acme", client=counting, share=100, local=True)
    sync.team_writers(team.reader, "acme", client=counting)
    with pytest.raises(ReadOnly):
        sync.team_writers(team.reader, "acme", add=new_keys(TID, owner=False).writer_key, client=counting)
    with pytest.raises(ReadOnly):
        sync.compact(team.reader, "acme", client=counting)
    assert counting.calls["put"] == 0 and counting.calls["delete"] == 0, counting.calls
    assert tree(team.root) == before


def test_a_reader_syncing_several_remotes_writes_nothing_to_the_team(run: Any, tmp_path: Path) -> None:
    url = (tmp_path / "lib").as_uri()
    owner, reader = str(tmp_path / "o.db"), str(tmp_path / "r.db")
    fp = json.loads(run("--db", owner, "team", "create", "acme", url, "--json").out)["fingerprint"]
    run("--db", owner, "templates", "add", "acme/a", "--prompt", "x")
    run("--db", owner, "sync")
    assert run("--db", reader, "team", "join", "acme", url, "--trust", fp, "--read-only").code == 0
    assert run("--db", reader, "remote", "add", "home", (tmp_path / "home").as_uri()).code == 0
    assert run("--db", reader, "remote", "add", "work", (tmp_path / "work").as_uri()).code == 0
    run("--db", reader, "templates", "add", "mine", "--prompt", "my own words")
    run("--db", reader, "templates", "copy", "acme/a", "a-copy")
    before = tree(tmp_path / "lib")
    for args in (["sync"], ["sync", "--json"], ["remote", "status", "acme"], ["verify", "acme"], ["sync"]):
        result = run("--db", reader, *args)
        assert result.code == 0, (args, result.err)
    assert tree(tmp_path / "lib") == before
    assert any(b"my own words" in d for d in objects(tmp_path / "home").values())


# -- the writer list: giant, malformed, raced -------------------------------------------------


def _one_line_error(result: Any) -> str:
    lines = result.err.strip().splitlines()
    assert result.code != 0 and "Traceback" not in result.err, result.err
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.err
    return str(lines[0])


@pytest.mark.parametrize("kind", ["giant", "nested", "huge-removed", "not-json", "wrong-types"])
def test_a_giant_or_malformed_writer_list_is_one_line_and_the_kept_list_still_works(
        run: Any, team: Team, tmp_path: Path, kind: str) -> None:
    add_template(team.writer, "acme/a", prompt="before")
    team.sync_all()
    genuine = json.loads((team.root / WRITERS_KEY).read_bytes())
    if kind == "giant":
        body = b"{" + b" " * (5 << 20) + b"}"
    elif kind == "nested":
        body = b'{"type": "localfirst-team-writers", "removed": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    elif kind == "huge-removed":
        key = genuine["writers"][0]
        hosts = {f"01h{n:023d}": n for n in range(1001)}
        body = json.dumps({**genuine, "version": genuine["version"] + 1, "removed": {key: hosts}}).encode()
    elif kind == "not-json":
        body = b"\xff\xfe not json"
    else:
        body = json.dumps({**genuine, "version": "2", "writers": {"a": 1}}).encode()
    (team.root / WRITERS_KEY).write_bytes(body)
    # The listed writer goes on writing; members still take it, with the list they keep.
    add_template(team.writer, "acme/b", prompt="after")
    with pytest.raises(CorruptObject):
        sync.sync(team.writer, "acme")
    result = run("--db", team.reader.path, "sync", "acme")
    _one_line_error(result)
    assert get_template(team.reader, "acme/a").prompt == "before"
    # A newcomer joining now is refused in one line, and nothing is saved.
    newcomer = str(tmp_path / "newcomer.db")
    joined = run("--db", newcomer, "team", "join", "acme", team.url, "--trust", team.fingerprint)
    _one_line_error(joined)
    assert list((Path(team.reader.path).parent).glob("newcomer.db")) == [] or sqlite3.connect(newcomer).execute(
        "SELECT count(*) FROM sync_remotes").fetchone()[0] == 0


def test_two_edits_of_the_writer_list_at_once_lose_neither(team: Team) -> None:
    first, second = new_keys(TID, owner=False).writer_key, new_keys(TID, owner=False).writer_key

    class Racing(CountingRemote):
        raced = False

        def put(self, key: str, data: bytes, *, sha256: str, create_only: bool, if_match: str | None = None) -> str:
            if key == WRITERS_KEY and not self.raced:
                self.raced = True
                sync.team_writers(team.owner, "acme", add=second)  # the other edit lands in between
            return super().put(key, data, sha256=sha256, create_only=create_only, if_match=if_match)

    with pytest.raises(LocalFirstError, match="changed while it was being edited"):
        sync.team_writers(team.owner, "acme", add=first, client=Racing(FolderRemote(team.url)))
    assert second in sync.team_writers(team.reader, "acme").writers
    sync.team_writers(team.owner, "acme", add=first)
    listed = sync.team_writers(team.reader, "acme")
    assert {first, second} <= set(listed.writers)
    parsed = Writers.parse((team.root / WRITERS_KEY).read_bytes(), where="w", store=team_id(team.reader),
                           trusted=team.fingerprint)
    assert parsed.version == listed.version


@pytest.mark.xfail(strict=True, reason="known limitation (docs/templates.md): removing a writer pins their hosts "
                   "at the heads read just before the writer list is replaced; a changeset they push inside that "
                   "window (between the two requests) is applied by members who pull it at once and refused by "
                   "the rest")
def test_a_changeset_pushed_while_its_writer_is_removed_converges(team: Team, tmp_path: Path) -> None:
    add_template(team.writer, "acme/a", prompt="accepted")
    team.sync_all()

    class Racing(CountingRemote):
        raced = False

        def put(self, key: str, data: bytes, *, sha256: str, create_only: bool, if_match: str | None = None) -> str:
            if key == WRITERS_KEY and not self.raced:
                self.raced = True
                add_template(team.writer, "acme/late", prompt="pushed during the removal")
                sync.sync(team.writer, "acme")
                sync.sync(team.reader, "acme")
            return super().put(key, data, sha256=sha256, create_only=create_only, if_match=if_match)

    sync.team_writers(team.owner, "acme", remove=sync.team_whoami(team.writer, "acme"),
                      client=Racing(FolderRemote(team.url)))
    late = fresh_reader(team, tmp_path, "late")
    for store in (late, team.reader, team.owner):
        try:
            sync.sync(store, "acme")
        except CorruptObject:
            pass
    seen = {bool(sync_history(store, "acme/late")) for store in (late, team.reader, team.owner)}
    assert len(seen) == 1, "members disagree on acme/late"


# -- secrets ------------------------------------------------------------------------------------


def _private_keys(home: Path) -> list[bytes]:
    """Every private key in this test's key files, as raw bytes and in the forms a leak could take."""
    found: list[bytes] = []
    for path in (home / "keys").glob("team-*.json"):
        assert path.stat().st_mode & 0o077 == 0, path
        doc = json.loads(path.read_bytes())
        for name in ("writer", "owner"):
            if name in doc:
                text = doc[name]
                raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
                found += [text.encode(), raw, raw.hex().encode(), base64.b64encode(raw).rstrip(b"=")]
    assert found
    return found


def test_private_keys_reach_no_database_output_error_or_bucket(run: Any, tmp_path: Path,
                                                               isolated_home: Path) -> None:
    url = (tmp_path / "lib").as_uri()
    owner, member = str(tmp_path / "o.db"), str(tmp_path / "m.db")
    outputs: list[str] = []

    def go(*args: str) -> Any:
        result = run(*args)
        outputs.extend([result.out, result.err])
        return result

    fp = json.loads(go("--db", owner, "team", "create", "acme", url, "--json").out)["fingerprint"]
    go("--db", member, "team", "join", "acme", url, "--trust", fp, "--json")
    key = json.loads(go("--db", member, "team", "whoami", "acme", "--json").out)["key"]
    go("--db", owner, "team", "writers", "acme", "add", key, "--json")
    go("--db", owner, "templates", "add", "acme/a", "--prompt", "x $input", "--model", "echo")
    for db in (owner, member):
        for args in (["sync", "--json"], ["remote", "list", "--json"], ["remote", "status", "acme", "--json"],
                     ["verify", "acme", "--json", "--read-data-subset", "100"], ["templates", "list", "--json"],
                     ["team", "writers", "acme", "--json"], ["compact", "acme", "--json"]):
            go("--db", db, *args)
    go("--db", member, "prompt", "-t", "acme/a", "hi")
    go("--db", member, "logs", "list", "--json")
    go("--db", member, "export")
    secrets = _private_keys(isolated_home)
    # A damaged key file: the error names the file, not what is in it.
    for path in (isolated_home / "keys").glob("team-*.json"):
        doc = json.loads(path.read_bytes())
        doc["store"] = "01h00000000000000000000000"
        path.write_text(json.dumps(doc))
    go("--db", member, "templates", "add", "acme/b", "--prompt", "y")
    broken = go("--db", member, "sync", "acme")
    assert broken.code != 0 and "key file" in broken.err
    text = "\n".join(outputs).encode()
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("*.db*"))
    bucket = b"".join(objects(tmp_path / "lib").values())
    for secret in secrets:
        assert secret not in text
        assert secret not in stored
        assert secret not in bucket


# -- the CLI: one line for every bad input, nothing written ------------------------------------


BAD_INPUTS = [
    (["team", "join", "acme2", "LIB", "--trust", "SHA256:" + "A" * 43], "STRANGER", "not the SHA256:AAAA"),
    (["team", "join", "acme2", "GONE", "--trust", "FP"], "STRANGER", "does not exist"),
    (["team", "join", "acme2", "HOME", "--trust", "FP"], "MEMBER", "personal remote"),
    (["team", "join", "again", "LIB", "--trust", "FP"], "MEMBER", "already in that team"),
    (["team", "create", "beta", "LIB"], "OWNER", "already holds a remote"),
    (["team", "create", "acme", "NEW"], "OWNER", "already exists"),
    (["team", "writers", "acme", "remove", "KEY"], "OWNER", "is not a writer"),
    (["team", "writers", "acme", "add", "KEY"], "MEMBER", "only the owner"),
    (["team", "writers", "home"], "MEMBER", "not a team library"),
    (["team", "whoami", "home"], "MEMBER", "not a team library"),
    (["templates", "label", "acme/a", "production", "01h00000000000000000000000"], "OWNER", "no version"),
    (["templates", "label", "acme/a", "bad label!"], "OWNER", "template name"),
    (["templates", "label", "acme/a", "production"], "MEMBER", "read-only"),
    (["templates", "add", "acme/b", "--prompt", "x"], "MEMBER", "read-only"),
    (["templates", "rm", "acme/a"], "MEMBER", "read-only"),
    (["templates", "publish", "mine", "acme"], "MEMBER", "read-only"),
    (["templates", "publish", "mine", "ghost"], "MEMBER", "no team named 'ghost'"),
    (["templates", "copy", "acme/a", "acme/c"], "MEMBER", "a copy is personal"),
    (["templates", "copy", "acme/a", "mine"], "MEMBER", "exists"),
    (["prompt", "-t", "acme/a@nolabel", "x"], "MEMBER", "no label or version 'nolabel'"),
    (["prompt", "-t", "acme/a@", "x"], "MEMBER", "after @"),
    (["prompt", "-t", "acme//a", "x"], "MEMBER", "not a template name"),
    (["prompt", "-t", "ghost/a@production", "x"], "MEMBER", "no team named 'ghost'"),
    (["compact", "acme"], "MEMBER", "read-only"),
    (["remote", "add", "lib2", "LIB"], "MEMBER", "team library"),
]


@pytest.mark.parametrize(("args", "who", "message"), BAD_INPUTS, ids=[" ".join(a[:3]) for a, _, _ in BAD_INPUTS])
def test_every_bad_input_is_one_line_and_writes_nothing(run: Any, tmp_path: Path, args: list[str], who: str,
                                                        message: str) -> None:
    lib, home = tmp_path / "lib", tmp_path / "home"
    owner, member = str(tmp_path / "o.db"), str(tmp_path / "m.db")
    fp = json.loads(run("--db", owner, "team", "create", "acme", lib.as_uri(), "--json").out)["fingerprint"]
    run("--db", owner, "templates", "add", "acme/a", "--prompt", "x", "--model", "echo")
    run("--db", owner, "sync")
    assert run("--db", member, "team", "join", "acme", lib.as_uri(), "--trust", fp, "--read-only").code == 0
    assert run("--db", member, "remote", "add", "home", home.as_uri()).code == 0
    run("--db", member, "templates", "add", "mine", "--prompt", "my own words")
    run("--db", member, "sync")
    key = new_keys(TID, owner=False).writer_key
    swap = {"LIB": lib.as_uri(), "GONE": (tmp_path / "gone").as_uri(), "HOME": home.as_uri(), "FP": fp,
            "KEY": key, "NEW": (tmp_path / "new").as_uri()}
    argv = [swap.get(a, a) for a in args]
    db = {"OWNER": owner, "MEMBER": member}.get(who, str(tmp_path / "stranger.db"))
    if who == "STRANGER":
        assert run("--db", db, "remote", "list").code == 0
    before = (tree(lib), tree(home), sqlite3.connect(db).execute("SELECT count(*) FROM sync_changes").fetchone(),
              sqlite3.connect(db).execute("SELECT count(*) FROM sync_remotes").fetchone())
    result = run("--db", db, *argv)
    line = _one_line_error(result)
    assert message in line, line
    after = (tree(lib), tree(home), sqlite3.connect(db).execute("SELECT count(*) FROM sync_changes").fetchone(),
             sqlite3.connect(db).execute("SELECT count(*) FROM sync_remotes").fetchone())
    assert after == before


def test_a_personal_bucket_cannot_smuggle_rows_into_or_out_of_a_team(team: Team, tmp_path: Path) -> None:
    a = add_template(team.owner, "acme/a", prompt="team words")
    team.sync_all()
    home = tmp_path / "home-bucket"
    sync.add_remote(team.reader, "home", home.as_uri())
    sync.sync(team.reader, "home")
    store = json.loads((home / "format.json").read_bytes())["store"]
    (home / "heads").mkdir(exist_ok=True)
    acme = team_id(team.reader)
    attacks = [
        # a team's template, filed under the team, arriving through a personal remote
        _template_ops("b", "smuggled", team_id=acme, template_id=TID, version_id=VID),
        # a tombstone, a new version and a label for the team's template, through the personal remote
        [("del", "templates", None, a.template_id, soon())],
        [("put", "template_versions", {"id": VID, "template_id": a.template_id, "hlc": soon(), "prompt": "hijack",
                                       "created_utc": "2026-12-01T00:00:00.000000Z"}, None, None)],
        [("set", "template_labels", {"template_id": a.template_id, "label": "production", "version_id": a.id,
                                     "hlc": soon()}, None, None)],
    ]
    for n, ops in enumerate(attacks):
        host = f"01h00000000000000000000hm{n}"
        _forge(home, host, ops, store_id=store)
        with pytest.raises(CorruptObject, match="may not carry|as a team's template"):
            sync.pull(team.reader, "home")
        (home / "heads" / f"{host}.json").unlink()
    assert get_template(team.reader, "acme/a").prompt == "team words"
    assert team.reader.conn.execute("SELECT count(*) FROM template_labels").fetchone()[0] == 0
    with pytest.raises(NotFound):
        get_template(team.reader, "acme/b")
