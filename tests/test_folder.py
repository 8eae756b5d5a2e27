"""The folder remote beyond the shared contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from localfirst.errors import RemoteError
from sync.folder import FolderRemote
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
