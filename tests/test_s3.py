"""The S3 remote: retries within bounds, clear errors, bounded time offline."""

from __future__ import annotations

import random
import socket
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from synctools import dump, free_port, log, new_store

import sync
from localfirst.errors import RemoteError
from localfirst.store import Store
from sync.remotes import ObjectExists, RemoteConfig
from sync.s3 import S3Remote


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body

    def read(self, *_: Any, **__: Any) -> bytes:
        return self.body


ERRORS = {
    "500": (500, b"<Error><Code>InternalError</Code><Message>boom</Message></Error>"),
    "throttle": (503, b"<Error><Code>SlowDown</Code><Message>slow down</Message></Error>"),
}


class Faults:
    """Fails chosen requests of a boto3 client before they reach moto."""

    def __init__(self, client: Any, plan: Any) -> None:
        self.plan = plan  # (attempt number) -> None | "500" | "throttle" | "drop"
        self.attempts = 0
        client.meta.events.register_first("before-send.s3.*", self)

    def __call__(self, request: Any, **_: Any) -> Any:
        import botocore.exceptions
        from botocore.awsrequest import AWSResponse

        self.attempts += 1
        fault = self.plan(self.attempts)
        if fault == "drop":
            raise botocore.exceptions.ConnectionClosedError(endpoint_url=request.url)
        if fault in ERRORS:
            status, body = ERRORS[fault]
            return AWSResponse(request.url, status, {}, _Raw(body))
        return None




def s3(**kwargs: Any) -> S3Remote:
    sleeps: list[float] = []
    remote = S3Remote("s3://bucket/p", region="us-east-1", sleep=sleeps.append, **kwargs)
    remote.sleeps = sleeps  # type: ignore[attr-defined]
    return remote


@pytest.mark.parametrize("fault", ["500", "throttle", "drop"])
def test_transient_failures_are_retried(aws: None, fault: str) -> None:
    remote = s3()
    remote.put("heads/a.json", b"x", sha256="0" * 64, create_only=True)
    faults = Faults(remote.client, lambda n: fault if n <= 2 else None)
    assert list(remote.list("heads/")) == ["heads/a.json"]
    assert faults.attempts == 3
    assert len(remote.sleeps) == 2  # type: ignore[attr-defined]


def test_a_create_only_put_retried_after_it_landed_reports_exists(aws: None) -> None:
    """moto has stored the object when the injected 500 comes back: the retry must not overwrite."""
    remote = s3()
    Faults(remote.client, lambda n: "500" if n == 1 else None)
    with pytest.raises(ObjectExists):
        remote.put("a.json", b"x", sha256="0" * 64, create_only=True)
    assert remote.get("a.json") == b"x"


def test_retries_stop_within_bounds_with_a_clear_error(aws: None) -> None:
    remote = s3(attempts=4)
    faults = Faults(remote.client, lambda n: "500")
    with pytest.raises(RemoteError, match="failed after 4 attempts: S3 answered InternalError"):
        remote.list("heads/")
    assert faults.attempts == 4
    assert sum(remote.sleeps) < 2  # type: ignore[attr-defined]


def test_a_push_whose_writes_landed_before_an_error_completes(aws: None) -> None:
    """The first PUTs answer 500 after moto stored them (format, log, head):
    each retry finds our own bytes, which is not a fork."""
    store = new_store()
    sync.add_remote(store, "origin", "s3://bucket/p", region="us-east-1")
    log(store)
    remote = s3()
    failed_puts: list[str] = []

    def fail_puts(request: Any, **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        if request.method == "PUT" and len(failed_puts) < 3:
            failed_puts.append(request.url)
            status, body = ERRORS["500"]
            return AWSResponse(request.url, status, {}, _Raw(body))
        return None

    remote.client.meta.events.register_first("before-send.s3.*", fail_puts)
    result = sync.push(store, client=remote)
    assert len(failed_puts) == 3 and result.changesets == 1
    other = new_store()
    sync.add_remote(other, "origin", "s3://bucket/p", region="us-east-1")
    sync.pull(other)
    assert dump(other) == dump(store)


def test_sync_through_flaky_s3_loses_nothing(aws: None) -> None:
    rng = random.Random(7)
    stores: list[Store] = []
    for _ in range(2):
        st = new_store()
        sync.add_remote(st, "origin", "s3://bucket/p", region="us-east-1")
        stores.append(st)
    for i in range(6):
        log(stores[i % 2], f"prompt {i}")
    for _ in range(3):
        for st in stores:
            remote = s3(attempts=3)
            Faults(remote.client, lambda n: rng.choice([None, None, "500", "throttle", "drop"]))
            try:
                sync.sync(st, client=remote)
            except RemoteError as exc:
                assert "failed after 3 attempts" in str(exc)
    for st in stores + stores:
        sync.sync(st)
    assert dump(stores[0]) == dump(stores[1])
    assert len(stores[0].list_responses(count=0)) == 6


def test_unreachable_endpoint_fails_in_bounded_time_and_logging_goes_on(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that accepts connections and never answers: each try times out."""
    monkeypatch.setenv("LOCALFIRST_SYNC_TIMEOUT", "0.5")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    store = new_store()
    sync.add_remote(store, "origin", "s3://bucket/p", endpoint_url=f"http://127.0.0.1:{port}")
    log(store)
    start = time.monotonic()
    with pytest.raises(RemoteError, match="cannot reach"):
        sync.sync(store)
    assert time.monotonic() - start < 5
    silent.close()
    log(store, "still logging offline")
    assert len(store.list_responses(count=0)) == 2


def test_refused_connection_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    remote = S3Remote("s3://bucket/p", endpoint_url=f"http://127.0.0.1:{free_port()}", region="us-east-1")
    start = time.monotonic()
    with pytest.raises(RemoteError, match="cannot reach"):
        remote.list("heads/")
    assert time.monotonic() - start < 5


def test_missing_credentials_are_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    remote = S3Remote("s3://bucket/p", endpoint_url=f"http://127.0.0.1:{free_port()}", region="us-east-1")
    with pytest.raises(RemoteError, match="no AWS credentials"):
        remote.list("heads/")


def test_missing_bucket_is_explained(aws: None) -> None:
    remote = S3Remote("s3://no-such-bucket/p", region="us-east-1")
    with pytest.raises(RemoteError, match="does not exist"):
        remote.list("heads/")


def test_unknown_profile_is_explained() -> None:
    with pytest.raises(RemoteError, match="profile"):
        S3Remote("s3://bucket/p", profile="nope")


def test_folder_sync_never_imports_boto3(tmp_path: Any) -> None:
    store = new_store()
    sync.add_remote(store, "origin", f"file://{tmp_path}/r")
    log(store)
    code = (
        "import sys, sync; from localfirst.store import Store; from localfirst.db import connect;"
        f"s = Store.open({str(tmp_path / 'x.db')!r}); sync.add_remote(s, 'o', 'file://{tmp_path}/r');"
        "sync.sync(s); assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'imported'"
    )
    import subprocess

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_remote_config_never_holds_credentials() -> None:
    assert set(RemoteConfig("n", "s3://b").to_json()) == {"name", "url", "endpoint_url", "region", "profile"}
