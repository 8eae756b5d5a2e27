"""Team libraries: a remote of scope ``templates`` that only listed writers can change.

On the remote, beside the usual layout:

    format.json            as for any remote, with "scope": "templates"
    heads/writers.json     the writer list: the owner's public key, the writer keys, and, for each
                           removed writer, the changesets of theirs that stay valid; signed by the
                           owner key; only the owner writes it (compare-and-swap). It lives under
                           heads/ so that the LIST every pull makes shows when it changed: an idle
                           sync still costs one request.

Every changeset on a team remote names its writer's public key and carries
an Ed25519 signature of its header and lines; every snapshot manifest too.
A member pins the owner key's fingerprint when joining. A writer list not
signed by that key, a changeset or snapshot not signed by a listed writer,
and any row that is not a template of this team are refused, whoever could
write them into the bucket.

On a machine, ``$LOCALFIRST_HOME/keys/team-<store>.json`` (its owner only)
holds this machine's writer key for the team, and, on the owner's machine,
the owner key. Neither is ever written to the database.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localfirst.errors import BadInput, ConfigError, CorruptObject, ReadOnly, WrongKey
from localfirst.paths import home

from .changeset import Header, signed_text
from .check import Checked
from .keys import write_private

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = [
    "WRITERS_KEY", "TEAM_TABLES", "TeamKeys", "Writers", "fingerprint", "check_fingerprint", "check_writer_key",
    "new_keys", "load_keys", "signer", "check_signature", "check_scope", "before_apply", "after_apply", "sign_bytes",
    "verify_bytes", "SNAPSHOT_DOMAIN", "scope_tables", "writable",
]

WRITERS_KEY = "heads/writers.json"
WRITERS_TYPE = "localfirst-team-writers"
KEYS_TYPE = "localfirst-team-keys"
#: what a team remote carries: templates, their versions and labels (and templates' tombstones)
TEAM_TABLES = frozenset({"templates", "template_versions", "template_labels"})
MAX_WRITERS = 10_000
_FINGERPRINT = re.compile(r"^SHA256:[A-Za-z0-9_-]{43}$")
_PUBLIC = re.compile(r"^ed25519:[A-Za-z0-9_-]{43}$")
_SIG = re.compile(r"^[A-Za-z0-9_-]{86}$")
_HOST = re.compile(r"^[0-7][0-9a-hjkmnp-tv-z]{25}$")
# Each signature says what it signs, so one can never stand for another.
CHANGESET_DOMAIN = b"localfirst changeset v1\n"
SNAPSHOT_DOMAIN = b"localfirst snapshot manifest v1\n"
WRITERS_DOMAIN = b"localfirst writer list v1\n"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _private(raw: bytes) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(raw)


def _public_text(raw_private: bytes) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return "ed25519:" + _b64(_private(raw_private).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def fingerprint(public: str) -> str:
    """The fingerprint members pin: SHA-256 of the owner's public key."""
    return "SHA256:" + _b64(hashlib.sha256(_unb64(public.removeprefix("ed25519:"))).digest())


def check_fingerprint(text: str) -> str:
    text = text.strip()
    if not _FINGERPRINT.fullmatch(text):
        raise BadInput(f"{text[:70]!r} is not a team fingerprint: it is SHA256: followed by 43 letters, digits, "
                       "- or _, as `localfirst team create` printed it")
    return text


def check_writer_key(text: str) -> str:
    text = text.strip()
    if not _PUBLIC.fullmatch(text) or not _valid_public(text):
        raise BadInput(f"{text[:70]!r} is not a writer key: it is ed25519: followed by 43 letters, digits, - or _, "
                       "as `localfirst team whoami` prints it")
    return text


def _valid_public(text: str) -> bool:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(_unb64(text.removeprefix("ed25519:")))
    except (ValueError, binascii.Error):
        return False
    return True


