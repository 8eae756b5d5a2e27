"""The cryptography of encrypted remotes, all of it from the ``cryptography`` package.

Three layers of keys, so that a passphrase is stretched once per machine and
never per object:

- a *master key* (256 random bits), wrapped on the remote under the
  passphrase (scrypt) and under the recovery key (HKDF: the recovery key is
  itself 256 random bits, so it needs no stretching);
- *data keys* (256 random bits each, one per rotation), wrapped under the
  master key in ``keys/<key_id>.json``;
- per data key, two subkeys derived with HKDF: one for AES-256-GCM, one for
  the nonces.

An object is ``MAGIC | key_id | nonce | AES-256-GCM(plaintext)`` with the
header and the object's key (its path) as associated data: moved, swapped,
replayed under another name or altered, it fails to open. The nonce is an
HMAC of the header, the key and the plaintext under its own subkey (the
synthetic-IV construction): the same object sealed twice gives the same bytes,
so a retried push uploads what the first attempt did, as for a plain remote,
and two different objects share a nonce only with the odds of a random one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported on first use: a plain remote never loads cryptography
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "CIPHER", "MAGIC", "OVERHEAD", "DataKey", "Sealed", "Scrypt_", "new_key", "wrap", "unwrap",
    "passphrase_kek", "recovery_kek", "new_recovery_key", "parse_recovery_key", "b64", "unb64",
]

CIPHER = "AES-256-GCM"
MAGIC = b"LFE1"
_ID = re.compile(rb"^[0-7][0-9a-hjkmnp-tv-z]{25}$")
_NONCE = 12
_TAG = 16
OVERHEAD = len(MAGIC) + 26 + _NONCE + _TAG

# scrypt: N=2^17, r=8, p=1 is 128 MiB and about half a second here, paid when
# a passphrase is typed (remote add, passphrase change), never per command.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 17, 8, 1
# What a keys/ object may ask for: enough for any sane setting, too little to
# exhaust a machine's memory (N * r * 128 bytes <= 1 GiB).
_MAX_SCRYPT_MEMORY = 1 << 30

_RECOVERY = re.compile(r"^lf-rk(?:-[a-z2-7]{4}){13}$")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: object, size: int | None = None) -> bytes | None:
    """Bytes from base64 text, or None when it is not that (of ``size`` bytes, when given)."""
    if not isinstance(text, str) or len(text) > 4096:
        return None
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        return None
    return data if size is None or len(data) == size else None


def new_key() -> bytes:
    return os.urandom(32)


def _aesgcm(key: bytes) -> AESGCM:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key)


def _hkdf(secret: bytes, info: bytes, salt: bytes | None = None) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(secret)


def wrap(kek: bytes, secret: bytes, ad: bytes) -> bytes:
    """``secret`` sealed under ``kek`` (random nonce first)."""
    nonce = os.urandom(_NONCE)
    return nonce + _aesgcm(kek).encrypt(nonce, secret, ad)


def unwrap(kek: bytes, sealed: bytes, ad: bytes) -> bytes | None:
    """What :func:`wrap` sealed, or None for a wrong key or altered bytes."""
    from cryptography.exceptions import InvalidTag

    if len(sealed) < _NONCE + _TAG:
        return None
    try:
        return _aesgcm(kek).decrypt(sealed[:_NONCE], sealed[_NONCE:], ad)
    except InvalidTag:
        return None


@dataclass(frozen=True)
class Scrypt_:
    """scrypt's parameters as stored beside a passphrase wrap; checked before use."""

    salt: bytes
    n: int = SCRYPT_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P

    def sane(self) -> bool:
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (self.n, self.r, self.p))
        return (
            ints and 16 <= len(self.salt) <= 64 and self.n >= 2 and self.n & (self.n - 1) == 0
            and 1 <= self.r <= 32 and 1 <= self.p <= 16 and self.n * self.r * 128 <= _MAX_SCRYPT_MEMORY
        )

    def to_json(self) -> dict[str, object]:
        return {"kdf": "scrypt", "salt": b64(self.salt), "n": self.n, "r": self.r, "p": self.p}


def passphrase_kek(passphrase: str, params: Scrypt_) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=params.salt, length=32, n=params.n, r=params.r, p=params.p).derive(passphrase.encode())


def recovery_kek(recovery: bytes, salt: bytes) -> bytes:
    return _hkdf(recovery, b"localfirst recovery key", salt)


def new_recovery_key() -> tuple[str, bytes]:
    """A recovery key as a person writes it down (lf-rk-xxxx-...), and its 32 bytes."""
    raw = os.urandom(32)
    text = base64.b32encode(raw).decode("ascii").rstrip("=").lower()  # 52 characters
    return "lf-rk-" + "-".join(text[i:i + 4] for i in range(0, 52, 4)), raw


def parse_recovery_key(text: str) -> bytes | None:
    """The bytes of a recovery key typed back (case and spaces forgiven), or None if it is not one."""
    t = "".join(text.split()).lower()
    if not _RECOVERY.fullmatch(t):
        return None
    body = t.removeprefix("lf-rk-").replace("-", "").upper() + "===="
    try:
        raw = base64.b32decode(body)
    except ValueError:
        return None
    return raw if len(raw) == 32 else None


class DataKey:
    """One data key, ready to seal and open objects."""

    def __init__(self, key_id: str, secret: bytes) -> None:
        self.key_id = key_id
        self.header = MAGIC + key_id.encode("ascii")
        self._aead: AESGCM = _aesgcm(_hkdf(secret, b"localfirst object aead"))
        self._nonce_key = _hkdf(secret, b"localfirst object nonce")

    def seal(self, name: str, plaintext: bytes) -> bytes:
        ad = self.header + name.encode()
        mac = hmac.new(self._nonce_key, ad, hashlib.sha256)
        mac.update(b"\0")
        mac.update(plaintext)
        nonce = mac.digest()[:_NONCE]
        return self.header + nonce + self._aead.encrypt(nonce, plaintext, ad)

    def open(self, name: str, data: bytes) -> bytes | None:
        """The plaintext, or None when the bytes were not sealed under this key and name."""
        if len(data) < OVERHEAD or data[:len(self.header)] != self.header:
            return None
        from cryptography.exceptions import InvalidTag

        nonce, body = data[len(self.header):len(self.header) + _NONCE], data[len(self.header) + _NONCE:]
        try:
            return self._aead.decrypt(nonce, body, self.header + name.encode())
        except InvalidTag:
            return None


@dataclass(frozen=True)
class Sealed:
    """What the header of a sealed object says."""

    key_id: str

    @staticmethod
    def parse(data: bytes) -> Sealed | None:
        if len(data) < OVERHEAD or data[:len(MAGIC)] != MAGIC:
            return None
        key_id = data[len(MAGIC):len(MAGIC) + 26]
        return Sealed(key_id.decode("ascii")) if _ID.fullmatch(key_id) else None
