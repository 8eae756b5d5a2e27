"""The command line. The only module that imports typer.

Each command parses its options, makes one library call and renders the
result. Errors a user can cause arrive as LocalFirstError and become one
``Error: ...`` line in :func:`main`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from . import __version__, paths
from .errors import BadInput, LocalFirstError
from .store import Store

app = typer.Typer(
    name="localfirst",
    help="Your LLM conversations in a local SQLite file, on every machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
logs_app = typer.Typer(help="List, search, show and delete logged responses.", no_args_is_help=True)
conversations_app = typer.Typer(help="List and rename conversations.", no_args_is_help=True)
app.add_typer(logs_app, name="logs")
app.add_typer(conversations_app, name="conversations")


class _State:
    db_path: Optional[Path] = None
    store: Optional[Store] = None


state = _State()


def db_path() -> Path:
    if state.db_path is not None:
        return state.db_path
    home = paths.home()
    home.mkdir(parents=True, exist_ok=True)
    return home / "logs.db"


def open_store() -> Store:
    if state.store is None:
        state.store = Store.open(db_path())
    return state.store


def _version(value: bool) -> None:
    if value:
        typer.echo(f"localfirst {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    db: Optional[Path] = typer.Option(
        None, "--db", help="Database file to use instead of the one in LOCALFIRST_HOME.", metavar="PATH"
    ),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    state.db_path = db.expanduser() if db is not None else None
    state.store = None


def _stdin_text() -> Optional[str]:
    if sys.stdin is None or sys.stdin.isatty():
        return None
    return sys.stdin.read()


# typer has no list-of-pairs option; options with this metavar are given
# nargs=2 on the click command in _command(), so each value is (KEY, VALUE).
PAIR = "KEY VALUE"


def _command() -> Any:
    command = typer.main.get_command(app)
    stack = [command]
    while stack:
        current = stack.pop()
        stack.extend(getattr(current, "commands", {}).values())
        for param in current.params:
            if getattr(param, "metavar", None) == PAIR:
                param.nargs = 2
    return command


def _options(pairs: list[Any]) -> dict[str, Any]:
    """``-o KEY VALUE``: values that parse as JSON (numbers, true, null) keep their type."""
    out: dict[str, Any] = {}
    for key, raw in pairs:
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2))


# -- log and prompt ---------------------------------------------------------


@app.command("log")
def log_command(
    model: Optional[str] = typer.Option(None, "-m", "--model", help="Model that answered."),
    prompt: Optional[str] = typer.Option(None, "-p", "--prompt", help="Prompt text (default: stdin)."),
    response: Optional[str] = typer.Option(None, "-r", "--response", help="Response text."),
    system: Optional[str] = typer.Option(None, "-s", "--system", help="System prompt."),
    continue_: bool = typer.Option(False, "-c", "--continue", help="Add to the latest conversation."),
    cid: Optional[str] = typer.Option(None, "--cid", help="Add to this conversation."),
    simulated: bool = typer.Option(False, "--simulated", help="An example turn written by hand."),
    json_input: bool = typer.Option(False, "--json", help="Read one whole exchange as JSON from stdin."),
) -> None:
    """Record one exchange without calling a model; prints the new response id."""
    from .exchanges import log_exchange

    document = None
    if json_input:
        document = _stdin_text()
        if document is None:
            raise BadInput("--json reads the exchange from stdin; pipe a JSON object into it")
    elif prompt is None:
        prompt = _stdin_text()
    rid = log_exchange(
        open_store(), model=model, prompt=prompt, response=response, system=system,
        continue_latest=continue_, cid=cid, simulated=simulated, document=document,
    )
    typer.echo(rid)


@app.command("prompt")
def prompt_command(
    prompt: Optional[str] = typer.Argument(None, help="The prompt (default: stdin)."),
    model: Optional[str] = typer.Option(None, "-m", "--model", help="Model to use."),
    system: Optional[str] = typer.Option(None, "-s", "--system", help="System prompt."),
    continue_: bool = typer.Option(False, "-c", "--continue", help="Continue the latest conversation."),
    cid: Optional[str] = typer.Option(None, "--cid", help="Continue this conversation."),
    option: list[str] = typer.Option([], "-o", "--option", metavar=PAIR, help="Model option, repeatable."),
    no_log: bool = typer.Option(False, "--no-log", help="Do not log this exchange."),
) -> None:
    """Send a prompt to a model and log the exchange."""
    from .prompting import run_prompt

    stdin = _stdin_text()
    if stdin is not None and stdin.strip():
        prompt = stdin if prompt is None else f"{prompt}\n\n{stdin}"
    if prompt is None:
        raise BadInput("give a prompt as an argument or on stdin")

    def show(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    run_prompt(
        open_store, prompt, model=model, system=system, options=_options(option),
        continue_latest=continue_, cid=cid, log=not no_log, on_text=show,
    )
    sys.stdout.write("\n")


# -- logs ------------------------------------------------------------------


@logs_app.command("list")
def logs_list(
    count: int = typer.Option(3, "-n", "--count", help="How many responses (0 for all)."),
    query: Optional[str] = typer.Option(None, "-q", "--query", help="Full-text search, best match first."),
    model: Optional[str] = typer.Option(None, "-m", "--model", help="Only this model."),
    cid: Optional[str] = typer.Option(None, "--cid", help="Only this conversation."),
    since: Optional[str] = typer.Option(None, "--since", help="From this date or ISO time (UTC)."),
    until: Optional[str] = typer.Option(None, "--until", help="Up to this date or ISO time (UTC)."),
    json_output: bool = typer.Option(False, "--json", help="Output a JSON array."),
    short: bool = typer.Option(False, "-s", "--short", help="One short entry per response."),
    truncate_text: bool = typer.Option(False, "-t", "--truncate", help="Truncate long text."),
    response_only: bool = typer.Option(False, "-r", "--response", help="Only the last response's text."),
) -> None:
    """List logged responses, latest last."""
    from . import render
    from .timeutil import parse_when

    if count < 0:
        raise BadInput("-n/--count must be 0 or more")
    found = open_store().list_responses(
        count=1 if response_only else count, query=query, model=model, conversation_id=cid,
        since=parse_when(since, option="--since") if since else None,
        until=parse_when(until, end_of_day=True, option="--until") if until else None,
    )
    if response_only:
        if found:
            typer.echo(found[-1].response or "")
    elif json_output:
        _print_json([r.to_json() for r in found])
    elif short:
        typer.echo(render.responses_short(found))
    elif found:
        typer.echo(render.responses_markdown(found, truncate_text=truncate_text))


@logs_app.command("show")
def logs_show(
    response_id: str = typer.Argument(..., help="Response id."),
    json_output: bool = typer.Option(False, "--json", help="Output JSON."),
) -> None:
    """Show one response in full."""
    from . import render

    found = open_store().get_response(response_id)
    if json_output:
        _print_json(found.to_json())
    else:
        typer.echo(render.responses_markdown([found]))


@logs_app.command("path")
def logs_path() -> None:
    """Print the path of the database."""
    typer.echo(str(db_path()))


@logs_app.command("status")
def logs_status() -> None:
    """Counts, file size and whether logging is on."""
    from . import render
    from .prompting import logging_enabled

    typer.echo(render.status_text(open_store().status(), logging_on=logging_enabled()))


@logs_app.command("on")
def logs_on() -> None:
    """Log prompts (the default)."""
    paths.logs_off_path().unlink(missing_ok=True)
    typer.echo("Logging is on")


@logs_app.command("off")
def logs_off() -> None:
    """Stop logging prompts on this machine (``log`` still records)."""
    off = paths.logs_off_path()
    off.parent.mkdir(parents=True, exist_ok=True)
    off.touch()
    typer.echo("Logging is off")


@logs_app.command("rm")
def logs_rm(
    response_ids: list[str] = typer.Argument(None, help="Response ids to delete."),
    conversation: Optional[str] = typer.Option(None, "--conversation", help="Delete this whole conversation."),
    before: Optional[str] = typer.Option(None, "--before", help="Delete everything before this date or time."),
    yes: bool = typer.Option(False, "-y", "--yes", help="Do not ask for confirmation."),
) -> None:
    """Delete responses; they stay deleted on every machine after sync."""
    from .timeutil import parse_when

    if not response_ids and conversation is None and before is None:
        raise BadInput("name response ids, --conversation CID or --before DATE")
    store = open_store()
    doomed = store.select_for_delete(
        response_ids=response_ids or [], conversation_id=conversation,
        before=parse_when(before, option="--before") if before else None,
    )
    if not doomed and conversation is None:
        typer.echo("Nothing to delete.")
        return
    if not yes:
        if sys.stdin is None or not sys.stdin.isatty():
            raise BadInput(f"would delete {len(doomed)} responses: add --yes to confirm when not at a terminal")
        if not typer.confirm(f"Delete {len(doomed)} responses?", default=False):
            raise LocalFirstError("nothing deleted")
    deleted = store.delete(doomed, conversation_id=conversation)
    typer.echo(f"Deleted {deleted} responses.")


# -- conversations ---------------------------------------------------------


@conversations_app.command("list")
def conversations_list(
    count: int = typer.Option(0, "-n", "--count", help="How many (0 for all)."),
    json_output: bool = typer.Option(False, "--json", help="Output a JSON array."),
) -> None:
    """Conversations, most recently active first."""
    from . import render

    found = open_store().conversations(count=count)
    if json_output:
        _print_json([c.to_json() for c in found])
    else:
        typer.echo(render.conversations_table(found))


@conversations_app.command("rename")
def conversations_rename(
    cid: str = typer.Argument(..., help="Conversation id."),
    name: str = typer.Argument(..., help="New name."),
) -> None:
    """Rename a conversation (the latest rename wins on every machine)."""
    open_store().rename_conversation(cid, name)
    typer.echo(f"Renamed {cid.lower()}")


# -- merge -----------------------------------------------------------------


@app.command("merge")
def merge_command(other: Path = typer.Argument(..., help="Another localfirst database file.")) -> None:
    """Merge another localfirst database into this one."""
    from sync import merge_database

    result = merge_database(open_store(), other)
    typer.echo(result.summary(str(other)))


# -- sync --------------------------------------------------------------------

remote_app = typer.Typer(help="Add, list, remove and inspect sync remotes.", no_args_is_help=True)
app.add_typer(remote_app, name="remote")


class _ProgressBar:
    """A progress bar on stderr when it is a terminal; nothing when piped."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Any = None
        self.task: Any = None

    def __call__(self, done: int, total: int) -> None:
        if not sys.stderr.isatty():
            return
        if self.bar is None:
            from rich.console import Console
            from rich.progress import Progress

            self.bar = Progress(console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=total)
        self.bar.update(self.task, completed=done, total=total)

    def __enter__(self) -> _ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def _show(result: Any, json_output: bool) -> None:
    """A sync result as JSON, or as its one summary line."""
    if json_output:
        _print_json(result.to_json())
    else:
        typer.echo(result.summary())


