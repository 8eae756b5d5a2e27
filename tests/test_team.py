"""Team libraries: shared through a remote, changed only by listed writers, refused when forged."""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from synctools import CountingRemote, log, new_store

import sync
from localfirst.errors import BadInput, ConfigError, CorruptObject, NotFound, ReadOnly, WrongKey
from localfirst.store import Store
from localfirst.templates import (
    add_template,
    add_version,
    copy_template,
    get_template,
    label_template,
    list_templates,
    publish_template,
    template_history,
)
from sync.changeset import Header, encode, sha256
from sync.folder import FolderRemote
from sync.team import WRITERS_KEY, Writers, fingerprint, new_keys, signer


class Team:
    """An owner, a writer and a reader of one team library in a folder, each its own database."""

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path / "team"
        self.url = self.root.as_uri()
        self.owner = new_store(tmp_path / "owner.db")
        made = sync.create_team(self.owner, "acme", self.url)
        self.fingerprint = made.fingerprint
        self.writer = new_store(tmp_path / "writer.db")
        joined = sync.join_team(self.writer, "acme", self.url, trust=made.fingerprint)
        assert joined.config.writer is not None
        sync.team_writers(self.owner, "acme", add=joined.config.writer)
        sync.sync(self.writer, "acme")  # learns it is listed
        self.reader = new_store(tmp_path / "reader.db")
        sync.join_team(self.reader, "acme", self.url, trust=made.fingerprint, read_only=True)

    def sync_all(self, *stores: Store) -> None:
        for store in stores or (self.owner, self.writer, self.reader):
            sync.sync(store, "acme")


@pytest.fixture
def team(tmp_path: Path) -> Team:
    return Team(tmp_path)


