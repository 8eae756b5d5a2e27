"""The S3 remote: botocore's retries within bounds, clear errors, bounded time offline,
and answers that are not S3's (from a real web server on 127.0.0.1) refused clearly."""

from __future__ import annotations

import random
import socket
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from synctools import dump, free_port, log, new_store

import sync
from localfirst.errors import RemoteError
from localfirst.store import Store
from sync.remotes import ObjectExists, ObjectMissing, ObjectTooLarge, RemoteConfig
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




class _Clock:
    """Stands in for ``time`` inside botocore.endpoint: back-off is recorded, not slept."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@pytest.fixture
def backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The back-off delays botocore's retryer chose, without waiting for them."""
    import botocore.endpoint

    clock = _Clock()
    monkeypatch.setattr(botocore.endpoint, "time", clock)
    return clock.sleeps


def s3(**kwargs: Any) -> S3Remote:
    return S3Remote("s3://bucket/p", region="us-east-1", **kwargs)


@pytest.mark.parametrize("fault", ["500", "throttle", "drop"])
def test_transient_failures_are_retried(aws: None, backoff: list[float], fault: str) -> None:
    remote = s3()
    remote.put("heads/a.json", b"x", sha256="0" * 64, create_only=True)
    faults = Faults(remote.client, lambda n: fault if n <= 2 else None)
    assert list(remote.list("heads/")) == ["heads/a.json"]
    assert faults.attempts == 3
    assert len(backoff) == 2


def test_a_create_only_put_retried_after_it_landed_reports_exists(aws: None, backoff: list[float]) -> None:
    """moto has stored the object when the injected 500 comes back: the retry must not overwrite."""
    remote = s3()
    Faults(remote.client, lambda n: "500" if n == 1 else None)
    with pytest.raises(ObjectExists):
        remote.put("a.json", b"x", sha256="0" * 64, create_only=True)
    assert remote.get("a.json") == b"x"


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("500", "list .* failed after 4 attempts: S3 answered InternalError$"),
        ("throttle", "list .* failed after 4 attempts: S3 answered SlowDown$"),
        ("drop", "list .*: cannot reach https://"),
    ],
)
def test_retries_stop_within_bounds_with_a_clear_error(
    aws: None, backoff: list[float], fault: str, message: str
) -> None:
    remote = s3(attempts=4)
    faults = Faults(remote.client, lambda n: fault)
    with pytest.raises(RemoteError, match=message) as caught:
        remote.list("heads/")
    assert faults.attempts == 4
    assert "\n" not in str(caught.value)
    # Jittered and capped: under 2**i seconds before try i+1, even when throttled.
    assert len(backoff) == 3 and all(0 <= d <= 2**i for i, d in enumerate(backoff))


