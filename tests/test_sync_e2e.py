"""End to end: the localfirst CLI as real processes on three machines, each
with its own home, syncing through moto's S3 server on 127.0.0.1 or a folder."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_subprocess
from synctools import free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


class Machine:
    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.env = {**env, "LOCALFIRST_HOME": str(home)}

    def run(self, *args: str, input: str | None = None) -> str:
        done = run_subprocess(*args, input=input, env=self.env)
        assert done.returncode == 0, done.stderr
        assert done.stderr == "", "quiet when piped"
        return done.stdout

    def fail(self, *args: str) -> tuple[int, str]:
        done = run_subprocess(*args, env=self.env)
        assert done.returncode != 0
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("Error: ")
        return done.returncode, done.stderr

    def history(self) -> list[dict[str, Any]]:
        rows = json.loads(self.run("logs", "list", "-n", "0", "--json"))
        return sorted(rows, key=lambda r: r["id"])


@pytest.fixture(params=["s3", "folder"])
def machines(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[list[Machine], list[str]]:
    if request.param == "s3":
        endpoint = request.getfixturevalue("s3_server")
        import boto3

        bucket = f"team-{free_port()}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket=bucket)
        env = {**os.environ, **AWS_ENV}
        first = ["s3://" + bucket + "/logs", "--endpoint-url", endpoint]
        ms = [Machine(tmp_path / f"m{i}", env) for i in range(3)]
        # The third machine finds the endpoint through boto3's own variable.
        ms[2].env["AWS_ENDPOINT_URL_S3"] = endpoint
        return ms, first
    return [Machine(tmp_path / f"m{i}", dict(os.environ)) for i in range(3)], [f"file://{tmp_path}/shared"]


def test_three_machines_end_with_the_same_history(machines: tuple[list[Machine], list[str]]) -> None:
    ms, remote = machines
    one, two, three = ms
    first = one.run("log", "-m", "m", "-p", "hello from one", "-r", "hi").strip()
    one.run("log", "-m", "m", "-p", "more from one", "-r", "ok", "-c")
    one.run("remote", "add", "origin", *remote)
    two.run("remote", "add", "origin", *remote)
    three.run("remote", "add", "origin", remote[0])
    assert "origin" in one.run("remote", "list")
    assert "sent 1 changeset" in one.run("sync")
    two.run("log", "-m", "m", "-p", "offline on two", "-r", "later")
    out = json.loads(two.run("sync", "--json"))
    assert out["pulled"]["changesets"] == 1 and out["pushed"]["changesets"] == 1
    assert json.loads(three.run("pull", "--json"))["changesets"] == 2
    three.run("logs", "rm", first, "--yes")
    cid = three.history()[0]["conversation_id"]
    three.run("conversations", "rename", cid, "named on three")
    assert json.loads(three.run("push", "--json"))["changesets"] == 1
    for m in (one, two, three, one):
        m.run("sync")
    histories = [m.history() for m in ms]
    assert histories[0] == histories[1] == histories[2]
    assert {r["prompt"] for r in histories[0]} == {"more from one", "offline on two"}
    assert all(first != r["id"] for r in histories[0])
    names = {json.dumps(json.loads(m.run("conversations", "list", "--json")), sort_keys=True) for m in ms}
    assert len(names) == 1 and "named on three" in names.pop()
    status = json.loads(one.run("remote", "status", "--json"))
    assert status["waiting"] == 0 and len(status["hosts"]) == 3
    assert all(h["pushed"] == h["applied"] for h in status["hosts"])
    assert "received 0 changesets" in one.run("sync") and "1 request." in one.run("sync")


def test_a_copied_home_gets_a_fork_error_then_recovers(
    machines: tuple[list[Machine], list[str]], tmp_path: Path
) -> None:
    ms, remote = machines
    one, two, _ = ms
    one.run("log", "-m", "m", "-p", "before the copy", "-r", "x")
    one.run("remote", "add", "origin", *remote)
    one.run("sync")
    import shutil

    shutil.copytree(one.env["LOCALFIRST_HOME"], two.env["LOCALFIRST_HOME"], dirs_exist_ok=True)
    one.run("log", "-m", "m", "-p", "one after", "-r", "x")
    two.run("log", "-m", "m", "-p", "two after", "-r", "x")
    one.run("sync")
    code, err = two.fail("sync")
    assert code == 8 and "reset-host" in err
    two.run("remote", "reset-host")
    two.run("sync")
    one.run("sync")
    assert one.history() == two.history()
    assert {r["prompt"] for r in one.history()} == {"before the copy", "one after", "two after"}