def sign_bytes(raw_private: bytes, domain: bytes, message: bytes) -> str:
    return _b64(_private(raw_private).sign(domain + message))


def verify_bytes(public: str, sig: str, domain: bytes, message: bytes) -> bool:
    """Whether ``sig`` is ``public``'s signature of ``message`` (any malformed input: no)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not (isinstance(public, str) and _PUBLIC.fullmatch(public) and isinstance(sig, str) and _SIG.fullmatch(sig)):
        return False
    try:
        key = Ed25519PublicKey.from_public_bytes(_unb64(public.removeprefix("ed25519:")))
        key.verify(_unb64(sig), domain + message)
    except (ValueError, binascii.Error, InvalidSignature):
        return False
    return True


# -- this machine's keys ------------------------------------------------------

def key_file_of(store: str, writer: str) -> Path:
    """One file per team and writer key: two databases on one machine are two writers."""
    return home() / "keys" / f"team-{store}-{hashlib.sha256(writer.encode()).hexdigest()[:16]}.json"


@dataclass(frozen=True)
class TeamKeys:
    """This machine's writer key for one team, and the owner key on the owner's machine."""

    store: str
    writer: bytes = field(repr=False)
    owner: bytes | None = field(default=None, repr=False)

    @property
    def writer_key(self) -> str:
        return _public_text(self.writer)

    @property
    def owner_key(self) -> str | None:
        return None if self.owner is None else _public_text(self.owner)

    def save(self) -> None:
        doc: dict[str, Any] = {"type": KEYS_TYPE, "store": self.store, "writer": _b64(self.writer)}
        if self.owner is not None:
            doc["owner"] = _b64(self.owner)
        write_private(key_file_of(self.store, self.writer_key), doc)


def new_keys(store: str, *, owner: bool) -> TeamKeys:
    """Fresh keys for a team (a writer key; an owner key too for its creator), not yet saved."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    def raw() -> bytes:
        return Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    return TeamKeys(store, raw(), raw() if owner else None)


def load_keys(store: str, team: str, writer: str | None) -> TeamKeys:
    """This machine's keys for ``team`` (whose store id is ``store`` and writer key ``writer``)."""
    how = f"join the team again: `localfirst remote remove {team}`, then `localfirst team join {team} URL --trust ...`"
    if not writer:
        raise ConfigError(f"this machine has no writer key for team {team!r}; {how}")
    path = key_file_of(store, writer)
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"this machine has no key file for team {team!r} ({path}); {how}") from None
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ConfigError(f"the key file {path} of team {team!r} cannot be read; {how}") from exc

    def raw(name: str) -> bytes | None:
        value = doc.get(name) if isinstance(doc, dict) else None
        if value is None:
            return None
        try:
            data = _unb64(value) if isinstance(value, str) else b""
        except (ValueError, binascii.Error):
            data = b""
        if len(data) != 32:
            raise ConfigError(f"the key file {path} of team {team!r} is damaged; {how}")
        return data

    found = raw("writer")
    if not isinstance(doc, dict) or doc.get("store") != store or found is None:
        raise ConfigError(f"the key file {path} of team {team!r} is damaged; {how}")
    keys = TeamKeys(store, found, raw("owner"))
    if keys.writer_key != writer:
        raise ConfigError(f"the key file {path} of team {team!r} holds another writer key; {how}")
    return keys


# -- the writer list ----------------------------------------------------------

_SHA = re.compile(r"^[0-9a-f]{64}$")
_SID = re.compile(r"^[0-7][0-9a-hjkmnp-tv-z]{25}$")