def test_a_push_whose_writes_landed_before_an_error_completes(aws: None, backoff: list[float]) -> None:
    """The first PUT of each object answers 500 after moto stored it (format,
    log, head): each retry finds our own bytes, which is not a fork."""
    store = new_store()
    sync.add_remote(store, "origin", "s3://bucket/p", region="us-east-1")
    log(store)
    remote = s3()
    failed_puts: list[str] = []

    def fail_puts(request: Any, **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        if request.method == "PUT" and request.url not in failed_puts:
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


def test_sync_through_flaky_s3_loses_nothing(aws: None, backoff: list[float]) -> None:
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
                assert "failed after 3 attempts" in str(exc) or "cannot reach" in str(exc)
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
    # Three tries (botocore's retries), each cut off by the 0.5 s read timeout.
    assert 1.4 < time.monotonic() - start < 5
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
    assert set(RemoteConfig("n", "s3://b").to_json()) == {
        "name", "url", "endpoint_url", "region", "profile", "encrypted", "scope", "owner", "read_only"}


class _Canned(BaseHTTPRequestHandler):
    """Answers every request with the server's ``answer``: (status, headers, body chunks)."""

    protocol_version = "HTTP/1.1"  # so that botocore's "Expect: 100-continue" gets its answer at once
    server: _Web

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, headers, chunks = self.server.answer
        self.server.requests.append(f"{self.command} {self.path}")
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Connection", "close")  # the body ends where the connection does
        self.end_headers()
        if self.command != "HEAD":
            for chunk in chunks():
                self.wfile.write(chunk)

    do_GET = do_PUT = do_HEAD = _answer

    def date_time_string(self, timestamp: float | None = None) -> str:
        return formatdate(self.server.clock(), usegmt=True)

    def log_message(self, *_: Any) -> None:
        pass


class _Web(ThreadingHTTPServer):
    """Not S3: a web server on 127.0.0.1 that answers what a test tells it."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Canned)
        self.answer: tuple[int, dict[str, str], Callable[[], Iterator[bytes]]] = (200, {}, lambda: iter([]))
        self.requests: list[str] = []
        self.clock: Callable[[], float] = time.time

    def reply(self, status: int, headers: dict[str, str], body: bytes | Callable[[], Iterator[bytes]]) -> None:
        chunks = body if callable(body) else lambda: iter([body])
        self.answer = (status, headers, chunks)

    def handle_error(self, *_: Any) -> None:
        pass  # the client hung up on a body it did not want


def _remote_at(server: _Web) -> S3Remote:
    with pytest.MonkeyPatch.context() as env:  # credentials are read when the client is made
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        return S3Remote("s3://bucket/p", endpoint_url=f"http://127.0.0.1:{server.server_address[1]}",
                        region="us-east-1")


@pytest.fixture(scope="module")
def web_server() -> Iterator[tuple[_Web, S3Remote]]:
    server = _Web()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server, _remote_at(server)
    server.shutdown()
    server.server_close()


@pytest.fixture
def web(web_server: tuple[_Web, S3Remote]) -> tuple[_Web, S3Remote]:
    """A web server that is not S3, and an S3 remote pointed at it (made once: it is slow to make)."""
    server, remote = web_server
    server.requests.clear()
    server.clock = time.time
    return server, remote


PORTAL = b"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Welcome</title></head>
<body><p>Accept the terms to use the Wi-Fi<br><form method="post"><input type="submit"></form></body></html>"""
XHTML = b"<html><body><p>Accept the terms to use the Wi-Fi</p></body></html>"


def _listing(*items: str) -> bytes:
    contents = "".join(f"<Contents>{item}</Contents>" for item in items)
    return (
        '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Name>bucket</Name><Prefix>p/heads/</Prefix><KeyCount>{len(items)}</KeyCount><MaxKeys>1000</MaxKeys>"
        f"<IsTruncated>false</IsTruncated>{contents}</ListBucketResult>"
    ).encode()


HTML = {"Content-Type": "text/html; charset=utf-8"}
XML = {"Content-Type": "application/xml"}


NOT_S3 = "did not answer as S3 does \\(a captive portal or a proxy"
MALFORMED = "S3 sent a listing item without a key under the prefix or an ETag"


@pytest.mark.parametrize(
    ("status", "headers", "body", "call", "message"),
    [
        pytest.param(200, HTML, PORTAL, "list", NOT_S3, id="page-for-list"),
        pytest.param(200, HTML, XHTML, "list", NOT_S3, id="xhtml-for-list"),
        pytest.param(200, XML, XHTML, "list", NOT_S3, id="page-labelled-xml"),
        pytest.param(511, HTML, PORTAL, "list", NOT_S3, id="511-login-page"),
        # A static page has an ETag too.
        pytest.param(200, {**HTML, "ETag": '"5f3a"'}, PORTAL, "get", NOT_S3, id="page-for-get"),
        pytest.param(200, {"Content-Type": "binary/octet-stream"}, PORTAL, "get", NOT_S3, id="get-without-etag"),
        pytest.param(200, XML, _listing("<ETag>&quot;1&quot;</ETag>"), "list", MALFORMED, id="item-without-key"),
        pytest.param(200, XML, _listing("<Key>p/heads/a.json</Key>"), "list", MALFORMED, id="item-without-etag"),
        pytest.param(
            200, XML, _listing("<Key>elsewhere/a.json</Key><ETag>&quot;1&quot;</ETag>"), "list", MALFORMED,
            id="item-outside-prefix",
        ),
        pytest.param(200, {"Content-Type": "binary/octet-stream"}, b"", "head", NOT_S3, id="head-without-etag"),
        pytest.param(200, {**HTML, "ETag": '"5f3a"'}, b"", "head", NOT_S3, id="page-for-head"),
        pytest.param(200, HTML, b"", "put", NOT_S3, id="put-without-etag"),
    ],
)
def test_answers_that_are_not_s3_are_one_clear_error(
    web: tuple[_Web, S3Remote], status: int, headers: dict[str, str], body: bytes, call: str, message: str
) -> None:
    """A captive portal, a proxy or a broken server: a RemoteError, never a KeyError."""
    server, remote = web
    server.reply(status, headers, body)
    calls: dict[str, Callable[[], object]] = {
        "list": lambda: remote.list("heads/"),
        "get": lambda: remote.get("heads/a.json"),
        "head": lambda: remote.head("heads/a.json"),
        "put": lambda: remote.put("heads/a.json", b"x", sha256="0" * 64, create_only=True),
    }
    with pytest.raises(RemoteError, match=message) as caught:
        calls[call]()
    assert type(caught.value) is RemoteError
    assert str(caught.value).startswith(f"{call} ") and "\n" not in str(caught.value)


def test_a_sync_through_a_captive_portal_says_so(web: tuple[_Web, S3Remote], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    server, remote = web
    server.reply(200, HTML, PORTAL)
    store = new_store()
    sync.add_remote(store, "origin", "s3://bucket/p", endpoint_url=remote.endpoint_url)
    log(store)
    with pytest.raises(RemoteError, match="captive portal"):
        sync.sync(store)
    assert len(store.list_responses(count=0)) == 1


def test_server_time_is_the_date_of_s3s_last_answer(web: tuple[_Web, S3Remote]) -> None:
    """Its clock, not ours: here an hour ahead; from error answers as well."""
    server, _ = web
    remote = _remote_at(server)
    assert remote.server_time() is None
    server.clock = lambda: time.time() + 3600
    server.reply(200, XML, _listing())
    assert remote.list("heads/") == {}
    stamp = remote.server_time()
    assert stamp is not None and abs(stamp - (time.time() + 3600)) < 5
    server.clock = lambda: time.time() - 7200
    server.reply(404, XML, b"<Error><Code>NoSuchKey</Code><Message>none</Message></Error>")
    with pytest.raises(ObjectMissing):
        remote.get("heads/a.json")
    stamp = remote.server_time()
    assert stamp is not None and abs(stamp - (time.time() - 7200)) < 5
    assert server.requests == ["GET /bucket?list-type=2&prefix=p%2Fheads%2F&delimiter=%2F&encoding-type=url",
                               "GET /bucket/p/heads/a.json"], "no request of its own"


def test_a_skewed_clock_is_named_with_its_skew(web: tuple[_Web, S3Remote]) -> None:
    server, remote = web
    server.clock = lambda: time.time() + 3600
    server.reply(403, XML, b"<Error><Code>RequestTimeTooSkewed</Code><Message>too skewed</Message></Error>")
    with pytest.raises(RemoteError, match="^list .*: S3 refused it because this machine's clock is off by 60 minutes"):
        remote.list("heads/")


@pytest.mark.parametrize("length", [True, False])
def test_a_large_object_is_refused_without_reading_it_all(web: tuple[_Web, S3Remote], length: bool) -> None:
    """Past the cap, the body stops being read, with or without a Content-Length."""
    server, remote = web
    sent: list[int] = []
    chunk = b"x" * 65536

    def endless() -> Iterator[bytes]:
        for _ in range(4096):  # 256 MB, if anyone read it all
            sent.append(len(chunk))
            yield chunk

    headers = {"ETag": '"1"', "Content-Type": "binary/octet-stream"}
    if length:
        headers["Content-Length"] = str(4096 * len(chunk))
    server.reply(200, headers, endless)
    tracemalloc.start()
    try:
        with pytest.raises(ObjectTooLarge, match=r"log/a/1\.gz .* cap of 1048576 bytes"):
            remote.get("log/a/1.gz", max_bytes=1 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20
    assert sum(sent) < 64 << 20
    server.reply(200, {"ETag": '"1"'}, b"y" * 1000)
    assert remote.get("log/a/1.gz", max_bytes=1000) == b"y" * 1000
