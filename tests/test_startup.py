"""Start-up pays only for what it uses: the modules `logs list -n 1` imports are pinned.

A new import on the read path (a module-level ``import`` of something only
another command needs) fails here, rather than showing up later as a slower
benchmark (bench/startup.py measures the time).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from localfirst.records import Response
from localfirst.store import Store

# Beyond what typer (the command line), sqlite3 and json import themselves.
READ_PATH = {
    "__future__", "dataclasses", "runpy", "typer._click.decorators",
    "localfirst", "localfirst.cli", "localfirst.db", "localfirst.errors", "localfirst.hlc", "localfirst.ids",
    "localfirst.migrations", "localfirst.paths", "localfirst.records", "localfirst.render", "localfirst.store",
    "localfirst.textutil", "localfirst.timeutil",
}


def _imported(args: list[str], env: dict[str, str]) -> set[str]:
    run = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True, text=True, env=env,
                         timeout=60, check=True)
    names = set()
    for line in run.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "package":
                names.add(name)
    return names


def test_logs_list_imports_only_the_read_path(tmp_path: Path) -> None:
    db = tmp_path / "lf.db"
    store = Store.open(db)
    store.log(Response(model="m", prompt="hi", response="yo"))
    store.close()
    env = {**os.environ, "LOCALFIRST_HOME": str(tmp_path)}
    used = _imported(["-m", "localfirst", "--db", str(db), "logs", "list", "-n", "1"], env)
    floor = _imported(["-c", "import typer, sqlite3, json"], env)
    extra = used - floor
    assert extra == READ_PATH, f"new: {sorted(extra - READ_PATH)}; gone: {sorted(READ_PATH - extra)}"
    for heavy in ("sqlite_utils", "rich", "httpx", "yaml", "boto3", "sync", "localfirst.registry"):
        assert heavy not in used