@dataclass(frozen=True)
class Removed:
    """What stays valid of a removed writer's: per host its last changeset (seq, sha256), and its snapshots."""

    hosts: dict[str, tuple[int, str]] = field(default_factory=dict)
    snapshots: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"hosts": {h: {"seq": q, "sha256": sha} for h, (q, sha) in sorted(self.hosts.items())},
                "snapshots": sorted(self.snapshots)}

    @classmethod
    def parse(cls, doc: Any) -> Removed:
        """Raises ValueError on anything malformed."""
        if not isinstance(doc, dict) or not isinstance(doc.get("hosts"), dict) \
                or not isinstance(doc.get("snapshots"), list) or len(doc["hosts"]) > 1000 \
                or len(doc["snapshots"]) > 1000:
            raise ValueError("removed")
        hosts = {}
        for host, at in doc["hosts"].items():
            seq, sha = (at.get("seq"), at.get("sha256")) if isinstance(at, dict) else (None, None)
            if not (isinstance(host, str) and _HOST.fullmatch(host) and type(seq) is int and 0 < seq < 10**12
                    and isinstance(sha, str) and _SHA.fullmatch(sha)):
                raise ValueError(host)
            hosts[host] = (seq, sha)
        if not all(isinstance(sid, str) and _SID.fullmatch(sid) for sid in doc["snapshots"]):
            raise ValueError("snapshots")
        return cls(hosts, tuple(doc["snapshots"]))


@dataclass(frozen=True)
class Writers:
    """Who may write to a team remote, as its owner signed it."""

    store: str
    owner: str
    version: int
    writers: tuple[str, ...]
    #: a removed writer's key -> what of theirs stays valid: per host, the last changeset
    #: (seq and sha256, so the history up to it cannot be rewritten), and the snapshots they made
    removed: dict[str, Removed] = field(default_factory=dict)
    sig: str = ""

    def _doc(self) -> dict[str, Any]:
        return {"type": WRITERS_TYPE, "store": self.store, "owner": self.owner, "version": self.version,
                "writers": sorted(self.writers),
                "removed": {k: v.to_json() for k, v in sorted(self.removed.items())}}

    def body(self) -> bytes:
        """What the owner signs."""
        return json.dumps(self._doc(), sort_keys=True, separators=(",", ":")).encode()

    def to_bytes(self) -> bytes:
        return json.dumps({**self._doc(), "sig": self.sig}, sort_keys=True, separators=(",", ":")).encode()

    def signed(self, owner_private: bytes) -> Writers:
        return replace(self, sig=sign_bytes(owner_private, WRITERS_DOMAIN, self.body()))

    def allows(self, writer: str, host: str, seq: int) -> bool:
        """Whether ``writer``'s signature makes changeset ``seq`` of ``host`` valid."""
        if writer in self.writers:
            return True
        gone = self.removed.get(writer)
        upto = gone.hosts.get(host) if gone is not None else None
        return upto is not None and seq <= upto[0]

    def pins(self) -> dict[str, tuple[int, str]]:
        """Per host a removed writer wrote under: the last changeset that stays valid, and its sha256."""
        return {h: at for gone in self.removed.values() for h, at in gone.hosts.items()}

    def signed_snapshot(self, writer: str, sid: str) -> bool:
        """Whether ``writer`` may have signed snapshot ``sid``: a writer now, or one removed after making it."""
        gone = self.removed.get(writer)
        return writer in self.writers or (gone is not None and sid in gone.snapshots)

    @classmethod
    def parse(cls, data: bytes, *, where: str, store: str, trusted: str, signed: bool = True) -> Writers:
        """A writer list from the remote, checked: its form, its team, its owner's fingerprint, its signature.

        ``signed=False`` skips the signature: for the copy this machine kept
        after checking it, so that an idle sync imports no cryptography.
        """
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError):
            doc = None
        if not isinstance(doc, dict) or doc.get("type") != WRITERS_TYPE:
            raise CorruptObject(f"{where} is not a team's writer list")
        try:
            owner, version, sig = doc["owner"], doc["version"], doc["sig"]
            writers, removed = doc["writers"], doc["removed"]
            ok = (isinstance(owner, str) and _PUBLIC.fullmatch(owner) is not None and type(version) is int
                  and 0 < version < 2**53 and isinstance(sig, str) and isinstance(writers, list)
                  and isinstance(removed, dict) and len(writers) + len(removed) <= MAX_WRITERS
                  and all(isinstance(w, str) and _PUBLIC.fullmatch(w) for w in writers)
                  and all(isinstance(k, str) and _PUBLIC.fullmatch(k) for k in removed))
            gone = {k: Removed.parse(v) for k, v in removed.items()} if ok else {}
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise CorruptObject(f"{where} is damaged: a field is missing or malformed")
        if doc.get("store") != store:
            raise CorruptObject(f"{where} belongs to another team (store {str(doc.get('store'))[:30]!r})")
        seen = fingerprint(owner)
        if seen != trusted:
            raise WrongKey(f"{where} names an owner key with fingerprint {seen}, not the {trusted} this machine "
                           "trusts: it is another team, or someone replaced the list; nothing of it was used")
        found = cls(store, owner, version, tuple(sorted(set(writers))), gone, sig)
        if signed and not verify_bytes(owner, sig, WRITERS_DOMAIN, found.body()):
            raise CorruptObject(f"{where} is not signed by the team's owner key (it was altered or forged); "
                                "it was refused")
        return found