_REMOTE_ARG = typer.Argument(None, help="Remote name (optional when only one is configured).")
_JSON_OPT = typer.Option(False, "--json", help="Output JSON.")


@app.command("push")
def push_command(remote: Optional[str] = _REMOTE_ARG, json_output: bool = _JSON_OPT) -> None:
    """Send this machine's new writes to a remote."""
    import sync

    with _ProgressBar("Pushing") as bar:
        result = sync.push(open_store(), remote, progress=bar)
    _show(result, json_output)


@app.command("pull")
def pull_command(remote: Optional[str] = _REMOTE_ARG, json_output: bool = _JSON_OPT) -> None:
    """Apply what other machines pushed to a remote."""
    import sync

    with _ProgressBar("Pulling") as bar:
        result = sync.pull(open_store(), remote, progress=bar)
    _show(result, json_output)


@app.command("sync")
def sync_command(remote: Optional[str] = _REMOTE_ARG, json_output: bool = _JSON_OPT) -> None:
    """Pull, then push."""
    import sync

    with _ProgressBar("Syncing") as bar:
        result = sync.sync(open_store(), remote, progress=bar)
    _show(result, json_output)


@remote_app.command("add")
def remote_add(
    name: str = typer.Argument(..., help="A short name for the remote."),
    url: str = typer.Argument(..., help="file:///path/to/folder or s3://bucket/prefix."),
    endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url", help="S3 endpoint (MinIO, R2, Ceph)."),
    region: Optional[str] = typer.Option(None, "--region", help="S3 region."),
    profile: Optional[str] = typer.Option(None, "--profile", help="AWS profile for credentials."),
) -> None:
    """Add a remote; the next push sends everything already logged."""
    from sync import add_remote

    added = add_remote(open_store(), name, url, endpoint_url=endpoint_url, region=region, profile=profile)
    typer.echo(f"Added remote {added.name}: {added.url}")


