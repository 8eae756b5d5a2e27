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

# Beyond what sqlite3 and json import themselves; typer is not among them
# (localfirst.entry reads `logs list` without it).
READ_PATH = {
    "localfirst", "localfirst.db", "localfirst.entry", "localfirst.errors", "localfirst.hlc", "localfirst.ids",
    "localfirst.logs_list", "localfirst.migrations", "localfirst.paths", "localfirst.records", "localfirst.render",
    "localfirst.running", "localfirst.store", "localfirst.timeutil",
}
# The standard library's part, as Python 3.11 imports it: dataclasses (and
# through it inspect) for the records, pathlib (with urllib.parse and
# ipaddress), threading for the ids, runpy for `python -m`. Other versions
# import other submodules; there the test checks only that this part is all
# standard library.
STDLIB_311 = {
    "__future__", "_ast", "_opcode", "_weakrefset", "_winapi", "ast", "contextlib", "copy", "dataclasses",
    "dis", "errno", "fnmatch", "importlib", "importlib._abc", "importlib.machinery", "importlib.util", "inspect",
    "ipaddress", "linecache", "nt", "ntpath", "opcode", "org", "org.python", "org.python.core", "pathlib", "runpy",
    "threading", "token", "tokenize", "urllib", "urllib.parse", "warnings", "weakref",
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
    floor = _imported(["-c", "import sqlite3, json"], env)
    extra = used - floor
    # "org": copy's probe for Jython's org.python.core, which the standard library makes.
    stdlib_names = sys.stdlib_module_names | {"org"}
    ours = {name for name in extra if name.split(".")[0] not in stdlib_names}
    assert ours == READ_PATH, f"new: {sorted(ours - READ_PATH)}; gone: {sorted(READ_PATH - ours)}"
    if sys.version_info[:2] == (3, 11):
        stdlib = extra - ours
        assert stdlib == STDLIB_311, f"new: {sorted(stdlib - STDLIB_311)}; gone: {sorted(STDLIB_311 - stdlib)}"
    # typing is only for the type checker on this path (TYPE_CHECKING = False in each module).
    for heavy in ("typing", "typer", "localfirst.cli", "sqlite_utils", "rich", "httpx", "yaml", "boto3", "sync",
                  "localfirst.registry"):
        assert heavy not in used
