"""Encrypted remotes: the bucket learns nothing of what was logged, and a wrong key writes nothing."""

from __future__ import annotations

import gzip
import json
import os
import zlib
from pathlib import Path

import pytest
from conftest import run_subprocess
from synctools import CountingRemote, dump, log, new_store

import sync
from localfirst.errors import BadInput, CorruptObject, FormatTooNew, WrongKey
from localfirst.store import Store
from sync import crypto
from sync.changeset import FORMAT
from sync.folder import FolderRemote
from sync.keys import key_file

PASS = "correct horse battery staple"
SECRET = "zebra-secret-7f3a91"
CHEAP = 1 << 10  # scrypt cost for tests; the default is checked on its own below


def add(store: Store, root: Path, secret: str = PASS, *, encrypt: bool = True, client: object = None) -> sync.Added:
    return sync.add_remote(store, "origin", root.as_uri(), encrypt=encrypt, passphrase=secret,
                           scrypt_n=CHEAP, client=client)  # type: ignore[arg-type]


def objects(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()
            and not p.name.startswith(".")}


def readable(data: bytes) -> bytes:
    """The bytes, and what they inflate to when they are gzip (whole or from any offset)."""
    out = data
    for start in range(0, min(len(data), 64)):
        try:
            out += zlib.decompressobj(wbits=47).decompress(data[start:])
        except zlib.error:
            continue
    return out


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Store, Store, str]:
    """An encrypted remote, machine A that created it and pushed, machine B that joined with the passphrase."""
    root = tmp_path / "remote"
    root.mkdir()
    a, b = new_store(tmp_path / "a.db"), new_store(tmp_path / "b.db")
    added = add(a, root)
    assert added.recovery_key and crypto.parse_recovery_key(added.recovery_key)
    log(a, f"tell me about {SECRET}")
    sync.sync(a)
    add(b, root, encrypt=False)
    return root, a, b, added.recovery_key


def test_no_object_holds_any_plaintext_of_what_was_logged(pair: tuple[Path, Store, Store, str]) -> None:
    root, a, b, _ = pair
    sync.sync(b)
    log(b, f"and again {SECRET}")
    sync.sync(b)
    sync.sync(a)
    sync.compact(a, margin=0)  # a snapshot and its manifest too
    found = objects(root)
    assert any(k.startswith("snapshots/") for k in found) and any(k.startswith("heads/") for k in found)
    for key, data in found.items():
        assert SECRET.encode() not in readable(data), key
        if key != "format.json" and not key.startswith("keys/"):
            assert data.startswith(crypto.MAGIC), key  # sealed, every one of them
            with pytest.raises((OSError, EOFError)):
                gzip.decompress(data)
    assert dump(a) == dump(b)
    assert sum(SECRET in str(r) for r in dump(b)["responses"]) == 2  # both exchanges reached b


def test_a_second_machine_joins_with_the_passphrase_a_third_with_the_recovery_key(
        pair: tuple[Path, Store, Store, str], tmp_path: Path) -> None:
    root, a, b, recovery = pair
    sync.sync(b)
    c = new_store(tmp_path / "c.db")
    add(c, root, recovery.upper().replace("-", " - "), encrypt=False)  # typed back loosely
    log(c, "from c")
    sync.sync(c)
    sync.sync(a)
    sync.sync(b)
    assert dump(a) == dump(b) == dump(c)


def test_a_wrong_passphrase_or_recovery_key_writes_nothing_and_saves_nothing(
        pair: tuple[Path, Store, Store, str], tmp_path: Path) -> None:
    root, _, _, recovery = pair
    before = objects(root)
    other_recovery, _ = crypto.new_recovery_key()
    for wrong in ("not the passphrase", other_recovery):
        c = new_store(tmp_path / f"c{len(wrong)}.db")
        counting = CountingRemote(FolderRemote(root.as_uri()))
        with pytest.raises(WrongKey, match="wrong (passphrase|recovery key)"):
            add(c, root, wrong, encrypt=False, client=counting)
        assert counting.calls["put"] == 0 and counting.calls["delete"] == 0 and counting.calls["get"] >= 2
        assert sync.list_remotes(c) == []
    assert objects(root) == before
    assert sorted(p.name for p in key_file("x").parent.iterdir()) == sorted(
        f"{s}.json" for s in {r.store_id for r in sync.list_remotes(pair[1])})


