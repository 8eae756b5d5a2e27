"""The ``localfirst`` command reads ``logs list`` without typer, and nobody can tell but the clock.

Each argument list runs twice, as separate processes: through
``localfirst.entry.main`` (the console script and ``python -m localfirst``)
and through ``localfirst.cli.main`` (typer parses everything). Their stdout,
stderr and exit code must be identical, and the first must import typer
exactly when the argument list is not one the fast path reads.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from localfirst.entry import recognise
from localfirst.records import Response
from localfirst.store import Store

DRIVER = """\
import sys
mode, mark = sys.argv[1], sys.argv[2]
if mode == "fast":
    from localfirst.entry import main
else:
    from localfirst.cli import main
try:
    code = main(sys.argv[3:])
finally:
    with open(mark, "w") as f:
        f.write("typer" if "typer" in sys.modules else "no typer")
sys.exit(code)
"""


def _fill(db: Path) -> str:
    """Three responses, the last two in one conversation, whose id is returned."""
    store = Store.open(db)
    store.log(Response(model="m", prompt="hello there", response="plain answer",
                       datetime_utc="2026-01-01T10:00:00.000000Z"))
    second = store.get_response(store.log(Response(
        model="other", prompt="second " * 40, response="\x1b[31mred\x1b[0m answer " + "long " * 60,
        datetime_utc="2026-01-02T10:00:00.000000Z")))
    assert second.conversation_id is not None
    store.log(Response(model="m", prompt="third hello", response="the last, ünïcode",
                       datetime_utc="2026-01-03T10:00:00.000000Z", conversation_id=second.conversation_id))
    store.close()
    return second.conversation_id


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("entry")
    home, empty_home, user = root / "home", root / "empty-home", root / "user"
    for d in (home, empty_home, user):
        d.mkdir()
    cid = _fill(home / "logs.db")
    _fill(user / "work.db")
    Store.open(root / "empty.db").close()
    (root / "notadb.db").write_bytes(b"this is not SQLite" * 100)
    (root / "driver.py").write_text(DRIVER)
    return {"root": str(root), "home": str(home), "empty_home": str(empty_home), "user": str(user),
            "cid": cid, "cid8": cid[:8]}


def _case(world: dict[str, str], args: list[str]) -> list[str]:
    return [a.format(**world) for a in args]


# Read by the fast path: (argument list, extra environment).
FAST: list[list[str]] = [
    ["logs"],
    ["logs", "list"],
    ["logs", "-n", "2"],
    ["logs", "list", "-n", "0"],
    ["logs", "list", "-n", "007"],
    ["--db", "{home}/logs.db", "logs", "list", "-n", "1"],
    ["--db={home}/logs.db", "logs", "-n", "1"],
    ["--db", "~/work.db", "logs", "-s"],
    ["logs", "list", "--count", "2", "--json"],
    ["logs", "--count=2", "-s"],
    ["logs", "-q", "hello"],
    ["logs", "--query=hello", "-n", "1", "--json"],
    ["logs", "-q", '"unbalanced'],
    ["logs", "-q", "a NEAR( OR"],
    ["logs", "-q", "nothing-matches-this"],
    ["logs", "-m", "other"],
    ["logs", "--model", "m", "-s"],
    ["logs", "--cid", "{cid}"],
    ["logs", "--cid", "{cid8}", "-s"],
    ["logs", "--cid", "nope1234"],
    ["logs", "--since", "2026-01-02"],
    ["logs", "--until", "2026-01-02", "-s"],
    ["logs", "--since", "2026-01-01T12:00", "--until=2026-01-03T00:00:00Z", "--json"],
    ["logs", "--since", "nope"],
    ["logs", "--until", "2026-13-01"],
    ["logs", "-t"],
    ["logs", "--truncate", "-n", "0"],
    ["logs", "-r"],
    ["logs", "--response", "-m", "other"],
    ["logs", "-r", "-m", "nobody"],
    ["logs", "-s", "-t", "--json"],
    ["logs", "-n", "99999999999999999999"],
    ["logs", "-n", "4611686018427387905"],
    ["--db", "{root}/missing.db", "logs"],
    ["--db", "{root}/empty.db", "logs", "--json"],
    ["--db", "{root}/empty.db", "logs", "-s"],
    ["--db", "{root}/empty.db", "logs", "-r"],
    ["--db", "{root}/notadb.db", "logs"],
    ["--db", "{root}", "logs"],
]

# Left to typer.
FALLBACK: list[list[str]] = [
    [],
    ["--help"],
    ["--version"],
    ["logs", "--help"],
    ["logs", "list", "--help"],
    ["logs", "-n", "-1"],
    ["logs", "-n", "x"],
    ["logs", "-n", "1.5"],
    ["logs", "-n", " 2"],
    ["logs", "-n", "\u0661"],  # an Arabic-Indic one, which int() reads
    ["logs", "-n", "1" * 5000],
    ["logs", "-n"],
    ["logs", "--count="],
    ["logs", "--bogus"],
    ["logs", "-n", "1", "-n", "2"],
    ["logs", "--json", "--json"],
    ["logs", "-st"],
    ["logs", "-n1"],
    ["logs", "--json=yes"],
    ["logs", "--", "-n", "1"],
    ["logs", "extra"],
    ["logs", "-n", "2", "list"],
    ["logs", "list", "list"],
    ["logs", "-q", "-x"],
    ["logs", "-q", ""],
    ["logs", "path"],
    ["logs", "show", "nope1234"],
    ["--db", "{home}/logs.db", "--db", "{home}/logs.db", "logs"],
    ["--db"],
    ["--db=", "logs"],
    ["logs", "--db", "{home}/logs.db"],
    ["-n", "1", "logs"],
    ["conversations", "list"],
]

ENV_FALLBACK: list[tuple[list[str], dict[str, str]]] = [
    (["logs", "-r"], {"PYTHONIOENCODING": "ascii"}),
    (["logs", "-n", "1"],
     {"_LOCALFIRST_COMPLETE": "bash_complete", "COMP_WORDS": "localfirst logs", "COMP_CWORD": "1"}),
]


def _run(world: dict[str, str], mode: str, args: list[str], extra_env: dict[str, str], home: str) -> tuple:
    mark = Path(world["root"]) / f"mark-{mode}-{os.getpid()}-{abs(hash((tuple(args), tuple(extra_env))))}"
    env = {k: v for k, v in os.environ.items() if k != "_LOCALFIRST_COMPLETE"}
    env.update(LOCALFIRST_HOME=home, HOME=world["user"], COLUMNS="80", **extra_env)
    done = subprocess.run([sys.executable, str(Path(world["root"]) / "driver.py"), mode, str(mark), *args],
                          capture_output=True, env=env, timeout=60)
    return done.returncode, done.stdout, done.stderr, mark.read_text()


def _both(world: dict[str, str], cases: list[tuple[list[str], dict[str, str], str]]) -> list[tuple]:
    jobs = [(mode, c) for c in cases for mode in ("fast", "typer")]
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = list(pool.map(lambda job: _run(world, job[0], job[1][0], job[1][1], job[1][2]), jobs))
    return [(cases[i // 2], done[i], done[i + 1]) for i in range(0, len(done), 2)]


def test_the_fast_path_answers_as_typer_does(world: dict[str, str]) -> None:
    cases = [(_case(world, a), {}, world["home"]) for a in FAST]
    cases.append((["logs"], {}, world["empty_home"]))
    cases.append((["logs", "-r", "--json"], {}, world["empty_home"]))
    differ = []
    for (args, _env, _home), fast, typer in _both(world, cases):
        assert typer[3] == "typer", args
        if fast[3] != "no typer":
            differ.append((args, "imported typer"))
        elif fast[:3] != typer[:3]:
            differ.append((args, fast[:3], typer[:3]))
    assert not differ, differ


def test_anything_else_goes_to_typer_unchanged(world: dict[str, str]) -> None:
    cases = [(_case(world, a), {}, world["home"]) for a in FALLBACK]
    cases += [(_case(world, a), env, world["home"]) for a, env in ENV_FALLBACK]
    differ = []
    for (args, env, _home), fast, typer in _both(world, cases):
        if fast[3] != "typer":
            differ.append((args, env, "did not fall back"))
        elif fast[:3] != typer[:3]:
            differ.append((args, env, fast[:3], typer[:3]))
    assert not differ, differ


def test_the_cases_cover_what_users_meet(world: dict[str, str]) -> None:
    """The comparison above sees errors as well as output, and the fast cases really are read here."""
    outcomes = {tuple(a): _run(world, "fast", _case(world, a), {}, world["home"])
                for a in (["logs", "--since", "nope"], ["logs", "-n", "99999999999999999999"],
                          ["--db", "{root}/missing.db", "logs"], ["logs", "-r"], ["logs", "-n", "-1"])}
    code, out, err, _ = outcomes[("logs", "--since", "nope")]
    assert code == 2 and out == b"" and err.startswith(b"Error: --since 'nope' is not a date")
    code, _out, err, _ = outcomes[("logs", "-n", "99999999999999999999")]
    assert code == 2 and err == b"Error: --count 99999999999999999999 is too large (0 lists them all)\n"
    code, _out, err, _ = outcomes[("--db", "{root}/missing.db", "logs")]
    assert code != 0 and err.startswith(b"Error: ") and err.count(b"\n") == 1
    code, out, err, _ = outcomes[("logs", "-r")]
    assert (code, out, err) == (0, "the last, ünïcode\n".encode(), b"")
    code, _out, err, mark = outcomes[("logs", "-n", "-1")]
    assert code == 2 and b"-1 is not in the range x>=0" in err and mark == "typer"
    for args in FAST:
        assert recognise(_case(world, args)) is not None, args
    for args in FALLBACK:
        assert recognise(_case(world, args)) is None, args


def test_recognise_reads_options_as_typer_would() -> None:
    assert recognise(["logs"]) == (None, {})
    assert recognise(["--db=~/x.db", "logs", "list", "-n", "5", "--json", "-q", "a b"]) == (
        "~/x.db", {"count": 5, "json_output": True, "query": "a b"})
    assert recognise(["--db", "x.db", "logs", "--since=2026-01-01", "-r", "-t", "-s", "--cid", "c", "-m", "m",
                      "--until", "2026-02-01"]) == (
        "x.db", {"since": "2026-01-01", "response_only": True, "truncate_text": True, "short": True, "cid": "c",
                 "model": "m", "until": "2026-02-01"})
    assert recognise(["logs", "-n", "1" * 31]) is None
    assert recognise(["logs", "-n", "1" * 30]) == (None, {"count": int("1" * 30)})


def test_a_red_answer_reads_the_same_at_a_terminal(world: dict[str, str]) -> None:
    """typer's echo keeps escape sequences for a terminal and strips them for a pipe; so does the fast path."""
    pty = pytest.importorskip("pty")
    outputs = {}
    for mode in ("fast", "typer"):
        main, child = pty.openpty()
        mark = Path(world["root"]) / f"pty-{mode}"
        env = {**os.environ, "LOCALFIRST_HOME": world["home"]}
        proc = subprocess.Popen([sys.executable, str(Path(world["root"]) / "driver.py"), mode, str(mark),
                                 "logs", "-r", "-m", "other"], stdout=child, stderr=subprocess.PIPE, env=env)
        os.close(child)
        chunks = []
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        proc.wait(timeout=60)
        os.close(main)
        outputs[mode] = (proc.returncode, b"".join(chunks), mark.read_text())
    assert outputs["fast"][2] == "no typer" and outputs["typer"][2] == "typer"
    assert outputs["fast"][:2] == outputs["typer"][:2]
    assert b"\x1b[31mred" in outputs["fast"][1]