@remote_app.command("list")
def remote_list(json_output: bool = _JSON_OPT) -> None:
    """List the configured remotes."""
    from sync import list_remotes

    found = list_remotes(open_store())
    if json_output:
        _print_json([r.to_json() for r in found])
        return
    for r in found:
        extra = "".join(f" {k}={v}" for k, v in r.to_json().items() if v and k not in ("name", "url"))
        typer.echo(f"{r.name}\t{r.url}{extra}")


@remote_app.command("remove")
def remote_remove(name: str = typer.Argument(..., help="Remote name.")) -> None:
    """Forget a remote (nothing on the remote is deleted)."""
    from sync import remove_remote

    remove_remote(open_store(), name)
    typer.echo(f"Removed remote {name}")


@remote_app.command("status")
def remote_status(remote: Optional[str] = _REMOTE_ARG, json_output: bool = _JSON_OPT) -> None:
    """What waits to be pushed; what each host pushed and how much is applied here."""
    from sync import status

    found = status(open_store(), remote)
    if json_output:
        _print_json(found.to_json())
        return
    pending = f" (changeset {found.pending_changeset} pending)" if found.pending_changeset else ""
    typer.echo(f"{found.remote} {found.url}\n{found.waiting} rows waiting to be pushed{pending}")
    for h in found.hosts:
        who = " (this machine)" if h.this_machine else ""
        typer.echo(f"  {h.host}{who}: pushed {h.pushed}, applied here {h.applied}")


@remote_app.command("reset-host")
def remote_reset_host() -> None:
    """Give this database a new host id (after a fork error)."""
    from sync import reset_host

    old, new = reset_host(open_store())
    typer.echo(f"Host id {old} -> {new}; run `localfirst sync` to push unsent changes under it")


def main(argv: Optional[list[str]] = None) -> int:
    """Run the CLI; the one place where errors become messages."""
    try:
        code = _command().main(args=argv, prog_name="localfirst", standalone_mode=False)
    except LocalFirstError as exc:
        typer.echo(f"Error: {exc}", err=True)
        return exc.exit_code
    except typer.TyperException as exc:
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
            typer.echo(ctx.get_help())
            return 0
        message = " ".join(exc.format_message().split())
        typer.echo(f"Error: {message}", err=True)
        return int(getattr(exc, "exit_code", 2))
    except typer.Abort:
        typer.echo("Error: aborted", err=True)
        return 1
    except BrokenPipeError:
        return 1
    finally:
        if state.store is not None:
            state.store.close()
            state.store = None
    return code if isinstance(code, int) else 0
