"""Keys of encrypted remotes: where they live on a machine and on the remote.

On the remote (readable by anyone who can read the bucket, useless without
the passphrase or the recovery key):

    format.json          {"format": 2, "cipher": "AES-256-GCM", "check": ...}: the key check,
                         the master key's encryption of a constant; created once
    keys/master.json     the master key, wrapped under the passphrase and under the recovery key
    keys/<key_id>.json   a data key, wrapped under the master key; one per rotation

On a machine: ``$LOCALFIRST_HOME/keys/<store>.json``, readable by its owner
only, holds the master key and the data keys of the remote whose store id is
``<store>``. Nothing of it is ever written to the database, so a copied or
exported database carries no key.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from localfirst import ids
from localfirst.errors import BadInput, ConfigError, CorruptObject, WrongKey
from localfirst.paths import home

from . import crypto
from .crypto import DataKey, Scrypt_, b64, unb64
from .remotes import ObjectExists, ObjectMissing, PreconditionFailed, Remote, RemoteConfig

__all__ = [
    "Keyring", "Secret", "MASTER_KEY", "ENCRYPTED_FORMAT", "create_keys", "join_keys", "change_passphrase",
    "rotate_key", "load_keyring", "key_file", "key_id", "check_passphrase", "is_sealed_key", "fetch_key",
    "write_private",
]

MASTER_KEY = "keys/master.json"
ENCRYPTED_FORMAT = 2
_CHECK = b"localfirst key check v1"
_KEY_OBJECT = re.compile(r"^keys/([0-7][0-9a-hjkmnp-tv-z]{25})\.json$")
_SMALL = 64 * 1024

#: A passphrase, or a function that asks for one (its argument: whether it is new, so asked twice).
Secret = str | Callable[[bool], str]


def is_sealed_key(key: str) -> bool:
    """Whether the object at ``key`` of an encrypted remote is sealed (all but format.json and keys/)."""
    return key != "format.json" and not key.startswith("keys/")


def key_file(store: str) -> Path:
    return home() / "keys" / f"{store}.json"


def check_passphrase(passphrase: str) -> str:
    if not passphrase:
        raise BadInput("the passphrase is empty")
    if len(passphrase) < 8:
        raise BadInput("a passphrase needs at least 8 characters")
    return passphrase


class Keyring:
    """The master key and data keys of one encrypted remote, as this machine holds them."""

    def __init__(self, store: str, master: bytes, check: bytes, data: dict[str, bytes]) -> None:
        self.store = store
        self.master = master
        self.check = check
        self.data = dict(data)
        self._ready: dict[str, DataKey] = {}

    @property
    def newest_id(self) -> str:
        return max(self.data)

    def newest(self) -> DataKey:
        return self.key(self.newest_id)  # type: ignore[return-value]

    def key(self, key_id: str) -> DataKey | None:
        if key_id not in self._ready:
            secret = self.data.get(key_id)
            if secret is None:
                return None
            self._ready[key_id] = DataKey(key_id, secret)
        return self._ready[key_id]

    def opens_check(self) -> bool:
        return crypto.unwrap(self.master, self.check, _check_ad(self.store)) == _CHECK

    def add_wrapped(self, key_id: str, doc: dict[str, Any]) -> bool:
        """Add the data key a ``keys/<key_id>.json`` document wraps; False when it is not ours."""
        sealed = unb64(doc.get("sealed"))
        if doc.get("key") != key_id or doc.get("store") != self.store or sealed is None:
            return False
        secret = crypto.unwrap(self.master, sealed, _data_ad(self.store, key_id))
        if secret is None or len(secret) != 32:
            return False
        self.data[key_id] = secret
        return True

    def save(self) -> None:
        """Write the key file, readable by its owner only, atomically."""
        write_private(key_file(self.store), {
            "store": self.store, "master": b64(self.master), "check": b64(self.check),
            "data": {k: b64(v) for k, v in sorted(self.data.items())}})


def write_private(path: Path, doc: dict[str, Any]) -> None:
    """Write a key file atomically, readable by its owner only, in a folder only they can open."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".key-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(doc, f, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ConfigError(f"cannot write the key file {path}: {exc.strerror}") from exc


def key_id(config: RemoteConfig) -> str | None:
    """The data key new objects of ``config``'s remote are sealed with here; None when plain or missing."""
    if not config.encrypted or not config.store_id:
        return None
    try:
        return load_keyring(config.store_id, config.name).newest_id
    except WrongKey:
        return None


def load_keyring(store: str, remote_name: str) -> Keyring:
    """This machine's keys for the remote whose store id is ``store``, checked against its key check."""
    path = key_file(store)
    how = (f"add the remote again with its passphrase or recovery key: `localfirst remote remove {remote_name}` "
           f"then `localfirst remote add {remote_name} URL`")
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise WrongKey(f"remote {remote_name!r} is encrypted and this machine has no key for it ({path}); "
                       + how) from None
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise WrongKey(f"the key file {path} of remote {remote_name!r} cannot be read; " + how) from exc
    if not isinstance(doc, dict):
        doc = {}
    data = doc.get("data")
    master, check = unb64(doc.get("master"), 32), unb64(doc.get("check"))
    keys = {k: unb64(v, 32) for k, v in data.items()} if isinstance(data, dict) else {}
    if (master is None or check is None or not keys or doc.get("store") != store
            or any(v is None or not _KEY_OBJECT.fullmatch(f"keys/{k}.json") for k, v in keys.items())):
        raise WrongKey(f"the key file {path} of remote {remote_name!r} is damaged; " + how)
    ring = Keyring(store, master, check, {k: v for k, v in keys.items() if v is not None})
    if not ring.opens_check():
        raise WrongKey(f"the key file {path} does not open remote {remote_name!r}'s key check; " + how)
    return ring


def create_keys(remote: Remote, secret: Secret, *, scrypt_n: int | None = None) -> tuple[dict[str, Any], Keyring, str]:
    """Make the keys of a new encrypted remote and put them there.

    Returns format.json's document (the caller creates it, create-only, last:
    it is what makes the remote exist), this machine's keyring and the
    recovery key, to be shown once.
    """
    passphrase = check_passphrase(_ask(secret, new=True))
    store, key_id = ids.new_id(), ids.new_id()
    master, data = crypto.new_key(), crypto.new_key()
    recovery_text, recovery = crypto.new_recovery_key()
    params = Scrypt_(os.urandom(16), n=scrypt_n or crypto.SCRYPT_N)
    salt = os.urandom(16)
    master_doc = {
        "type": "localfirst-master-key", "store": store,
        "passphrase": {**params.to_json(), "sealed": b64(
            crypto.wrap(crypto.passphrase_kek(passphrase, params), master, _master_ad(store)))},
        "recovery": {"kdf": "hkdf-sha256", "salt": b64(salt), "sealed": b64(
            crypto.wrap(crypto.recovery_kek(recovery, salt), master, _master_ad(store)))},
    }
    ring = Keyring(store, master, crypto.wrap(master, _CHECK, _check_ad(store)), {key_id: data})
    try:
        _put_json(remote, MASTER_KEY, master_doc, create_only=True)
    except ObjectExists:
        raise CorruptObject(f"{remote.url} holds {MASTER_KEY} but no format.json: an encrypted remote whose "
                            "creation stopped half-way. Remove its keys/ folder, or use another folder or "
                            "prefix") from None
    _put_json(remote, f"keys/{key_id}.json", _data_doc(ring, key_id), create_only=True)
    fmt = {"type": "localfirst-remote", "format": ENCRYPTED_FORMAT, "store": store,
           "cipher": crypto.CIPHER, "check": b64(ring.check)}
    return fmt, ring, recovery_text


def join_keys(remote: Remote, fmt: dict[str, Any], secret: Secret, *, name: str) -> Keyring:
    """Open an existing encrypted remote's keys with a passphrase or its recovery key; reads only.

    ``fmt`` is its format.json, checked (``session.read_format``).
    """
    store = fmt["store"]
    check = unb64(fmt.get("check"))
    if check is None:
        raise CorruptObject(f"format.json of {remote.url} has no valid key check")
    doc = _get_json(remote, MASTER_KEY)
    typed = _ask(secret, new=False)
    if not typed:
        raise BadInput("the passphrase is empty")
    recovery = crypto.parse_recovery_key(typed)
    master = _open_master(doc, typed, recovery)
    if master is None:
        what = "recovery key" if recovery is not None else "passphrase"
        raise WrongKey(f"wrong {what} for remote {name!r}: nothing was saved")
    ring = Keyring(store, master, check, {})
    if not ring.opens_check():
        raise WrongKey(f"{MASTER_KEY} of remote {name!r} does not match its format.json key check "
                       "(replaced by someone else?): nothing was saved")
    for key in sorted(remote.list("keys/")):
        m = _KEY_OBJECT.fullmatch(key)
        if m and not ring.add_wrapped(m.group(1), _get_json(remote, key)):
            raise CorruptObject(f"{key} of {remote.url} is damaged or not this remote's key")
    if not ring.data:
        raise CorruptObject(f"{remote.url} is encrypted but holds no data key under keys/")
    return ring


def fetch_key(remote: Remote, ring: Keyring, key_id: str) -> DataKey | None:
    """A data key this machine has not seen yet (another machine rotated), from ``keys/<key_id>.json``."""
    try:
        doc = _get_json(remote, f"keys/{key_id}.json")
    except ObjectMissing:
        return None
    if not ring.add_wrapped(key_id, doc):
        return None
    ring.save()
    return ring.key(key_id)


def change_passphrase(remote: Remote, ring: Keyring, secret: Secret, *, scrypt_n: int | None = None) -> None:
    """Wrap the master key under a new passphrase; the old one stops opening it. The recovery key is kept."""
    passphrase = check_passphrase(_ask(secret, new=True))
    etag = remote.head(MASTER_KEY).etag
    doc = _get_json(remote, MASTER_KEY)
    params = Scrypt_(os.urandom(16), n=scrypt_n or crypto.SCRYPT_N)
    doc["passphrase"] = {**params.to_json(), "sealed": b64(
        crypto.wrap(crypto.passphrase_kek(passphrase, params), ring.master, _master_ad(ring.store)))}
    try:
        _put_json(remote, MASTER_KEY, doc, create_only=False, if_match=etag)
    except PreconditionFailed:
        raise ConfigError(f"{MASTER_KEY} changed while this ran (another passphrase change?): try again") from None


def rotate_key(remote: Remote, ring: Keyring) -> str:
    """Add a data key: new objects are sealed with it, old ones stay readable."""
    key_id = ids.new_id()
    ring.data[key_id] = crypto.new_key()
    _put_json(remote, f"keys/{key_id}.json", _data_doc(ring, key_id), create_only=True)
    ring.save()
    return key_id


def _open_master(doc: dict[str, Any], typed: str, recovery: bytes | None) -> bytes | None:
    store = doc.get("store")
    if not isinstance(store, str):
        return None
    if recovery is not None:
        wrap = doc.get("recovery")
        salt = unb64(wrap.get("salt")) if isinstance(wrap, dict) else None
        sealed = unb64(wrap.get("sealed")) if isinstance(wrap, dict) else None
        if wrap is None or salt is None or sealed is None or wrap.get("kdf") != "hkdf-sha256":
            return None
        return crypto.unwrap(crypto.recovery_kek(recovery, salt), sealed, _master_ad(store))
    wrap = doc.get("passphrase")
    if not isinstance(wrap, dict) or wrap.get("kdf") != "scrypt":
        return None
    salt, sealed = unb64(wrap.get("salt")), unb64(wrap.get("sealed"))
    if salt is None or sealed is None:
        return None
    params = Scrypt_(salt, n=wrap.get("n"), r=wrap.get("r"), p=wrap.get("p"))  # type: ignore[arg-type]
    if not params.sane():
        raise CorruptObject(f"{MASTER_KEY} asks for scrypt parameters out of bounds; refused unread")
    return crypto.unwrap(crypto.passphrase_kek(typed, params), sealed, _master_ad(store))


def _data_doc(ring: Keyring, key_id: str) -> dict[str, Any]:
    return {"type": "localfirst-data-key", "store": ring.store, "key": key_id,
            "sealed": b64(crypto.wrap(ring.master, ring.data[key_id], _data_ad(ring.store, key_id)))}


def _ask(secret: Secret, *, new: bool) -> str:
    return secret(new) if callable(secret) else secret


def _master_ad(store: str) -> bytes:
    return f"{MASTER_KEY} {store}".encode()


def _check_ad(store: str) -> bytes:
    return f"format.json {store}".encode()


def _data_ad(store: str, key_id: str) -> bytes:
    return f"keys/{key_id}.json {store}".encode()


def _get_json(remote: Remote, key: str) -> dict[str, Any]:
    try:
        doc = json.loads(remote.get(key, max_bytes=_SMALL))
    except (ValueError, UnicodeDecodeError, RecursionError):
        doc = None
    if not isinstance(doc, dict):
        raise CorruptObject(f"{key} of {remote.url} is not a localfirst key object")
    return doc


def _put_json(remote: Remote, key: str, doc: dict[str, Any], *, create_only: bool, if_match: str | None = None) -> None:
    from .changeset import sha256

    data = json.dumps(doc, sort_keys=True).encode()
    remote.put(key, data, sha256=sha256(data), create_only=create_only, if_match=if_match)