def test_a_closed_pipe_ends_both_paths_alike(tmp_path: Path) -> None:
    db = tmp_path / "many.db"
    store = Store.open(db)
    store.log_many([Response(model="m", prompt=f"p{i}", response="x" * 500) for i in range(600)])
    store.close()
    (tmp_path / "driver.py").write_text(DRIVER)
    results = {}
    for mode in ("fast", "typer"):
        mark = tmp_path / f"mark-{mode}"
        proc = subprocess.Popen([sys.executable, str(tmp_path / "driver.py"), mode, str(mark),
                                 "--db", str(db), "logs", "-n", "0", "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline() == b"[\n"
        proc.stdout.close()  # what `| head -1` does
        err = proc.stderr.read()
        proc.wait(timeout=60)
        results[mode] = (proc.returncode, err, mark.read_text())
    assert results["fast"] == (1, b"", "no typer")
    assert results["typer"] == (1, b"", "typer")


def test_ctrl_c_ends_both_paths_alike(tmp_path: Path) -> None:
    """Ctrl-C while the list is written: typer returns 130 without a word, and so does the fast path."""
    import signal

    db = tmp_path / "many.db"
    store = Store.open(db)
    store.log_many([Response(model="m", prompt=f"p{i}", response="x" * 500) for i in range(3000)])
    store.close()
    (tmp_path / "driver.py").write_text(DRIVER)
    results = {}
    for mode in ("fast", "typer"):
        mark = tmp_path / f"mark-{mode}"
        proc = subprocess.Popen([sys.executable, str(tmp_path / "driver.py"), mode, str(mark),
                                 "--db", str(db), "logs", "-n", "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None
        assert proc.stdout.read(1) == b"#"  # writing, and blocked on the full pipe: 1.5 MB to come
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert len(out) < 1_500_000
        results[mode] = (proc.returncode, err, mark.read_text())
    assert results["fast"] == (130, b"", "no typer")
    assert results["typer"] == (130, b"", "typer")


def test_the_command_and_python_m_start_at_the_entry() -> None:
    (script,) = entry_points(group="console_scripts", name="localfirst")
    assert script.value == "localfirst.entry:main"
    main_py = Path(__file__).resolve().parent.parent / "localfirst" / "__main__.py"
    assert "from .entry import main" in main_py.read_text()
