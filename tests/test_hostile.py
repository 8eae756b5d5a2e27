"""Hostile objects on a remote, each built by hand: refused alone, never a traceback.

Every case plants one host's changeset in a folder remote beside an honest
host's. The victim's sync prints one ``Error:`` line naming the object (and
line), applies nothing of that changeset, keeps its watermark, and still
applies the honest host's changeset and pushes its own.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import secrets
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import assert_one_line_error
from synctools import dump, log, new_store, raw_put

import sync
from localfirst import hlc, migrations
from localfirst.errors import CorruptObject
from localfirst.store import Store

# Every test here runs against a plain and an encrypted remote.
pytestmark = pytest.mark.usefixtures("both_remotes")

EVIL = "01h" + "e" * 23
RID = "01h" + "0" * 22 + "1"
CID = "01h" + "0" * 22 + "2"
T = "2026-11-30T12:00:00.000000Z"
SCHEMA = len(migrations.names())


def _hlc(ms_ahead: int = 0) -> str:
    import time

    return hlc.format_hlc(time.time_ns() // 1_000_000 + ms_ahead, 0, EVIL)


def conversation(**over: Any) -> dict[str, Any]:
    row = {"id": CID, "name": "evil", "model": "m", "created_utc": T, "name_hlc": ""}
    return {"op": "set", "table": "conversations", "row": {**row, **over}}


def response(**over: Any) -> dict[str, Any]:
    row = {"id": RID, "conversation_id": CID, "model": "m", "prompt": "p", "response": "r", "datetime_utc": T,
           "simulated": 0}
    return {"op": "put", "table": "responses", "row": {**row, **over}}


def attachment(content: bytes, **over: Any) -> dict[str, Any]:
    import base64

    row = {"id": hashlib.sha256(content).hexdigest(), "mime_type": "text/plain", "size": len(content),
           "content": {"b64": base64.b64encode(content).decode()}, "path": None, "url": None}
    return {"op": "put", "table": "attachments", "row": {**row, **over}}


def raw_lines(store_id: str, ops_text: list[str], *, host: str = EVIL) -> bytes:
    header = {"type": "localfirst-changeset", "format": 1, "store": store_id, "host": host, "seq": 1, "prev": "",
              "schema": SCHEMA, "rows": len(ops_text)}
    return gzip.compress(("\n".join([json.dumps(header), *ops_text]) + "\n").encode(), mtime=0)


def plant(root: Path, body: bytes, *, host: str = EVIL) -> str:
    """Put ``body`` as changeset 1 of ``host``, with a head that vouches for it."""
    key = f"log/{host}/{1:012d}.jsonl.gz"
    (root / "log" / host).mkdir(parents=True, exist_ok=True)
    raw_put(root, key, body)
    head = {"host": host, "seq": 1, "sha256": hashlib.sha256(body).hexdigest()}
    raw_put(root, f"heads/{host}.json", json.dumps(head).encode())
    return key


def store_id(root: Path) -> str:
    return str(json.loads((root / "format.json").read_text())["store"])


def _deep(n: int) -> str:
    return "[" * n + "]" * n


# name -> function(store id) -> changeset bytes, and a fragment the error names
CASES: dict[str, tuple[Callable[[str], bytes], str]] = {
    "deep JSON line": (lambda s: raw_lines(s, ['{"op":"put","table":"responses","row":{"id":' + _deep(200_000)
                                             + "}}"]), "line 2"),
    "2**64 in an integer": (lambda s: raw_lines(s, [json.dumps(conversation()),
                                                    json.dumps(response(input_tokens=2**64))]), "input_tokens"),
    "NaN": (lambda s: raw_lines(s, [json.dumps(conversation()),
                                    json.dumps(response(duration_ms=float("nan")))]), "duration_ms"),
    "Infinity": (lambda s: raw_lines(s, [json.dumps(conversation()),
                                         json.dumps(response(output_tokens=float("inf")))]), "output_tokens"),
    "bytes in text": (lambda s: raw_lines(s, [json.dumps(conversation()),
                                              json.dumps(response(prompt={"b64": "AAEC"}))]), "responses.prompt"),
    "text where bytes belong": (lambda s: raw_lines(s, [json.dumps(attachment(b"x") | {"row": {
        **attachment(b"x")["row"], "content": "eA=="}})]),
                                "attachments.content"),
    "attachment bytes that do not hash to its id": (
        lambda s: raw_lines(s, [json.dumps(attachment(b"real", id=hashlib.sha256(b"fake").hexdigest()))]),
        "do not hash"),
    "attachment size that lies": (lambda s: raw_lines(s, [json.dumps(attachment(b"four", size=5))]), "bytes"),
    "invalid JSON in a JSON column": (lambda s: raw_lines(s, [json.dumps(conversation()),
                                                              json.dumps(response(response_json="{nope"))]),
                                      "response_json"),
    "NaN inside a JSON column": (lambda s: raw_lines(s, [json.dumps(conversation()),
                                                         json.dumps(response(response_json='{"x": NaN}'))]),
                                 "response_json"),
    "deep JSON inside a JSON column": (lambda s: raw_lines(s, [json.dumps(conversation()),
                                                               json.dumps(response(prompt_json=_deep(5000)))]),
                                       "prompt_json"),
    "a list where an object belongs": (lambda s: raw_lines(s, [json.dumps(conversation()),
                                                               json.dumps(response(extras="[1, 2]"))]), "extras"),
    "a time in another format": (lambda s: raw_lines(s, [json.dumps(conversation()),
                                                         json.dumps(response(datetime_utc="30/11/2026"))]),
                                 "datetime_utc"),
    "null where a value is required": (lambda s: raw_lines(s, [json.dumps(conversation()),
                                                               json.dumps(response(model=None))]), "model"),
    "a template name that is a path": (
        lambda s: raw_lines(s, [json.dumps({"op": "put", "table": "templates",
                                            "row": {"id": RID, "name": "../../etc/x", "created_utc": T}})]),
        "templates.name"),
    "an HLC far in the future": (lambda s: raw_lines(s, [json.dumps(conversation(name_hlc=_hlc(10 * 86_400_000)))]),
                                 "name_hlc"),
    "a number where text belongs": (lambda s: raw_lines(s, [json.dumps(conversation(name=7))]), "name"),
    "a boolean that is not 0 or 1": (lambda s: raw_lines(s, [json.dumps(conversation()),
                                                             json.dumps(response(simulated=2))]), "simulated"),
    "trailing data after the gzip member": (lambda s: raw_lines(s, [json.dumps(conversation())]) + b"junk",
                                            "damaged"),
    "too many rows in the header": (lambda s: gzip.compress(json.dumps(
        {"type": "localfirst-changeset", "format": 1, "store": s, "host": EVIL, "seq": 1, "prev": "",
         "schema": SCHEMA, "rows": 10**9}).encode() + b"\n"), "rows"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_hostile_changeset_is_refused_alone(two_machines: tuple[Path, Store, Store], case: str, run: Any) -> None:
    root, honest, victim = two_machines
    build, fragment = CASES[case]
    key = plant(root, build(store_id(root)))
    mine = log(victim, "the victim's own")
    victim.close()
    result = run("--db", str(victim.path), "sync")
    assert_one_line_error(result, key, fragment)
    assert result.code == 9
    victim = Store.open(victim.path)
    # Nothing of the hostile changeset, the honest host's rows, our own push.
    assert victim.conn.execute("SELECT count(*) FROM responses WHERE id = ?", [RID]).fetchone()[0] == 0
    assert victim.conn.execute("SELECT count(*) FROM conversations WHERE id = ?", [CID]).fetchone()[0] == 0
    assert {r.prompt for r in victim.list_responses(count=0)} == {"from the honest host", "the victim's own"}
    assert victim.conn.execute("SELECT count(*) FROM sync_chain WHERE host = ?", [EVIL]).fetchone()[0] == 0
    with pytest.raises(CorruptObject):
        sync.sync(honest)  # refuses the hostile host too, after taking the rest
    assert mine in {r.id for r in honest.list_responses(count=0)}


def test_the_same_key_with_other_content_converges_and_is_reported(tmp_path: Path, run: Any) -> None:
    """Two machines log --json with the same id: every machine ends with the same content, in any order."""
    root = tmp_path / "remote"
    root.mkdir()
    a, b, c = (new_store(tmp_path / f"{n}.db") for n in "abc")
    for s in (a, b, c):
        sync.add_remote(s, "origin", root.as_uri())
    from localfirst.records import Response

    same = "01h" + "5" * 23
    a.log(Response(id=same, model="m", prompt="said on a", response="alpha"))
    b.log(Response(id=same, model="m", prompt="said on b", response="bravo"))
    other = log(b, "unrelated, from b")
    pulled_a = sync.sync(a).pulled
    pulled_b = sync.sync(b).pulled
    sync.sync(a)
    sync.sync(c)
    prompts = {s.get_response(same).prompt for s in (a, b, c)}
    assert len(prompts) == 1, prompts
    assert dump(a)["responses"] == dump(b)["responses"] == dump(c)["responses"]
    assert c.get_response(other).prompt == "unrelated, from b"  # blocked nothing
    reported = pulled_a.conflicts + pulled_b.conflicts
    assert [(x.table, x.key) for x in reported] == [("responses", same)]
    assert "arrived with other content" in pulled_a.summary() if pulled_a.conflicts else pulled_b.summary()
    status = run("--db", str(b.path), "remote", "status", "--json")
    conflicts = json.loads(status.out)["conflicts"]
    assert [(x["table"], x["key"]) for x in conflicts if x["table"] == "responses"] == [("responses", same)]
    # Full-text search follows the content that was kept.
    kept = a.get_response(same).response
    assert [r.id for r in c.list_responses(query=kept)] == [same]


def test_a_changeset_line_may_hold_u2028(tmp_path: Path) -> None:
    """Only "\\n" ends a line: a response holding U+2028 syncs."""
    root = tmp_path / "remote"
    root.mkdir()
    a, b = new_store(tmp_path / "a.db"), new_store(tmp_path / "b.db")
    for s in (a, b):
        sync.add_remote(s, "origin", root.as_uri())
    rid = log(a, "one\u2028two\u2029three\x85four")
    sync.sync(a)
    sync.sync(b)
    assert b.get_response(rid).prompt == "one\u2028two\u2029three\x85four"


def _bomb(store: str, inflated: int) -> bytes:
    header = json.dumps({"type": "localfirst-changeset", "format": 1, "store": store, "host": EVIL, "seq": 1,
                         "prev": "", "schema": SCHEMA, "rows": 1}).encode() + b"\n"
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [z.compress(header), z.compress(b'{"op":"put","table":"responses","row":{"prompt":"')]
    chunk = b"A" * (1 << 20)
    for _ in range(inflated >> 20):
        out.append(z.compress(chunk))
    out.append(z.compress(b'"}}\n'))
    out.append(z.flush())
    return b"".join(out)


def test_a_gzip_bomb_is_refused_in_little_memory(two_machines: tuple[Path, Store, Store]) -> None:
    root, _, victim = two_machines
    body = _bomb(store_id(root), 600 << 20)
    assert len(body) < 1_000_000  # 600 MB inflated from well under 1 MB
    key = plant(root, body)
    victim.close()
    peak_file = root.parent / "peak"
    # The real command in a process of its own, which writes down its own peak resident memory:
    # VmHWM, which starts afresh with the program (ru_maxrss keeps the forking parent's).
    program = (
        "import re, resource, sys\n"
        "from localfirst import cli\n"
        "code = cli.main(sys.argv[1:])\n"
        "try:\n"
        "    peak = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
        "except (OSError, AttributeError):\n"
        "    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"open({str(peak_file)!r}, 'w').write(str(peak))\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", program, "--db", str(victim.path), "sync"],
                          capture_output=True, text=True, timeout=120)
    assert_one_line_error(done, key, "MiB")
    peak_mib = int(peak_file.read_text()) / 1024
    assert 20 < peak_mib < 200, f"peak {peak_mib:.0f} MiB"


def test_an_object_larger_than_any_changeset_is_not_read(two_machines: tuple[Path, Store, Store],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from sync import receive

    root, _, victim = two_machines
    monkeypatch.setattr(receive, "MAX_OBJECT", 1000)
    key = plant(root, raw_lines(store_id(root), [json.dumps(conversation(name=secrets.token_hex(3000)))]))
    with pytest.raises(CorruptObject, match=key.split("/")[-1]):
        sync.sync(victim)


def _chain(root: Path, sid: str, bodies: list[list[dict[str, Any]]], *, break_at: int = 0) -> list[str]:
    """Changesets 1..n of EVIL, chained by hash (or not, at ``break_at``), and a head that vouches for the last."""
    prev, keys = "", []
    for seq, ops in enumerate(bodies, start=1):
        header = {"type": "localfirst-changeset", "format": 1, "store": sid, "host": EVIL, "seq": seq,
                  "prev": "0" * 64 if seq == break_at else prev, "schema": SCHEMA, "rows": len(ops)}
        body = gzip.compress(("\n".join(json.dumps(o) for o in [header, *ops]) + "\n").encode(), mtime=0)
        keys.append(f"log/{EVIL}/{seq:012d}.jsonl.gz")
        raw_put(root, keys[-1], body)
        prev = hashlib.sha256(body).hexdigest()
    raw_put(root, f"heads/{EVIL}.json", json.dumps({"host": EVIL, "seq": len(bodies), "sha256": prev}).encode())
    return keys


def _good(n: int) -> list[dict[str, Any]]:
    rid = "01h" + "0" * 20 + f"{n:03d}"
    return [conversation(), response(id=rid, prompt=f"good {n}")]


@pytest.mark.parametrize("break_at", [0, 3], ids=["chained", "chain-broken-after-it"])
def test_a_bad_changeset_after_good_ones_stops_there(two_machines: tuple[Path, Store, Store], break_at: int,
                                                     run: Any) -> None:
    # Changesets are checked ahead, while the one before is applied: still, the
    # good one before is applied, the bad one and what follows are not, and
    # when the chain breaks after it, the break is what is reported.
    root, _, victim = two_machines
    keys = _chain(root, store_id(root), [_good(1), [conversation(), response(duration_ms=float("nan"))],
                                         _good(3)], break_at=break_at)
    victim.close()
    result = run("--db", str(victim.path), "sync")
    if break_at:
        assert_one_line_error(result, keys[2], "breaks the hash chain")
    else:
        assert_one_line_error(result, keys[1], "duration_ms")
    victim = Store.open(victim.path)
    assert {r.prompt for r in victim.list_responses(count=0)} == {"from the honest host", "good 1"}
    assert victim.conn.execute("SELECT seq FROM sync_chain WHERE host = ?", [EVIL]).fetchone()[0] == 1
