"""One contract, every remote: the folder, S3 in process (moto) and S3 over
HTTP (moto's server on 127.0.0.1, so botocore's real HTTP path runs)."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from synctools import free_port

from localfirst.errors import BadInput, CorruptObject
from sync.remotes import (
    ObjectExists,
    ObjectMissing,
    ObjectTooLarge,
    PreconditionFailed,
    Remote,
    RemoteConfig,
    check_url,
    open_remote,
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def s3_server() -> Iterator[tuple[str, Any]]:
    """moto's S3 over HTTP, started once for this module, and a client to make buckets."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    admin = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )
    yield endpoint, admin
    server.stop()


@pytest.fixture(params=["folder", "s3", "s3-http"])
def remote(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Remote:
    if request.param == "folder":
        (tmp_path / "remote").mkdir()
        return open_remote(RemoteConfig("r", f"file://{tmp_path}/remote"))
    if request.param == "s3":
        request.getfixturevalue("aws")
        return open_remote(RemoteConfig("r", "s3://bucket/some/prefix", region="us-east-1"))
    endpoint, admin = request.getfixturevalue("s3_server")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    bucket = f"b-{uuid.uuid4().hex}"  # the server outlives each test: a bucket of its own
    admin.create_bucket(Bucket=bucket)
    return open_remote(RemoteConfig("r", f"s3://{bucket}/some/prefix", endpoint_url=endpoint, region="us-east-1"))


def test_create_only_put_then_get(remote: Remote) -> None:
    etag = remote.put("log/a/1.gz", b"one", sha256=sha(b"one"), create_only=True)
    assert remote.get("log/a/1.gz") == b"one"
    info = remote.head("log/a/1.gz")
    assert info.sha256 == sha(b"one")
    assert info.etag == etag == remote.list("log/a/")["log/a/1.gz"]


def test_create_only_never_replaces(remote: Remote) -> None:
    remote.put("k.json", b"first", sha256=sha(b"first"), create_only=True)
    with pytest.raises(ObjectExists):
        remote.put("k.json", b"second", sha256=sha(b"second"), create_only=True)
    assert remote.get("k.json") == b"first"


def test_racing_creators_one_wins(remote: Remote) -> None:
    results: list[str] = []

    def create(i: int) -> None:
        body = f"writer {i}".encode()
        try:
            remote.put("race.json", body, sha256=sha(body), create_only=True)
            results.append(f"won {i}")
        except ObjectExists:
            results.append("lost")

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if r.startswith("won")]
    assert len(winners) == 1
    assert remote.get("race.json") == f"writer {winners[0].split()[1]}".encode()


def test_replace_with_compare_and_swap(remote: Remote) -> None:
    etag = remote.put("heads/h.json", b"1", sha256=sha(b"1"), create_only=True)
    etag2 = remote.put("heads/h.json", b"2", sha256=sha(b"2"), create_only=False, if_match=etag)
    assert remote.get("heads/h.json") == b"2"
    with pytest.raises(PreconditionFailed):
        remote.put("heads/h.json", b"3", sha256=sha(b"3"), create_only=False, if_match=etag)
    assert remote.get("heads/h.json") == b"2"
    assert remote.list("heads/") == {"heads/h.json": etag2}
    with pytest.raises(PreconditionFailed):
        remote.put("heads/none.json", b"4", sha256=sha(b"4"), create_only=False, if_match=etag2)
    with pytest.raises(ObjectMissing):
        remote.get("heads/none.json")


def test_list_prefix_is_one_level_with_etags(remote: Remote) -> None:
    assert remote.list("heads/") == {}
    e1 = remote.put("heads/a.json", b"a", sha256=sha(b"a"), create_only=True)
    remote.put("heads/b.json", b"b", sha256=sha(b"b"), create_only=True)
    remote.put("log/a/1.gz", b"x", sha256=sha(b"x"), create_only=True)
    listing = remote.list("heads/")
    assert sorted(listing) == ["heads/a.json", "heads/b.json"]
    assert listing["heads/a.json"] == e1
    remote.put("heads/a.json", b"a2", sha256=sha(b"a2"), create_only=False)
    assert remote.list("heads/")["heads/a.json"] != e1