def objects(root: Path) -> dict[str, bytes]:
    """Every object of a folder remote, decompressed where it is gzip."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            out[str(path.relative_to(root))] = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    return out


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Name, size and modification time of everything under ``root``: unchanged means nothing was written."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


# -- creating and joining --------------------------------------------------------


def test_the_owner_is_a_writer_from_the_start_and_members_see_the_library(team: Team) -> None:
    add_template(team.owner, "acme/review", prompt="Review this: $input", model="echo")
    add_template(team.writer, "mine", prompt="personal")  # never leaves the writer's machine for the team
    team.sync_all()
    team.sync_all()
    for store in (team.writer, team.reader):
        version = get_template(store, "acme/review")
        assert version.prompt == "Review this: $input" and version.team == "acme"
    names = {(t.full_name, t.read_only) for t in list_templates(team.reader)}
    assert names == {("acme/review", True)}
    assert {(t.full_name, t.read_only) for t in list_templates(team.writer)} == {("mine", False),
                                                                                ("acme/review", False)}
    owner_key = sync.team_whoami(team.owner, "acme")
    writers = sync.team_writers(team.reader, "acme")
    assert owner_key in writers.writers and sync.team_whoami(team.writer, "acme") in writers.writers
    assert sync.team_whoami(team.reader, "acme") not in writers.writers


def test_a_wrong_fingerprint_is_refused_before_anything_is_saved(team: Team, tmp_path: Path,
                                                                 isolated_home: Path) -> None:
    stranger = new_store(tmp_path / "stranger.db")
    keys_before = sorted((isolated_home / "keys").iterdir())
    other = fingerprint(new_keys("01h00000000000000000000000", owner=True).owner_key or "")
    with pytest.raises(WrongKey, match="not the .* this machine trusts"):
        sync.join_team(stranger, "acme", team.url, trust=other)
    with pytest.raises(BadInput, match="not a team fingerprint"):
        sync.join_team(stranger, "acme", team.url, trust="SHA256:short")
    assert sync.list_remotes(stranger) == []
    assert sorted((isolated_home / "keys").iterdir()) == keys_before


def test_names_and_kinds_of_remote_cannot_be_mixed_up(team: Team, tmp_path: Path) -> None:
    personal = tmp_path / "personal"
    sync.add_remote(team.owner, "origin", personal.as_uri())
    log(team.owner, "hello")
    sync.sync(team.owner, "origin")
    with pytest.raises(BadInput, match="already exists"):
        sync.join_team(team.owner, "origin", team.url, trust=team.fingerprint)
    with pytest.raises(BadInput, match="is a team library"):
        sync.add_remote(new_store(tmp_path / "x.db"), "t", team.url)
    with pytest.raises(BadInput, match="personal remote, not a team library"):
        sync.join_team(new_store(tmp_path / "y.db"), "t", personal.as_uri(), trust=team.fingerprint)
    with pytest.raises(BadInput, match="already holds a remote"):
        sync.create_team(new_store(tmp_path / "z.db"), "t", personal.as_uri())
    with pytest.raises(BadInput, match="already in that team"):
        sync.join_team(team.writer, "acme2", team.url, trust=team.fingerprint)


# -- what travels ------------------------------------------------------------------


def test_only_the_teams_templates_ever_reach_its_remote(team: Team, tmp_path: Path) -> None:
    personal = tmp_path / "personal"
    sync.add_remote(team.owner, "origin", personal.as_uri())
    log(team.owner, "a secret prompt never for the team")
    add_template(team.owner, "private-template", prompt="my own words")
    add_template(team.owner, "acme/shared", prompt="for everyone")
    label_template(team.owner, "acme/shared", "production")
    add_template(team.owner, "acme/gone", prompt="soon deleted")
    sync.sync(team.owner, "acme")
    from localfirst.templates import remove_template

    remove_template(team.owner, "acme/gone")
    remove_template(team.owner, "private-template")
    sync.sync(team.owner, "acme")
    sync.sync(team.owner, "origin")
    team_bytes = b"".join(objects(team.root).values())
    assert b"for everyone" in team_bytes and b"soon deleted" in team_bytes
    for secret in (b"a secret prompt", b"private-template", b"my own words", b"conversations", b"responses"):
        assert secret not in team_bytes, secret
    # ... and nothing of the team's reaches the personal remote.
    personal_bytes = b"".join(objects(personal).values())
    assert b"a secret prompt" in personal_bytes
    assert b"for everyone" not in personal_bytes and b"soon deleted" not in personal_bytes
    # The team's tombstone went to the team; every change was passed over or sent: the outbox is empty.
    assert team.owner.conn.execute("SELECT count(*) FROM sync_changes").fetchone()[0] == 0
    team.sync_all(team.writer)
    assert [t.full_name for t in list_templates(team.writer)] == ["acme/shared"]


def test_an_idle_sync_of_a_team_is_one_request(team: Team) -> None:
    add_template(team.owner, "acme/a", prompt="x")
    team.sync_all()
    team.sync_all()
    log(team.writer, "personal work does not wake the team remote")
    for store in (team.owner, team.writer, team.reader):
        counting = CountingRemote(FolderRemote(team.url))
        result = sync.sync(store, "acme", client=counting)
        assert counting.total == 1 and result.requests == 1, counting.calls


# -- read-only members ---------------------------------------------------------------


def test_a_reader_makes_zero_write_requests_whatever_it_does(team: Team) -> None:
    add_template(team.owner, "acme/a", prompt="first")
    team.sync_all(team.owner)
    counting = CountingRemote(FolderRemote(team.url))
    sync.sync(team.reader, "acme", client=counting)
    assert get_template(team.reader, "acme/a").prompt == "first"
    before = tree(team.root)
    with pytest.raises(ReadOnly, match="read-only"):
        add_template(team.reader, "acme/b", prompt="nope")
    with pytest.raises(ReadOnly, match="read-only"):
        label_template(team.reader, "acme/a", "production")
    with pytest.raises(ReadOnly, match="read-only"):
        add_version(team.reader, "acme/a", prompt="changed")
    with pytest.raises(ReadOnly, match="read-only"):
        sync.compact(team.reader, "acme", client=counting)
    # Rows written behind localfirst's back are never pushed by a reader either.
    with team.reader.write() as conn:
        conn.execute("INSERT INTO template_labels (template_id, label, version_id, hlc) SELECT template_id, "
                     "'sneaky', id, hlc FROM template_versions")
    sync.sync(team.reader, "acme", client=counting)
    sync.verify(team.reader, "acme", client=counting, share=100)
    assert counting.calls["put"] == 0 and counting.calls["delete"] == 0, counting.calls
    assert tree(team.root) == before
    assert copy_template(team.reader, "acme/a", "my-a").prompt == "first"


def test_a_writer_not_yet_listed_cannot_write_and_pushes_nothing(team: Team, tmp_path: Path) -> None:
    newcomer = new_store(tmp_path / "newcomer.db")
    sync.join_team(newcomer, "acme", team.url, trust=team.fingerprint)
    with pytest.raises(ReadOnly, match="writer list"):
        add_template(newcomer, "acme/x", prompt="x")
    # Once the owner lists the key, a sync learns it (the writer list is in the LIST of heads/).
    sync.team_writers(team.owner, "acme", add=sync.team_whoami(newcomer, "acme"))
    counting = CountingRemote(FolderRemote(team.url))
    sync.sync(newcomer, "acme", client=counting)
    assert counting.calls == {"list": 1, "get": 1}
    add_template(newcomer, "acme/x", prompt="from the newcomer")
    sync.sync(newcomer, "acme")
    team.sync_all(team.reader)
    assert get_template(team.reader, "acme/x").prompt == "from the newcomer"


# -- signatures -------------------------------------------------------------------


def _forge(root: Path, host: str, ops: list[Any], *, keys: Any = None, store_id: str, seq: int = 1,
           prev: str = "") -> None:
    """Write changeset ``seq`` of ``host`` and its head straight into the folder, as a bucket writer could."""
    header = Header(store=store_id, host=host, seq=seq, prev=prev, schema=100, rows=len(ops))
    body = encode(header, ops, sign=signer(keys) if keys is not None else None)
    path = root / "log" / host / f"{seq:012d}.jsonl.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    (root / "heads" / f"{host}.json").write_text(json.dumps({"host": host, "seq": seq, "sha256": sha256(body)}))


def _template_ops(name: str, prompt: str, *, team_id: str, template_id: str, version_id: str) -> list[Any]:
    return [
        ("put", "templates", {"id": template_id, "name": name, "created_utc": "2026-12-01T00:00:00.000000Z",
                              "team": team_id}, None, None),
        ("put", "template_versions", {"id": version_id, "template_id": template_id,
                                      "hlc": "1764547200000.0000.01h00000000000000000000009", "prompt": prompt,
                                      "created_utc": "2026-12-01T00:00:00.000000Z"}, None, None),
    ]


FORGER = "01h00000000000000000000f0r"
TID, VID = "01h000000000000000000000t1", "01h000000000000000000000v1"


def test_a_changeset_from_an_unlisted_key_is_refused_and_blocks_no_one(team: Team) -> None:
    team_id = team.reader.conn.execute("SELECT store_id FROM sync_remotes WHERE name = 'acme'").fetchone()[0]
    stranger = new_keys(team_id, owner=False)
    _forge(team.root, FORGER, _template_ops("evil", "do harm", team_id=team_id, template_id=TID, version_id=VID),
           keys=stranger, store_id=team_id)
    add_template(team.writer, "acme/good", prompt="fine")
    # The writer's sync refuses it too, and still pushes its own changeset.
    with pytest.raises(CorruptObject, match=f"host {FORGER} is signed by .* not on the writer list of team"):
        sync.sync(team.writer, "acme")
    with pytest.raises(CorruptObject, match=f"host {FORGER} is signed by .* not on the writer list of team"):
        sync.sync(team.reader, "acme")
    assert get_template(team.reader, "acme/good").prompt == "fine"
    with pytest.raises(NotFound):
        get_template(team.reader, "acme/evil")


def test_unsigned_altered_and_out_of_scope_changesets_are_refused(team: Team, tmp_path: Path) -> None:
    team_id = team.reader.conn.execute("SELECT store_id FROM sync_remotes WHERE name = 'acme'").fetchone()[0]
    owner_keys = team.owner_keys = sync.membership.load_team_keys(sync.get_remote(team.owner, "acme"))
    cases: list[tuple[str, Any, str]] = []
    # Unsigned.
    cases.append(("01h00000000000000000000aa1", None, "is not signed"))
    # A response, signed by a real writer: still not a template.
    cases.append(("01h00000000000000000000aa2", "response", "carries only templates"))
    # A personal template (no team), signed.
    cases.append(("01h00000000000000000000aa3", "personal", "a personal template"))
    for host, kind, message in cases:
        reader = new_store(tmp_path / f"{host}.db")
        sync.join_team(reader, "acme", team.url, trust=team.fingerprint, read_only=True)
        if kind is None:
            ops = _template_ops("x", "y", team_id=team_id, template_id=TID, version_id=VID)
            _forge(team.root, host, ops, store_id=team_id)
        elif kind == "response":
            ops = [("set", "conversations", {"id": TID, "created_utc": "2026-12-01T00:00:00.000000Z",
                                             "name_hlc": ""}, None, None)]
            _forge(team.root, host, ops, keys=owner_keys, store_id=team_id)
        else:
            ops = _template_ops("x", "y", team_id=None, template_id=TID, version_id=VID)  # type: ignore[arg-type]
            ops[0][2].pop("team")
            _forge(team.root, host, ops, keys=owner_keys, store_id=team_id)
        with pytest.raises(CorruptObject, match=message):
            sync.sync(reader, "acme")
        assert reader.conn.execute("SELECT count(*) FROM templates").fetchone()[0] == 0
        (team.root / "heads" / f"{host}.json").unlink()
    # Altered after signing: the signature no longer matches.
    host = "01h00000000000000000000aa4"
    _forge(team.root, host, _template_ops("x", "honest", team_id=team_id, template_id=TID, version_id=VID),
           keys=owner_keys, store_id=team_id)
    path = team.root / "log" / host / f"{1:012d}.jsonl.gz"
    text = gzip.decompress(path.read_bytes()).replace(b"honest", b"altered")
    path.write_bytes(gzip.compress(text, mtime=0))
    (team.root / "heads" / f"{host}.json").write_text(
        json.dumps({"host": host, "seq": 1, "sha256": sha256(path.read_bytes())}))
    reader = new_store(tmp_path / "last.db")
    sync.join_team(reader, "acme", team.url, trust=team.fingerprint, read_only=True)
    with pytest.raises(CorruptObject, match="does not match its signature"):
        sync.sync(reader, "acme")
    assert reader.conn.execute("SELECT count(*) FROM templates").fetchone()[0] == 0


def test_a_label_moved_by_an_unlisted_key_is_refused(team: Team) -> None:
    add_template(team.owner, "acme/p", prompt="v1")
    label_template(team.owner, "acme/p", "production")
    add_version(team.owner, "acme/p", prompt="v2")
    team.sync_all()
    first = template_history(team.reader, "acme/p")[-1]
    assert get_template(team.reader, "acme/p@production").id == first.id
    team_id = first.team_id
    assert team_id is not None
    stranger = new_keys(team_id, owner=False)
    newest = template_history(team.reader, "acme/p")[0]
    ops = [("set", "template_labels", {"template_id": first.template_id, "label": "production",
                                       "version_id": newest.id, "hlc": "1999999999999.0000.01h00000000000000000000009"},
            None, None)]
    _forge(team.root, FORGER, ops, keys=stranger, store_id=team_id)
    with pytest.raises(CorruptObject, match="not on the writer list of team 'acme'"):
        sync.sync(team.reader, "acme")
    assert get_template(team.reader, "acme/p@production").id == first.id


def test_a_writer_list_not_signed_by_the_trusted_owner_or_rolled_back_is_refused(team: Team) -> None:
    add_template(team.owner, "acme/a", prompt="x")
    team.sync_all()
    team_id = get_template(team.reader, "acme/a").team_id
    assert team_id is not None
    path = team.root / WRITERS_KEY
    genuine = path.read_bytes()
    current = Writers.parse(genuine, where="w", store=team_id, trusted=team.fingerprint)
    # A list signed by another owner key (anyone who can write to the bucket could make one).
    usurper = new_keys(team_id, owner=True)
    assert usurper.owner is not None and usurper.owner_key is not None
    forged = replace(current, owner=usurper.owner_key, version=current.version + 1,
                     writers=(*current.writers, usurper.writer_key)).signed(usurper.owner)
    path.write_bytes(forged.to_bytes())
    with pytest.raises(WrongKey, match="not the .* this machine trusts"):
        sync.sync(team.reader, "acme")
    # The genuine owner key, but a list edited after signing.
    tampered = json.loads(genuine)
    tampered["writers"].append(usurper.writer_key)
    tampered["version"] += 1
    path.write_text(json.dumps(tampered))
    with pytest.raises(CorruptObject, match="not signed by the team's owner key"):
        sync.sync(team.reader, "acme")
    # Rolled back: an older list the owner really signed.
    path.write_bytes(genuine)
    sync.team_writers(team.owner, "acme", add=usurper.writer_key)
    sync.sync(team.reader, "acme")
    path.write_bytes(genuine)
    with pytest.raises(CorruptObject, match="rolled back"):
        sync.sync(team.reader, "acme")


def test_a_removed_writer_keeps_what_was_accepted_and_nothing_after(team: Team, tmp_path: Path) -> None:
    add_template(team.writer, "acme/w", prompt="accepted")
    team.sync_all(team.writer, team.owner)
    sync.team_writers(team.owner, "acme", remove=sync.team_whoami(team.writer, "acme"))
    # The writer has not heard yet (the list it keeps still names it), and writes again: its sync
    # learns of the removal and pushes nothing.
    add_template(team.writer, "acme/late", prompt="refused")
    with pytest.raises(ReadOnly, match="not on the writer list of team 'acme'"):
        sync.sync(team.writer, "acme")
    # Forced past its own check, its next changeset is refused by everyone.
    keys = sync.membership.load_team_keys(sync.get_remote(team.writer, "acme"))
    team_id = get_template(team.writer, "acme/w").team_id
    chain = team.writer.conn.execute(
        "SELECT seq, sha256 FROM sync_chain WHERE remote = 'acme' AND host = ?", [team.writer.host_id]).fetchone()
    _forge(team.root, team.writer.host_id, _template_ops("late", "refused", team_id=team_id or "", template_id=TID,
                                                         version_id=VID), keys=keys, store_id=team_id or "",
           seq=chain[0] + 1, prev=chain[1])
    late = new_store(tmp_path / "late.db")
    sync.join_team(late, "acme", team.url, trust=team.fingerprint, read_only=True)
    with pytest.raises(CorruptObject, match="not on the writer list of team 'acme'"):
        sync.sync(late, "acme")
    # What the owner had accepted before the removal stays valid, for a member who joins later too.
    assert get_template(late, "acme/w").prompt == "accepted"
    with pytest.raises(NotFound):
        get_template(late, "acme/late")


# -- labels and versions ----------------------------------------------------------


def test_two_writers_moving_a_label_at_once_converge(team: Team) -> None:
    add_template(team.owner, "acme/p", prompt="one")
    add_version(team.owner, "acme/p", prompt="two")
    team.sync_all()
    one, two = sorted(template_history(team.writer, "acme/p"), key=lambda v: v.hlc)
    label_template(team.owner, "acme/p", "production", one.id)
    label_template(team.writer, "acme/p", "production", two.id)
    team.sync_all()
    team.sync_all()
    chosen = {get_template(s, "acme/p@production").id for s in (team.owner, team.writer, team.reader)}
    assert len(chosen) == 1
    assert chosen == {two.id}  # the writer moved it last (its HLC is the greater)


def test_references_and_their_mistakes(team: Team) -> None:
    add_template(team.owner, "acme/p", prompt="one")
    label_template(team.owner, "acme/p", "staging")
    team.sync_all(team.owner, team.reader)
    version = get_template(team.reader, "acme/p")
    assert get_template(team.reader, f"acme/p@{version.id}").id == version.id
    assert get_template(team.reader, f"acme/p@{version.id[:8]}").id == version.id
    assert template_history(team.reader, "acme/p")[0].labels == ["staging"]
    for ref, error, message in [
        ("nope/p", NotFound, "no team named 'nope'"),
        ("acme/missing", NotFound, "no template named 'acme/missing'"),
        ("acme/p@production", NotFound, r"no label or version 'production' \(its labels: staging\)"),
        ("acme/p@", BadInput, "after @"),
        ("/p", BadInput, "not a template name"),
    ]:
        with pytest.raises(error, match=message):
            get_template(team.reader, ref)
    with pytest.raises(NotFound, match="no version"):
        label_template(team.owner, "acme/p", "production", "01h00000000000000000000000")
    with pytest.raises(BadInput, match="template name"):
        label_template(team.owner, "acme/p", "bad label!")


def test_publish_and_copy(team: Team) -> None:
    add_template(team.writer, "summary", prompt="Summarize: $input")
    published = publish_template(team.writer, "summary", "acme")
    assert published is not None and published.team == "acme"
    assert publish_template(team.writer, "summary", "acme") is None  # says the same: no new version
    sync.sync(team.writer, "acme")
    team.sync_all(team.reader)
    copy = copy_template(team.reader, "acme/summary", "my-summary")
    assert copy.team is None and copy.prompt == "Summarize: $input"
    with pytest.raises(ReadOnly):
        publish_template(team.reader, "my-summary", "acme")
    with pytest.raises(BadInput, match="already a team's template"):
        publish_template(team.writer, "acme/summary", "acme")


# -- through the CLI ---------------------------------------------------------------


def test_cli_team_flow_records_the_version_and_works_offline(run: Any, tmp_path: Path) -> None:
    url = (tmp_path / "lib").as_uri()
    owner, member = str(tmp_path / "o.db"), str(tmp_path / "m.db")
    made = run("--db", owner, "team", "create", "acme", url, "--json")
    assert made.code == 0, made.err
    fp = json.loads(made.out)["fingerprint"]
    assert fp.startswith("SHA256:")
    assert run("--db", owner, "templates", "add", "acme/greet", "--prompt", "Hello $input", "--model",
               "echo").code == 0
    assert run("--db", owner, "templates", "label", "acme/greet", "production").code == 0
    assert run("--db", owner, "sync").code == 0
    joined = run("--db", member, "team", "join", "acme", url, "--trust", fp, "--read-only")
    assert joined.code == 0, joined.err
    assert run("--db", member, "sync").code == 0
    listed = run("--db", member, "templates", "list")
    assert "acme/greet" in listed.out and "team acme (read-only)" in listed.out
    whoami = json.loads(run("--db", member, "team", "whoami", "acme", "--json").out)
    assert whoami["key"].startswith("ed25519:")
    history = run("--db", member, "templates", "history", "acme/greet")
    assert "production" in history.out
    # Offline: the library pulled last time still runs.
    (tmp_path / "lib").rename(tmp_path / "gone")
    out = run("--db", member, "prompt", "-t", "acme/greet@production", "world")
    assert out.code == 0, out.err
    record = json.loads(run("--db", member, "logs", "list", "--json").out)[0]
    version = get_template(Store.open(Path(member)), "acme/greet")
    assert record["template"] == {"name": "acme/greet", "version_id": version.id, "team": "acme",
                                  "team_id": version.team_id}


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["team", "join", "t", "file:///tmp/x", "--trust", "nope"], 2, "not a team fingerprint"),
        (["team", "whoami", "nope"], 3, "no remote named"),
        (["team", "writers", "acme", "add"], 2, "needs a writer key"),
        (["team", "writers", "acme", "add", "ed25519:short"], 2, "not a writer key"),
        (["team", "writers", "acme", "promote", "x"], 2, "use `team writers"),
        (["prompt", "-t", "acme/none", "x"], 3, "no template named 'acme/none'"),
        (["prompt", "-t", "ghost/none@production", "x"], 3, "no team named 'ghost'"),
        (["templates", "label", "acme/missing", "production"], 3, "no template named"),
        (["team", "create", "acme", "file:///tmp"], 2, "already exists"),
    ],
)
def test_cli_bad_input_is_one_line(run: Any, tmp_path: Path, args: list[str], code: int, message: str) -> None:
    assert run("team", "create", "acme", (tmp_path / "lib").as_uri()).code == 0
    before = tree(tmp_path / "lib")
    result = run(*args)
    assert result.code == code, (result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.err
    assert tree(tmp_path / "lib") == before


def test_a_reader_running_the_cli_writes_nothing(run: Any, tmp_path: Path) -> None:
    url = (tmp_path / "lib").as_uri()
    owner, reader = str(tmp_path / "o.db"), str(tmp_path / "r.db")
    fp = json.loads(run("--db", owner, "team", "create", "acme", url, "--json").out)["fingerprint"]
    run("--db", owner, "templates", "add", "acme/a", "--prompt", "x")
    run("--db", owner, "sync")
    before = tree(tmp_path / "lib")
    assert run("--db", reader, "team", "join", "acme", url, "--trust", fp, "--read-only").code == 0
    for args, code in [(["sync"], 0), (["templates", "add", "acme/b", "--prompt", "y"], 12),
                       (["templates", "label", "acme/a", "production"], 12), (["compact", "acme"], 12),
                       (["templates", "rm", "acme/a"], 12), (["verify", "acme"], 0), (["sync", "acme"], 0)]:
        result = run("--db", reader, *args)
        assert result.code == code, (args, result.err)
    assert tree(tmp_path / "lib") == before


# -- everything else of sync holds ---------------------------------------------------


def test_snapshots_of_a_team_are_signed_and_bootstrap_new_members(team: Team, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(25):
        add_template(team.owner, f"acme/t{n}", prompt=f"prompt {n}")
        sync.sync(team.owner, "acme")
    result = sync.compact(team.owner, "acme", purge=True)
    assert result.snapshot
    fresh = new_store(tmp_path / "fresh.db")
    sync.join_team(fresh, "acme", team.url, trust=team.fingerprint, read_only=True)
    pulled = sync.pull(fresh, "acme")
    assert pulled.snapshot == result.snapshot and len(list_templates(fresh)) == 25
    # A manifest re-signed by a key that is not a writer's is refused (and nothing of it applied).
    manifest = team.root / "snapshots" / f"{result.snapshot}.json"
    doc = json.loads(manifest.read_bytes())
    team_id = doc["store"]
    stranger = new_keys(team_id, owner=False)
    from sync.snapshot import Manifest
    from sync.team import SNAPSHOT_DOMAIN, sign_bytes

    parsed = Manifest.parse(manifest.read_bytes(), where="m", store=team_id, sid=result.snapshot)
    forged = replace(parsed, writer=stranger.writer_key, sig=None)
    forged = replace(forged, sig=sign_bytes(stranger.writer, SNAPSHOT_DOMAIN, forged.to_bytes()))
    manifest.write_bytes(forged.to_bytes())
    other = new_store(tmp_path / "other.db")
    sync.join_team(other, "acme", team.url, trust=team.fingerprint, read_only=True)
    with pytest.raises(CorruptObject, match="not on the writer list of team 'acme'"):
        sync.pull(other, "acme")
    assert other.conn.execute("SELECT count(*) FROM templates").fetchone()[0] == 0


def test_an_encrypted_team(tmp_path: Path) -> None:
    url = (tmp_path / "sealed").as_uri()
    owner, member = new_store(tmp_path / "o.db"), new_store(tmp_path / "m.db")
    made = sync.create_team(owner, "acme", url, encrypt=True, passphrase="team passphrase", scrypt_n=1 << 10)
    assert made.recovery_key
    add_template(owner, "acme/secret-sauce", prompt="the recipe")
    sync.sync(owner, "acme")
    with pytest.raises(BadInput, match="passphrase"):
        sync.join_team(member, "acme", url, trust=made.fingerprint)
    sync.join_team(member, "acme", url, trust=made.fingerprint, passphrase="team passphrase", read_only=True)
    sync.sync(member, "acme")
    assert get_template(member, "acme/secret-sauce").prompt == "the recipe"
    for data in objects(tmp_path / "sealed").values():
        assert b"the recipe" not in data and b"secret-sauce" not in data


def test_a_missing_key_file_is_one_clear_error(team: Team, isolated_home: Path) -> None:
    for path in (isolated_home / "keys").glob("team-*.json"):
        os.unlink(path)
    add_template(team.writer, "acme/x", prompt="x")
    with pytest.raises(ConfigError, match="join the team again"):
        sync.sync(team.writer, "acme")


@pytest.mark.parametrize("after", [False, True])
def test_a_crash_at_any_request_of_a_team_sync_loses_nothing(team: Team, after: bool) -> None:
    from synctools import Crash, CrashingRemote

    add_template(team.writer, "acme/a", prompt="one")
    label_template(team.writer, "acme/a", "production")
    add_template(team.owner, "acme/b", prompt="two")
    sync.sync(team.owner, "acme")
    at = 1
    while True:
        crashing = CrashingRemote(FolderRemote(team.url), at=at, after=after)
        try:
            sync.sync(team.writer, "acme", client=crashing)
        except Crash:
            at += 1
            continue
        assert not crashing.crashed
        break
    assert at > 3  # it did crash at the list, the gets and the puts
    team.sync_all()
    team.sync_all()
    for store in (team.owner, team.writer, team.reader):
        assert {t.full_name for t in list_templates(store)} >= {"acme/a", "acme/b"}
        assert get_template(store, "acme/a@production").prompt == "one"


def test_edit_and_export_keep_teams_apart(team: Team, tmp_path: Path) -> None:
    from localfirst.template_files import edit_template, export_templates

    add_template(team.writer, "acme/x", prompt="team words")
    add_template(team.writer, "x", prompt="my words")
    os.environ["EDITOR"] = "sed -i s/team/shared/"
    try:
        edited = edit_template(team.writer, "acme/x")
    finally:
        del os.environ["EDITOR"]
    assert edited is not None and edited.team == "acme" and get_template(team.writer, "acme/x").prompt == "shared words"
    assert get_template(team.writer, "x").prompt == "my words"
    written = export_templates(team.writer, tmp_path / "out")
    assert [p.name for p in written] == ["x.yaml"] and "my words" in written[0].read_text()


def test_sync_with_no_name_syncs_every_remote_and_one_failure_stops_none(run: Any, tmp_path: Path) -> None:
    db = str(tmp_path / "me.db")
    assert run("--db", db, "team", "create", "acme", (tmp_path / "lib").as_uri()).code == 0
    assert run("--db", db, "remote", "add", "home", (tmp_path / "home").as_uri()).code == 0
    assert run("--db", db, "remote", "add", "broken", (tmp_path / "broken").as_uri()).code == 0
    (tmp_path / "broken" / "format.json").write_text("not json")
    run("--db", db, "templates", "add", "acme/shared", "--prompt", "team")
    run("--db", db, "log", "-m", "m", "-p", "mine", "-r", "only mine")
    result = run("--db", db, "sync", "--json")
    assert result.code == 9 and result.err.startswith("Error: broken: ")
    done = {r["remote"]: r["pushed"]["rows"] for r in json.loads(result.out)["remotes"]}
    assert set(done) == {"acme", "home"} and done["acme"] == 2 and done["home"] == 2
    assert b"only mine" not in b"".join(objects(tmp_path / "lib").values())
    assert run("--db", db, "remote", "status", "acme", "--json").code == 0
    waiting = json.loads(run("--db", db, "remote", "status", "acme", "--json").out)["waiting"]
    assert waiting == 0


def test_export_and_import_jsonl_keep_personal_labels(tmp_path: Path) -> None:
    from localfirst.exporters.text import write_templates
    from localfirst.restore import import_jsonl_path

    source = new_store(tmp_path / "a.db")
    add_template(source, "p", prompt="one")
    first = get_template(source, "p")
    add_version(source, "p", prompt="two")
    label_template(source, "p", "production", first.id)
    out = tmp_path / "templates.jsonl"
    with out.open("w") as f:
        assert write_templates(source, f) == 1
    assert '"labels": [{"label": "production"' in out.read_text()
    target = new_store(tmp_path / "b.db")
    import_jsonl_path(target, out)
    assert get_template(target, "p@production").prompt == "one"
    assert get_template(target, "p").prompt == "two"


def test_leaving_a_team_takes_its_library_off_this_machine_only(team: Team) -> None:
    add_template(team.owner, "acme/a", prompt="shared")
    team.sync_all()
    copy_template(team.reader, "acme/a", "kept")
    sync.remove_remote(team.reader, "acme")
    assert [t.full_name for t in list_templates(team.reader)] == ["kept"]
    assert team.reader.conn.execute("SELECT count(*) FROM templates WHERE team IS NOT NULL").fetchone()[0] == 0
    team.sync_all(team.owner)
    assert get_template(team.owner, "acme/a").prompt == "shared"
