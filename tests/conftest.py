"""Fixtures shared by every test: an isolated home, stores, and CLI runners."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from localfirst import cli
from localfirst.store import Store


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never touch the real home, environment or cloud."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("LOCALFIRST_HOME", str(home))
    monkeypatch.setenv("HOME", str(home))
    for key in list(os.environ):
        if key.startswith("AWS_") or key.startswith("LLM_"):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "no-aws-credentials"))
    return home


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """S3 in process (moto), with an empty bucket named "bucket"."""
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        import boto3

        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="bucket")
        yield


@pytest.fixture
def two_machines(tmp_path: Path) -> tuple[Path, Store, Store]:
    """A folder remote, an honest machine that pushed one exchange, and a victim that has not synced yet."""
    from synctools import log, new_store

    import sync

    root = tmp_path / "remote"
    root.mkdir()
    honest, victim = new_store(tmp_path / "honest.db"), new_store(tmp_path / "victim.db")
    for s in (honest, victim):
        sync.add_remote(s, "origin", root.as_uri())
    log(honest, "from the honest host")
    sync.sync(honest)
    return root, honest, victim


@pytest.fixture
def fresh_store() -> Iterator[Store]:
    """A migrated store on an in-memory database."""
    from localfirst.db import connect

    store = Store(connect(":memory:"))
    yield store
    store.close()


@pytest.fixture
def schema(fresh_store: Store) -> Any:
    """The synced columns of a fresh store, as a changeset of schema 2 is checked against."""
    from sync.check import Schema

    return Schema(fresh_store.conn, 2)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A path where a database file may be created."""
    return tmp_path / "logs.db"


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """Run the CLI in-process: run("logs", "list", input="...") -> Result."""

    def invoke(*args: str, input: str | None = None) -> Result:
        import io

        class Stdin(io.StringIO):
            def isatty(self) -> bool:
                return False

        monkeypatch.setattr(sys, "stdin", Stdin(input or ""))
        capsys.readouterr()
        code = cli.main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


def run_subprocess(*args: str, input: str | None = None, env: dict[str, str] | None = None,
                   timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``python -m localfirst`` as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "localfirst", *args],
        input=input, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=timeout,
    )


@pytest.fixture(params=["plain", "encrypted"])
def both_remotes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a sync test against a plain remote and again against an encrypted one.

    Encrypted, every ``sync.add_remote`` creates or joins the remote with one
    passphrase (cheap to stretch, for speed). Tests that write raw objects
    by hand seal them with ``synctools.raw``.
    """
    if request.param == "encrypted" and request.node.get_closest_marker("plain_only"):
        pytest.skip(request.node.get_closest_marker("plain_only").args[0])
    if request.param == "encrypted":
        import sync
        import sync.config

        plain = sync.config.add_remote

        def encrypted(*args, **kwargs):  # type: ignore[no-untyped-def]
            kwargs.setdefault("encrypt", True)
            kwargs.setdefault("passphrase", "the test suite's passphrase")
            kwargs.setdefault("scrypt_n", 1 << 10)
            return plain(*args, **kwargs)

        monkeypatch.setattr(sync, "add_remote", encrypted)
    return str(request.param)