def test_missing_objects(remote: Remote) -> None:
    with pytest.raises(ObjectMissing):
        remote.get("nothing.json")
    with pytest.raises(ObjectMissing):
        remote.head("nothing.json")


def _swap_at_once(remote: Remote, etag: str, name: str, threads: int) -> tuple[list[bytes], list[int]]:
    """``threads`` writers replace ``heads/h.json`` if it still has ``etag``, all at once."""
    start = threading.Barrier(threads)
    won: list[bytes] = []
    lost: list[int] = []

    def swap(i: int) -> None:
        body = f"{name} by {i}".encode()
        start.wait()
        try:
            remote.put("heads/h.json", body, sha256=sha(body), create_only=False, if_match=etag)
            won.append(body)
        except PreconditionFailed:
            lost.append(i)

    workers = [threading.Thread(target=swap, args=(i,)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return won, lost


def test_racing_compare_and_swap_one_wins_per_round(remote: Remote) -> None:
    """Every writer reads the same ETag, then all try to replace it at once:
    exactly one wins each round, and the head never goes back."""
    remote.put("heads/h.json", b"0", sha256=sha(b"0"), create_only=True)
    for round_ in range(1, 11):
        etag = remote.head("heads/h.json").etag
        won, lost = _swap_at_once(remote, etag, f"round {round_}", threads=8)
        assert len(won) == 1 and len(lost) == 7, f"round {round_}: {len(won)} writers won"
        assert remote.get("heads/h.json") == won[0]


def test_get_refuses_an_object_over_the_cap(remote: Remote) -> None:
    for size in (99, 100, 101, 5000):
        data = bytes(range(256)) * (size // 256) + bytes(size % 256)
        key = f"log/a/{size}.gz"
        remote.put(key, data, sha256=sha(data), create_only=True)
        if size <= 100:
            assert remote.get(key, max_bytes=100) == data
        else:
            with pytest.raises(ObjectTooLarge, match=rf"{key}.*100 bytes") as caught:
                remote.get(key, max_bytes=100)
            assert isinstance(caught.value, CorruptObject) and "\n" not in str(caught.value)
        assert remote.get(key) == data
    with pytest.raises(ObjectMissing):
        remote.get("log/a/1.gz", max_bytes=100)


def test_server_time_is_the_remotes_clock(remote: Remote) -> None:
    remote.list("heads/")
    remote.put("k.json", b"x", sha256=sha(b"x"), create_only=True)
    stamp = remote.server_time()
    assert stamp is not None and abs(stamp - time.time()) < 5


# Refused before any request: the in-process S3 stands for both kinds.
@pytest.mark.parametrize("remote", ["folder", "s3"], indirect=True)
@pytest.mark.parametrize("key", ["../escape.json", "log/../../x", "/abs", "a//b", "a/./b", "bad key"])
def test_keys_that_could_escape_are_refused(remote: Remote, key: str) -> None:
    with pytest.raises(BadInput):
        remote.put(key, b"x", sha256=sha(b"x"), create_only=True)
    with pytest.raises(BadInput):
        remote.get(key)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("file:///tmp/x/", "file:///tmp/x"),
        ("s3://my-bucket/a/b/", "s3://my-bucket/a/b"),
        ("s3://my-bucket", "s3://my-bucket"),
    ],
)
def test_urls_are_normalised(url: str, expected: str) -> None:
    assert check_url(url) == expected


@pytest.mark.parametrize("url", ["http://x", "file://host/x", "file:relative", "s3://Bad_Bucket/x", "s3://b/../x", ""])
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(BadInput):
        check_url(url)
