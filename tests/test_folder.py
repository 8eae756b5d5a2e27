"""The folder remote beyond the shared contract."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from localfirst.errors import RemoteError
from sync.folder import STALE_AFTER, FolderRemote
from sync.remotes import ObjectExists


def test_an_unmounted_folder_is_a_clear_error(tmp_path: Path) -> None:
    remote = FolderRemote(f"file://{tmp_path}/not-mounted")
    with pytest.raises(RemoteError, match="does not exist"):
        remote.list("heads/")
    with pytest.raises(RemoteError, match="does not exist"):
        remote.put("a.json", b"x", sha256="0" * 64, create_only=True)
    assert not (tmp_path / "not-mounted").exists()


def test_no_temporary_file_is_left_behind(tmp_path: Path) -> None:
    remote = FolderRemote(f"file://{tmp_path}")
    remote.put("log/h/1.gz", b"x", sha256="0" * 64, create_only=True)
    with pytest.raises(ObjectExists):
        remote.put("log/h/1.gz", b"y", sha256="0" * 64, create_only=True)
    assert [p.name for p in (tmp_path / "log" / "h").iterdir()] == ["1.gz"]
    assert remote.list("log/h/") == {"log/h/1.gz": remote.list("log/h/")["log/h/1.gz"]}


def test_a_killed_writers_temporary_files_are_removed_by_the_next_run(tmp_path: Path) -> None:
    """Old ``.tmp-*`` files go on the next put into their folder; a live writer's stays."""
    heads = tmp_path / "heads"
    heads.mkdir()
    stale, live = heads / ".tmp-0123456789abcdef", heads / ".tmp-fedcba9876543210"
    stale.write_bytes(b"half a head")
    live.write_bytes(b"being written")
    old = time.time() - STALE_AFTER - 60
    os.utime(stale, (old, old))
    (tmp_path / ".tmp-clock-0123456789abcdef").touch()
    os.utime(tmp_path / ".tmp-clock-0123456789abcdef", (old, old))
    remote = FolderRemote(f"file://{tmp_path}")
    remote.put("heads/h.json", b"1", sha256="0" * 64, create_only=True)
    assert sorted(p.name for p in heads.iterdir()) == [live.name, "h.json"]
    assert remote.server_time() is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["heads"]


def test_server_time_is_none_where_the_folder_cannot_be_written(tmp_path: Path) -> None:
    assert FolderRemote(f"file://{tmp_path}/not-mounted").server_time() is None
    assert not (tmp_path / "not-mounted").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")
def test_a_compare_and_swap_holds_the_folders_lock(tmp_path: Path) -> None:
    """While another process holds the lock, a replace waits for it; a create does not."""

    remote = FolderRemote(f"file://{tmp_path}")
    etag = remote.put("heads/h.json", b"1", sha256="0" * 64, create_only=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT);"
            "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(0.5)"
        ), str(tmp_path / "heads" / ".lock")],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    start = time.monotonic()
    remote.put("heads/other.json", b"x", sha256="0" * 64, create_only=True)
    assert holder.poll() is None, "a create-only put takes no lock"
    remote.put("heads/h.json", b"2", sha256="0" * 64, create_only=False, if_match=etag)
    assert time.monotonic() - start >= 0.3
    assert holder.wait(5) == 0
    assert remote.get("heads/h.json") == b"2"