@pytest.mark.parametrize("attack", ["flip", "move", "swap", "replay"])
def test_an_object_altered_moved_swapped_or_replayed_is_refused(
        pair: tuple[Path, Store, Store, str], attack: str) -> None:
    root, a, b, _ = pair
    log(a, "second")
    sync.sync(a)
    host = a.host_id
    one, two = root / f"log/{host}/000000000001.jsonl.gz", root / f"log/{host}/000000000002.jsonl.gz"
    if attack == "flip":
        data = bytearray(two.read_bytes())
        data[len(data) // 2] ^= 0x01
        two.write_bytes(bytes(data))
    elif attack == "move":  # changeset 1 put in place of 2: its name is its associated data
        two.write_bytes(one.read_bytes())
    elif attack == "swap":
        x, y = one.read_bytes(), two.read_bytes()
        one.write_bytes(y)
        two.write_bytes(x)
    else:  # replayed under another host's name
        other = root / "log/01aaaaaaaaaaaaaaaaaaaaaaaa/000000000002.jsonl.gz"
        other.parent.mkdir(parents=True)
        other.write_bytes(two.read_bytes())
    before = dump(b)
    if attack == "replay":
        # Nothing names that host's head: it is never read, and nothing changes.
        sync.sync(b)
        assert len(dump(b)["responses"]) == 2
        return
    with pytest.raises(CorruptObject, match="does not decrypt"):
        sync.sync(b)
    # Nothing of that host's refused log is applied (the first changeset is
    # vouched for only by the second's hash chain).
    assert dump(b) == before and before["responses"] == []


def test_a_plain_client_never_writes_into_an_encrypted_remote(tmp_path: Path) -> None:
    root = tmp_path / "remote"
    root.mkdir()
    a, plain = new_store(tmp_path / "a.db"), new_store(tmp_path / "plain.db")
    sync.add_remote(plain, "origin", root.as_uri())  # added while the folder was still empty
    add(a, root)
    log(plain, SECRET)
    counting = CountingRemote(FolderRemote(root.as_uri()))
    with pytest.raises(WrongKey, match="encrypted, and this machine added it without its key"):
        sync.sync(plain, client=counting)
    assert counting.calls["put"] == 0
    assert all(SECRET.encode() not in readable(d) for d in objects(root).values())
    # An older build reads format.json's version and stops before anything else.
    fmt = json.loads((root / "format.json").read_text())
    assert fmt["format"] > FORMAT and fmt["cipher"] == crypto.CIPHER


def test_after_a_passphrase_change_the_old_one_is_refused_and_both_machines_sync(
        pair: tuple[Path, Store, Store, str], tmp_path: Path) -> None:
    root, a, b, recovery = pair
    sync.change_passphrase(a, passphrase="a brand new passphrase", scrypt_n=CHEAP)
    with pytest.raises(WrongKey):
        add(new_store(tmp_path / "c.db"), root, PASS, encrypt=False)
    add(new_store(tmp_path / "d.db"), root, "a brand new passphrase", encrypt=False)
    add(new_store(tmp_path / "e.db"), root, recovery, encrypt=False)  # the recovery key still opens it
    log(b, "b after the change")
    sync.sync(b)
    sync.sync(a)
    assert dump(a) == dump(b)


def test_after_rotate_key_objects_of_both_keys_read_and_compact_rewrites_them(
        pair: tuple[Path, Store, Store, str], tmp_path: Path) -> None:
    root, a, b, _ = pair
    first = sync.status(a).key_id
    new = sync.rotate_key(a)
    assert new != first and sync.status(a).key_id == new
    log(a, "under the new key")
    sync.sync(a)
    sealed_with = {k: crypto.Sealed.parse(d).key_id for k, d in objects(root).items()  # type: ignore[union-attr]
                   if k.startswith("log/")}
    assert set(sealed_with.values()) == {first, new}
    sync.sync(b)  # learns the new key from keys/ on its own
    assert dump(a) == dump(b)
    c = new_store(tmp_path / "c.db")
    add(c, root, encrypt=False)
    sync.sync(c)
    assert dump(c) == dump(a)
    sync.compact(a, margin=0)
    left = {crypto.Sealed.parse(d).key_id for k, d in objects(root).items()  # type: ignore[union-attr]
            if not k.startswith(("keys/", "format.json", "gc/", "locks/"))}
    assert left == {new}
    log(b, "b writes under the new key too")
    sync.sync(b)
    assert crypto.Sealed.parse(max((k, d) for k, d in objects(root).items()
                                   if k.startswith(f"log/{b.host_id}"))[1]).key_id == new  # type: ignore[union-attr]


def test_verify_opens_every_object_and_reports_one_that_does_not(pair: tuple[Path, Store, Store, str]) -> None:
    root, a, _, _ = pair
    log(a, "two")
    sync.sync(a)
    found = sync.verify(a)
    assert not found.problems and found.read == found.objects == 2
    one = root / f"log/{a.host_id}/000000000001.jsonl.gz"
    data = bytearray(one.read_bytes())
    data[-1] ^= 1
    one.write_bytes(bytes(data))
    found = sync.verify(a)
    assert [p.object for p in found.problems] == [f"log/{a.host_id}/000000000001.jsonl.gz"]
    assert "does not decrypt" in found.problems[0].what


def test_keys_never_reach_the_database_or_the_json(pair: tuple[Path, Store, Store, str], tmp_path: Path) -> None:
    _, a, _, recovery = pair
    ring = json.loads(key_file(sync.list_remotes(a)[0].store_id or "").read_text())
    assert oct(key_file("x").parent.stat().st_mode & 0o777) == "0o700"
    assert oct(key_file(ring["store"]).stat().st_mode & 0o777) == "0o600"
    a.conn.commit()
    secrets = [PASS.encode(), recovery.encode(), ring["master"].encode(), *(v.encode() for v in ring["data"].values())]
    import base64

    secrets += [base64.b64decode(ring["master"]), *(base64.b64decode(v) for v in ring["data"].values())]
    raw = (tmp_path / "a.db").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("a.db*") if p.name != "a.db")
    text = json.dumps([sync.status(a).to_json(), [r.to_json() for r in sync.list_remotes(a)]])
    for s in secrets:
        assert s not in raw and s.decode("latin-1") not in text


