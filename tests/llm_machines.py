"""Machines with llm and localfirst side by side, each with its own LLM_USER_PATH and LOCALFIRST_HOME.

Both programs run as real processes, as a user would run them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Machine:
    root: Path

    @property
    def llm_dir(self) -> Path:
        return self.root / "llm"

    @property
    def llm_db(self) -> Path:
        return self.llm_dir / "logs.db"

    @property
    def home(self) -> Path:
        return self.root / "localfirst"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "LOCALFIRST_"))}
        env.update(LLM_USER_PATH=str(self.llm_dir), LOCALFIRST_HOME=str(self.home), **extra)
        return env

    def llm(self, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "llm", *args], capture_output=True, text=True,
                              env=self.env(**env), timeout=120, cwd=self.root)
        if check:
            assert done.returncode == 0, done.stderr
        return done

    def lf(self, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "localfirst", *args], capture_output=True, text=True,
                              env=self.env(**env), timeout=120, cwd=self.root)
        if check:
            assert done.returncode == 0, done.stderr
        return done

    def llm_logs(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = json.loads(self.llm("logs", "list", "-n", "0", "--json").stdout)
        return rows

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.llm_db)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()


def machine(root: Path) -> Machine:
    m = Machine(root)
    m.llm_dir.mkdir(parents=True)
    return m


def chain_texts(m: Machine, tip: str) -> list[str]:
    """The text of every part from ``tip`` up to the root of llm's message tree, oldest first."""
    rows = m.query(
        "WITH RECURSIVE up(h, depth) AS (SELECT ?, 0 UNION SELECT m.parent_hash, depth + 1 FROM messages m "
        "JOIN up ON m.hash = up.h WHERE m.parent_hash IS NOT NULL) "
        "SELECT p.text FROM up JOIN parts p ON p.message_hash = up.h ORDER BY up.depth DESC, p.position",
        (tip,))
    return [r[0] for r in rows if r[0] is not None]