# -- signing and checking changesets -----------------------------------------

def signer(keys: TeamKeys) -> Callable[[Header, list[str]], Header]:
    """What :func:`sync.changeset.encode` calls to sign a changeset with this machine's writer key."""
    writer = keys.writer_key

    def sign(header: Header, lines: list[str]) -> Header:
        named = replace(header, writer=writer, sig=None)
        return replace(named, sig=sign_bytes(keys.writer, CHANGESET_DOMAIN, signed_text(named, lines)))

    return sign


def check_signature(header: Header, lines: list[str], writers: Writers | None, *, where: str, team: str) -> str:
    """Refuse a changeset not signed by a writer ``writers`` allows; returns the signing key."""
    who = f"{where}: changeset {header.seq} of host {header.host}"
    if header.writer is None or header.sig is None:
        raise CorruptObject(f"{who} is not signed; team {team!r} takes only changesets its writers signed: "
                            "it was refused")
    if writers is None or not writers.allows(header.writer, header.host, header.seq):
        raise CorruptObject(f"{who} is signed by {header.writer}, which is not on the writer list of team "
                            f"{team!r}: it was refused")
    if not verify_bytes(header.writer, header.sig, CHANGESET_DOMAIN, signed_text(header, lines)):
        raise CorruptObject(f"{who} does not match its signature (altered after it was signed): it was refused")
    return header.writer


def scope_tables(team: str | None) -> frozenset[str] | None:
    """The tables a remote's outbox holds: a team's, or every one (None)."""
    return TEAM_TABLES | {"tombstones"} if team is not None else None


