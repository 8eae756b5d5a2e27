"""Concurrent writers wait for each other instead of failing."""

import os
import sqlite3
import subprocess
import sys

import pytest

WORKER = r"""
import sys
from localfirst import cli
db, who = sys.argv[1], sys.argv[2]
for i in range(100):
    code = cli.main(["--db", db, "log", "-m", "m", "-p", f"worker {who} call {i}", "-r", "ok"])
    if code != 0:
        sys.exit(code)
"""


@pytest.mark.slow
def test_eight_processes_logging_100_times_each(tmp_path):
    """Each worker runs the `log` command 100 times, each run with its own connection,
    starting together on a database that does not exist yet (so they also race to create it)."""
    db = tmp_path / "shared.db"
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(db), str(n)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for n in range(8)
    ]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, errors
    assert not any("locked" in e for e in errors)
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM responses").fetchone()[0] == 800
    assert conn.execute("SELECT count(DISTINCT id) FROM responses").fetchone()[0] == 800
    assert conn.execute("SELECT count(*) FROM responses_fts WHERE responses_fts MATCH 'worker'").fetchone()[0] == 800


def test_separate_cli_processes_at_once(tmp_path):
    db = tmp_path / "cli.db"
    env = {**os.environ, "LOCALFIRST_HOME": str(tmp_path)}
    script = f'for i in 1 2 3 4 5; do "{sys.executable}" -m localfirst --db "{db}" log -m m -p "p$i" || exit 1; done'
    procs = [subprocess.Popen(["bash", "-c", script], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in range(8)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, errors
    assert sqlite3.connect(db).execute("SELECT count(*) FROM responses").fetchone()[0] == 40
