"""Helpers shared by the sync tests: stores, remotes, counting and faults."""

from __future__ import annotations

import gzip
import json
import socket
from collections import Counter
from pathlib import Path
from typing import Any

from localfirst.db import connect
from localfirst.records import Attachment, Part, Response
from localfirst.store import Store
from sync.remotes import ObjectInfo, Remote
from sync.tables import columns, present

# A host and an HLC for hand-written changesets.
HOST = "01h" + "0" * 20 + "hst"
HLC = f"1700000000000.0000.{HOST}"


def del_lines(n: int) -> list[str]:
    """``n`` changeset lines, each deleting another response."""
    return [json.dumps({"op": "del", "table": "responses", "key": f"01h{i:023d}", "hlc": HLC}) for i in range(n)]


def raw_changeset(lines: list[str]) -> bytes:
    """A changeset of these operation lines, as written, under a header that counts them."""
    from sync.changeset import Header

    head = Header(store="01h000000000000000000store", host=HOST, seq=1, prev="", schema=2, rows=len(lines))
    return gzip.compress("\n".join([json.dumps(head.to_json()), *lines]).encode() + b"\n", mtime=0)


class Crash(BaseException):
    """A simulated crash: nothing in the code under test catches it."""


def new_store(path: Path | None = None) -> Store:
    return Store.open(path) if path is not None else Store(connect(":memory:"))


def log(store: Store, prompt: str = "hello", *, cid: str | None = None, attachment: bytes | None = None) -> str:
    parts = [Part(type="text", role="assistant", text=f"answer to {prompt}")]
    if attachment is not None:
        parts.insert(0, Part(type="attachment", role="user", attachment=Attachment(attachment, "text/plain")))
    return store.log(Response(model="m", prompt=prompt, conversation_id=cid, parts=parts))


def dump(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every synced row and tombstone, by table, sorted: equal dumps mean equal histories."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for table in present(store.conn):
        cols = columns(store.conn, table)
        out[table.name] = sorted(
            store.conn.execute(f"SELECT {', '.join(cols)} FROM {table.name}").fetchall(), key=repr
        )
    out["tombstones"] = sorted(store.conn.execute("SELECT tbl, key, hlc FROM tombstones").fetchall())
    return out


class CountingRemote:
    """Counts calls by kind and remembers every key read or listed."""

    def __init__(self, inner: Remote) -> None:
        self.inner = inner
        self.url = inner.url
        self.calls: Counter[str] = Counter()
        self.keys: list[tuple[str, str]] = []

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def reset(self) -> None:
        self.calls.clear()
        self.keys.clear()

    def list(self, prefix: str) -> dict[str, str]:
        self.calls["list"] += 1
        self.keys.append(("list", prefix))
        return self.inner.list(prefix)

    def get(self, key: str, *, max_bytes: int | None = None) -> bytes:
        self.calls["get"] += 1
        self.keys.append(("get", key))
        return self.inner.get(key, max_bytes=max_bytes)

    def server_time(self) -> float | None:
        return self.inner.server_time()

    def delete(self, key: str) -> None:
        self.calls["delete"] += 1
        self.keys.append(("delete", key))
        self.inner.delete(key)

    def head(self, key: str) -> ObjectInfo:
        self.calls["head"] += 1
        self.keys.append(("head", key))
        return self.inner.head(key)

    def put(self, key: str, data: bytes, *, sha256: str, create_only: bool, if_match: str | None = None) -> str:
        self.calls["put"] += 1
        self.keys.append(("put", key))
        return self.inner.put(key, data, sha256=sha256, create_only=create_only, if_match=if_match)


class CrashingRemote(CountingRemote):
    """Crashes at call number ``at`` (1-based), before or after it takes effect."""

    def __init__(self, inner: Remote, *, at: int, after: bool) -> None:
        super().__init__(inner)
        self.at = at
        self.after = after
        self.crashed = False

    def _maybe(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        n = self.total
        if n == self.at and not self.after:
            self.crashed = True
            raise Crash(f"before call {n}")
        result = fn(*args, **kwargs)
        if n == self.at and self.after:
            self.crashed = True
            raise Crash(f"after call {n}")
        return result

    def list(self, prefix: str) -> dict[str, str]:
        self.calls["list"] += 1
        return self._maybe(self.inner.list, prefix)  # type: ignore[no-any-return]

    def get(self, key: str, *, max_bytes: int | None = None) -> bytes:
        self.calls["get"] += 1
        return self._maybe(self.inner.get, key, max_bytes=max_bytes)  # type: ignore[no-any-return]

    def head(self, key: str) -> ObjectInfo:
        self.calls["head"] += 1
        return self._maybe(self.inner.head, key)  # type: ignore[no-any-return]

    def put(self, key: str, data: bytes, *, sha256: str, create_only: bool, if_match: str | None = None) -> str:
        self.calls["put"] += 1
        return self._maybe(  # type: ignore[no-any-return]
            self.inner.put, key, data, sha256=sha256, create_only=create_only, if_match=if_match
        )

    def delete(self, key: str) -> None:
        self.calls["delete"] += 1
        self._maybe(self.inner.delete, key)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ring(root: Path) -> Any:
    """The keyring of the folder remote at ``root`` when it is encrypted (this test's home holds it)."""
    import json

    from sync.keys import ENCRYPTED_FORMAT, load_keyring

    fmt = root / "format.json"
    if not fmt.exists():
        return None
    doc = json.loads(fmt.read_text())
    return load_keyring(doc["store"], "test") if doc.get("format") == ENCRYPTED_FORMAT else None


def raw_get(root: Path, key: str, *, strict: bool = True) -> bytes:
    """The object at ``key`` of a folder remote as sync sees it: opened when the remote is encrypted."""
    from sync.keys import is_sealed_key

    data = (root / key).read_bytes()
    ring = _ring(root)
    if ring is None or not is_sealed_key(key):
        return data
    from sync.crypto import Sealed

    header = Sealed.parse(data)
    plain = ring.key(header.key_id).open(key, data) if header else None
    if plain is None and not strict:
        return data
    assert plain is not None, f"{key} does not open"
    return plain  # type: ignore[no-any-return]


def raw_put(root: Path, key: str, data: bytes) -> None:
    """Write ``data`` at ``key`` by hand, sealed as sync would seal it when the remote is encrypted."""
    from sync.keys import is_sealed_key

    ring = _ring(root)
    if ring is not None and is_sealed_key(key):
        data = ring.newest().seal(key, data)
    (root / key).parent.mkdir(parents=True, exist_ok=True)
    (root / key).write_bytes(data)
def mark_pushed(store: Store) -> None:
    """Every remote of ``store`` has pushed everything queued so far (its outbox is empty)."""
    store.conn.execute("UPDATE sync_outbox SET pushed = (SELECT coalesce(max(id), 0) FROM sync_changes)")
    store.conn.execute("DELETE FROM sync_changes")
    store.conn.execute("DELETE FROM sync_seed")