def check_scope(conn: sqlite3.Connection, batch: Checked, team: str | None, *, where: str) -> None:
    """Refuse a batch holding anything outside its remote's scope, before any of it is applied.

    ``team`` is the team remote's store id, or None for a personal remote.
    A team remote carries only that team's templates, versions, labels and
    template tombstones, and every version or label it brings travels with
    its template's row (or names one already here as this team's), so a
    team can never reach a template this machine files elsewhere, even one
    that arrives later. A personal remote carries no team's template. A
    template deleted here under one scope is never touched from another.
    """
    rows, cols = batch.rows, batch.schema.columns
    if team is not None:
        outside = sorted(set(rows) - TEAM_TABLES) or sorted({t for t, _, _ in batch.dels} - {"templates"})
        if outside:
            raise CorruptObject(f"{where} holds {outside[0]} rows, and a team library carries only templates: "
                                "it was refused")
    other = "a team's" if team is None else "a personal or another team's"
    here: set[str] = set()
    if rows.get("templates"):
        at, key_at = cols["templates"].index("team"), cols["templates"].index("id")
        for row in rows["templates"]:
            if row[at] != team:
                what = "another team's template" if team is not None and row[at] else (
                    "a personal template" if team is not None else "a team's template")
                raise CorruptObject(f"{where} holds {what} ({row[key_at]}), which this remote may not carry: "
                                    "it was refused")
            here.add(row[key_at])
    parents: set[str] = set()
    for name in ("template_versions", "template_labels"):
        if rows.get(name):
            at = cols[name].index("template_id")
            parents.update(r[at] for r in rows[name])
    touched = here | parents | {key for tbl, key, _ in batch.dels if tbl == "templates"}
    if not touched:
        return
    keys = json.dumps(sorted(touched))
    clash = conn.execute(
        "SELECT id, 'is filed' FROM templates WHERE id IN (SELECT value FROM json_each(?)) AND team IS NOT ? LIMIT 1",
        [keys, team]).fetchone()
    if not clash and team is not None:
        # A personal deletion (or another team's) is never taken over by a team.
        clash = conn.execute(
            "SELECT key, 'was deleted' FROM tombstones WHERE tbl = 'templates' "
            "AND key IN (SELECT value FROM json_each(?)) AND team IS NOT ? LIMIT 1", [keys, team]).fetchone()
    if not clash and rows.get("template_versions"):
        at = cols["template_versions"].index("id")
        clash = conn.execute(
            "SELECT v.template_id, 'is filed' FROM template_versions v JOIN templates t ON t.id = v.template_id "
            "WHERE v.id IN (SELECT value FROM json_each(?)) AND t.team IS NOT ? LIMIT 1",
            [json.dumps(sorted({r[at] for r in rows["template_versions"]})), team]).fetchone()
    if clash:
        how = "is" if clash[1] == "is filed" else "was deleted"
        raise CorruptObject(f"{where} changes template {clash[0]}, which {how} here as {other} template: "
                            "it was refused")
    if team is not None and (orphans := parents - here):
        known = {r[0] for r in conn.execute(
            "SELECT id FROM templates WHERE id IN (SELECT value FROM json_each(?)) AND team = ? "
            "UNION SELECT key FROM tombstones WHERE tbl = 'templates' AND key IN (SELECT value FROM json_each(?)) "
            "AND team = ?", [json.dumps(sorted(orphans)), team, json.dumps(sorted(orphans)), team])}
        if orphans - known:
            raise CorruptObject(f"{where} holds a version or label of template {sorted(orphans - known)[0]} "
                                "without the template's row, and no such template of this team is here: "
                                "it was refused")


def before_apply(conn: sqlite3.Connection, batch: Checked, team: str | None) -> None:
    """A personal template whose id a team deleted here (an id only a hostile writer could know) stays
    personal: the team's tombstone of that id is dropped, so it cannot delete the template as it arrives."""
    if team is not None or not batch.rows.get("templates"):
        return
    at = batch.schema.columns["templates"].index("id")
    conn.execute("DELETE FROM tombstones WHERE tbl = 'templates' AND team IS NOT NULL "
                 "AND key IN (SELECT value FROM json_each(?))",
                 [json.dumps(sorted({r[at] for r in batch.rows["templates"]}))])


def after_apply(conn: sqlite3.Connection, batch: Checked, team: str | None) -> None:
    """File the tombstones a team remote brought under that team (inside the applying transaction)."""
    if team is None:
        return
    keys = [key for tbl, key, _ in batch.dels if tbl == "templates"]
    if keys:
        conn.execute("UPDATE tombstones SET team = ? WHERE tbl = 'templates' "
                     "AND key IN (SELECT value FROM json_each(?))", [team, json.dumps(keys)])


def writable(read_only: bool, team: str, what: str) -> None:
    """Refuse ``what`` (a push, a compaction) on a team this machine joined read-only."""
    if read_only:
        raise ReadOnly(f"this machine joined team {team!r} read-only, so it does not {what}; nothing was written")
