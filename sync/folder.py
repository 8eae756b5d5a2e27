"""A remote in a folder: a local disk, a synced drive or a USB stick.

Create-only writes go to a temporary file first and are then hard-linked
into place: ``os.link`` refuses to replace an existing file, so two writers
can never overwrite each other's object, and a reader never sees half a file.
A replace (of a head) renames a temporary file over the old one while holding
the folder's lock, so that a compare-and-swap is one step.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from localfirst.errors import RemoteError

from .remotes import ObjectExists, ObjectInfo, ObjectMissing, ObjectTooLarge, PreconditionFailed, check_key

__all__ = ["FolderRemote"]

_TMP = ".tmp-"
_LOCK = ".lock"
# A temporary file untouched this long belongs to a writer that was killed:
# live writers finish (write, fsync, link) in far less.
STALE_AFTER = 15 * 60
_CHUNK = 1 << 16


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold the exclusive lock of ``folder`` (its ``.lock`` file).

    ``flock`` rather than an O_EXCL lock file: the kernel drops it when its
    holder dies, so a killed push never leaves a stale lock to time out, and
    two opens of the file exclude each other even inside one process (POSIX
    ``fcntl`` record locks would not, between threads). On a local disk that
    is exact; Linux carries it over NFS as a lock on the server; a synced
    drive has no lock between machines, but only one host writes each head.
    """
    fd = os.open(folder / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_LOCK, 1)  # retries for 10 s, then OSError
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


class FolderRemote:
    def __init__(self, url: str) -> None:
        self.url = url
        self.root = Path(url.removeprefix("file://"))
        self._swept: set[Path] = set()

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

    def _sweep(self, folder: Path, now: float) -> None:
        """Remove what killed writers left in ``folder``, once per folder per run.

        ``now`` is the mtime of a file just written there, so the age is
        measured on the file server's clock, whatever ours says.
        """
        if folder in self._swept:
            return
        self._swept.add(folder)
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return
        for entry in entries:
            if not entry.name.startswith(_TMP):
                continue
            try:
                if entry.stat(follow_symlinks=False).st_mtime < now - STALE_AFTER:
                    os.unlink(entry.path)
            except OSError:
                continue  # gone already, or not ours to remove: the next run tries again

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

    def get(self, key: str, *, max_bytes: int | None = None) -> bytes:
        self._check_root()
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                if max_bytes is None:
                    return f.read()
                # The size of the file opened, then never more than the cap plus one
                # byte read: a file that grows meanwhile is caught as well.
                if os.fstat(f.fileno()).st_size > max_bytes:
                    raise ObjectTooLarge(f"{key} in {self.url} is larger than the cap of {max_bytes} bytes")
                data = f.read(max_bytes + 1)
        except FileNotFoundError as exc:
            raise ObjectMissing(f"no object {key} in {self.url}") from exc
        except OSError as exc:
            raise RemoteError(f"cannot read {key} in {self.url}: {exc.strerror}") from exc
        if len(data) > max_bytes:
            raise ObjectTooLarge(f"{key} in {self.url} is larger than the cap of {max_bytes} bytes")
        return data

    def delete(self, key: str) -> None:
        self._check_root()
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise RemoteError(f"cannot delete {key} in {self.url}: {exc.strerror}") from exc
        with suppress(OSError):  # an emptied folder goes too (a snapshot's parts)
            path.parent.rmdir()

    def head(self, key: str) -> ObjectInfo:
        # A folder keeps no metadata; hashing the file is a local read.
        data = self.get(key)
        return ObjectInfo(self._etag(data), hashlib.sha256(data).hexdigest(), len(data))

    def put(self, key: str, data: bytes, *, sha256: str, create_only: bool, if_match: str | None = None) -> str:
        self._check_root()
        path = self._path(key)
        tmp = path.parent / f"{_TMP}{secrets.token_hex(8)}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
                written = os.fstat(f.fileno()).st_mtime
            self._sweep(path.parent, written)
            if create_only:
                try:
                    os.link(tmp, path)
                except FileExistsError as exc:
                    raise ObjectExists(f"{key} already exists in {self.url}") from exc
            else:
                # Read, compare and rename under one lock, which every replace
                # takes: otherwise two writers holding the same ETag both pass
                # the check and the later rename wins (a head going back).
                with _locked(path.parent):
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

    def server_time(self) -> float | None:
        """The mtime of a file created in the root just now: on a network mount,
        the file server's clock. None when the root cannot be written."""
        probe = self.root / f"{_TMP}clock-{secrets.token_hex(8)}"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError:
            return None
        stamp: float | None = None
        try:
            stamp = os.fstat(fd).st_mtime
        except OSError:
            pass
        finally:
            os.close(fd)
            with suppress(OSError):  # left behind, the next sweep removes it
                probe.unlink()
        if stamp is not None:
            self._sweep(self.root, stamp)
        return stamp