def test_bad_keys_and_formats_are_one_line_errors_that_write_nothing(tmp_path: Path) -> None:
    root = tmp_path / "remote"
    root.mkdir()
    a = new_store(tmp_path / "a.db")
    add(a, root)
    master = json.loads((root / "keys/master.json").read_text())

    def joins(expect: type[Exception], match: str) -> None:
        c = new_store()
        counting = CountingRemote(FolderRemote(root.as_uri()))
        with pytest.raises(expect, match=match):
            add(c, root, encrypt=False, client=counting)
        assert counting.calls["put"] == 0 and sync.list_remotes(c) == []

    (root / "keys/master.json").write_text(json.dumps({**master, "passphrase": {
        **master["passphrase"], "n": 1 << 40}}))
    joins(CorruptObject, "scrypt parameters out of bounds")
    (root / "keys/master.json").write_bytes(b"\x1f\x8b garbage")
    joins(CorruptObject, "not a localfirst key object")
    (root / "keys/master.json").write_text(json.dumps(master))
    key = next(p for p in (root / "keys").iterdir() if p.name != "master.json")
    saved = key.read_bytes()
    key.write_text(json.dumps({**json.loads(saved), "sealed": crypto.b64(b"x" * 60)}))
    joins(CorruptObject, "damaged or not this remote's key")
    key.write_bytes(saved)
    fmt = json.loads((root / "format.json").read_text())
    (root / "format.json").write_text(json.dumps({**fmt, "cipher": "ROT13"}))
    joins(CorruptObject, "cipher this localfirst does not know")
    (root / "format.json").write_text(json.dumps({**fmt, "format": 99}))
    joins(FormatTooNew, "upgrade localfirst")
    (root / "format.json").write_text(json.dumps(fmt))
    with pytest.raises(BadInput, match="empty"):
        add(new_store(), root, "", encrypt=False)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    for short, why in (("", "empty"), ("short", "at least 8")):
        with pytest.raises(BadInput, match=why):
            add(new_store(), fresh, short)
    assert objects(fresh) == {}


