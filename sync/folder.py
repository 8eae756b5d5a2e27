"""A remote in a folder: a local disk, a synced drive or a USB stick.

Create-only writes go to a temporary file first and are then hard-linked
into place: ``os.link`` refuses to replace an existing file, so two writers
can never overwrite each other's object, and a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from localfirst.errors import RemoteError

from .remotes import ObjectExists, ObjectInfo, ObjectMissing, PreconditionFailed, check_key

__all__ = ["FolderRemote"]


class FolderRemote:
    def __init__(self, url: str) -> None:
        self.url = url
        self.root = Path(url.removeprefix("file://"))

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def _check_root(self) -> None:
        if not self.root.is_dir():
            raise RemoteError(f"remote folder {self.root} does not exist (is the drive mounted?)")

    @staticmethod
    def _etag(data: bytes) -> str:
        # From the content, as S3's: a replaced file can reuse the inode and,
        # on coarse file systems, the mtime, but not the bytes.
        return hashlib.sha256(data).hexdigest()[:32]

    def list(self, prefix: str) -> dict[str, str]:
        """Keys under ``prefix`` with an ETag made from their content (heads are small)."""
        self._check_root()
        folder = self._path(prefix.rstrip("/"))
        out: dict[str, str] = {}
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return out
        except OSError as exc:
            raise RemoteError(f"cannot list {folder}: {exc.strerror}") from exc
        for entry in entries:
            if entry.is_file() and not entry.name.startswith("."):
                try:
                    out[prefix + entry.name] = self._etag(Path(entry.path).read_bytes())
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise RemoteError(f"cannot read {entry.path}: {exc.strerror}") from exc
        return out

    def get(self, key: str) -> bytes:
        self._check_root()
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise ObjectMissing(f"no object {key} in {self.url}") from exc
        except OSError as exc:
            raise RemoteError(f"cannot read {key} in {self.url}: {exc.strerror}") from exc

    def head(self, key: str) -> ObjectInfo:
        # A folder keeps no metadata; hashing the file is a local read.
        data = self.get(key)
        return ObjectInfo(self._etag(data), hashlib.sha256(data).hexdigest())

    def put(self, key: str, data: bytes, *, sha256: str, create_only: bool, if_match: str | None = None) -> str:
        self._check_root()
        path = self._path(key)
        tmp = path.parent / f".tmp-{secrets.token_hex(8)}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            if create_only:
                try:
                    os.link(tmp, path)
                except FileExistsError as exc:
                    raise ObjectExists(f"{key} already exists in {self.url}") from exc
            else:
                if if_match is not None:
                    try:
                        current: str | None = self._etag(path.read_bytes())
                    except FileNotFoundError:
                        current = None
                    if current != if_match:
                        raise PreconditionFailed(f"{key} in {self.url} changed since it was read")
                os.replace(tmp, path)
            return self._etag(data)
        except OSError as exc:
            raise RemoteError(f"cannot write {key} in {self.url}: {exc.strerror}") from exc
        finally:
            tmp.unlink(missing_ok=True)
