"""One contract, every remote: the folder and S3 (moto, in-process)."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from localfirst.errors import BadInput
from sync.remotes import (
    ObjectExists,
    ObjectMissing,
    PreconditionFailed,
    Remote,
    RemoteConfig,
    check_url,
    open_remote,
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()




@pytest.fixture(params=["folder", "s3"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> Remote:
    if request.param == "folder":
        (tmp_path / "remote").mkdir()
        return open_remote(RemoteConfig("r", f"file://{tmp_path}/remote"))
    request.getfixturevalue("aws")
    return open_remote(RemoteConfig("r", "s3://bucket/some/prefix", region="us-east-1"))


def test_create_only_put_then_get(remote: Remote) -> None:
    remote.put("log/a/1.gz", b"one", sha256=sha(b"one"), create_only=True)
    assert remote.get("log/a/1.gz") == b"one"
    assert remote.head("log/a/1.gz").sha256 == sha(b"one")


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