def test_a_machine_whose_key_is_not_the_remotes_is_told_and_writes_nothing(
        pair: tuple[Path, Store, Store, str], tmp_path: Path) -> None:
    root, a, _, _ = pair
    store_id = sync.list_remotes(a)[0].store_id or ""
    ring = json.loads(key_file(store_id).read_text())
    ring["master"] = crypto.b64(os.urandom(32))  # a key this remote never had
    key_file(store_id).write_text(json.dumps(ring))
    log(a, "must not leave")
    counting = CountingRemote(FolderRemote(root.as_uri()))
    with pytest.raises(WrongKey, match="does not open"):
        sync.sync(a, client=counting)
    assert counting.total == 0
    key_file(store_id).unlink()
    with pytest.raises(WrongKey, match="no key for it"):
        sync.sync(a, client=counting)
    assert counting.total == 0


def test_the_default_passphrase_stretching_is_scrypt_n_2_17(tmp_path: Path) -> None:
    root = tmp_path / "remote"
    root.mkdir()
    sync.add_remote(new_store(), "origin", root.as_uri(), encrypt=True, passphrase=PASS)
    params = json.loads((root / "keys/master.json").read_text())["passphrase"]
    assert (params["kdf"], params["n"], params["r"], params["p"]) == ("scrypt", 1 << 17, 8, 1)


def test_the_cli_creates_joins_and_refuses_as_a_person_meets_it(tmp_path: Path) -> None:
    url = (tmp_path / "remote").as_uri()
    env_a = {"LOCALFIRST_HOME": str(tmp_path / "a"), "LOCALFIRST_PASSPHRASE": PASS}
    made = run_subprocess("remote", "add", "origin", url, "--encrypt", env=env_a)
    assert made.returncode == 0, made.stderr
    assert "(encrypted)" in made.stdout and "Recovery key, shown only now: lf-rk-" in made.stdout
    assert PASS not in made.stdout + made.stderr
    env_b = {"LOCALFIRST_HOME": str(tmp_path / "b"), "LOCALFIRST_PASSPHRASE": "wrong passphrase here"}
    wrong = run_subprocess("remote", "add", "origin", url, env=env_b)
    assert wrong.returncode == 11 and wrong.stderr.startswith("Error: wrong passphrase") and \
        len(wrong.stderr.splitlines()) == 1
    assert not (tmp_path / "b" / "keys").exists()
    (tmp_path / "pass").write_text(PASS + "\n")
    env_b.pop("LOCALFIRST_PASSPHRASE")
    missing = run_subprocess("remote", "add", "origin", url, "--passphrase-file", str(tmp_path / "nope"), env=env_b)
    assert missing.returncode == 2 and "cannot read the passphrase file" in missing.stderr
    none = run_subprocess("remote", "add", "origin", url, env=env_b)
    assert none.returncode == 2 and "LOCALFIRST_PASSPHRASE" in none.stderr
    joined = run_subprocess("remote", "add", "origin", url, "--passphrase-file", str(tmp_path / "pass"), env=env_b)
    assert joined.returncode == 0, joined.stderr
    listed = run_subprocess("remote", "list", "--json", env=env_b)
    entry = json.loads(listed.stdout)[0]
    assert entry["encrypted"] is True and len(entry["key_id"]) == 26
    status = run_subprocess("remote", "status", env=env_b)
    assert f"(encrypted, key {entry['key_id']})" in status.stdout
    verified = run_subprocess("verify", env=env_b)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    for f in (tmp_path / "b" / "keys").iterdir():
        f.write_text(f.read_text().replace('"master": "', '"master": "AAAA', 1))
    bad = run_subprocess("verify", env=env_b)
    assert bad.returncode == 11 and bad.stderr.startswith("Error: ") and len(bad.stderr.splitlines()) == 1
