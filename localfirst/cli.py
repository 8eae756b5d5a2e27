"""The command line. The only module that imports typer.

Each command parses its options, makes one library call and renders the
result. Errors a user can cause arrive as LocalFirstError and become one
``Error: ...`` line in :func:`main` (through :func:`localfirst.running.finish`,
which the typer-free start of ``logs list`` in :mod:`localfirst.entry` shares).
"""

from __future__ import annotations

import copy
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import typer

from . import __version__, paths, running
from .errors import BadInput, LocalFirstError
from .logs_list import check_count as _check_count
from .logs_list import list_logs
from .store import Store
from .textutil import plural

app = typer.Typer(
    name="localfirst",
    help="Your LLM conversations in a local SQLite file, on every machine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
logs_app = typer.Typer(help="List, search, show and delete logged responses (alone: list).")
conversations_app = typer.Typer(help="List and rename conversations.", no_args_is_help=True)
app.add_typer(logs_app, name="logs")
app.add_typer(conversations_app, name="conversations")


class _State:
    db_path: Optional[Path] = None
    store: Optional[Store] = None


state = _State()


def db_path() -> Path:
    """The database this run uses; nothing is created."""
    if state.db_path is not None:
        return state.db_path
    return paths.default_db_path()


def open_store(*, for_reading: bool = False) -> Store:
    """The store of this run, opened once.

    ``for_reading``: the command only reads, so nothing is created or written
    (a database not made yet in the home reads as empty; a file named by --db
    must exist), and a file that cannot be written is read as it is.
    """
    if state.store is None:
        state.store = running.open_store(state.db_path, for_reading=for_reading)
    return state.store


def _continuing_store(continue_: bool, cid: Optional[str]) -> Callable[[], Store]:
    """open_store, except that continuing with no database yet is an error, not a new file."""
    def opener() -> Store:
        if (continue_ or cid is not None) and state.store is None and not db_path().exists():
            from .errors import NotFound

            raise NotFound("there is no conversation to continue yet" if continue_
                           else f"no conversation with id {cid}")
        return open_store()

    return opener


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


def _stdin_bytes() -> bytes:
    """All of stdin as bytes (``-a -``, ``-f -``)."""
    if sys.stdin is None or sys.stdin.isatty():
        raise BadInput("- reads stdin, but stdin is a terminal: pipe something into it")
    buffer = getattr(sys.stdin, "buffer", None)
    return buffer.read() if buffer is not None else sys.stdin.read().encode("utf-8")


# typer has no list-of-pairs option; options with this metavar are given
# nargs=2 on the click command in _command(), so each value is (KEY, VALUE).
PAIR = "KEY VALUE"
TYPED_INPUT = "PATH|URL|- TYPE"
TYPED_FILE = "PATH|URL TYPE"  # chat: stdin holds the prompts


def _first_command(argv: list[str]) -> Optional[str]:
    """The top-level command named in ``argv``, skipping the global options."""
    args = iter(argv)
    for arg in args:
        if arg == "--db":
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


# Groups whose bare name runs one of their commands, as `llm logs` and `llm models` do.
GROUP_DEFAULTS = {"logs": "list", "models": "list"}
_ROOT_FLAGS = ("--help", "--version", "--install-completion", "--show-completion")


def _name(info: Any) -> str:
    return str(info.name or (info.callback.__name__ if info.callback else "").replace("_", "-"))


def with_default_command(argv: list[str]) -> list[str]:
    """``argv`` with the command llm would run filled in.

    Anything that is not a command name (a prompt, or an option such as -m)
    runs ``prompt``, as ``llm "question"`` does; ``logs`` and ``models`` alone
    (or followed by options) run their ``list``. Nothing at all prints help.
    """
    i = 0
    while i < len(argv) and (argv[i] == "--db" or argv[i].startswith("--db=")):
        i += 2 if argv[i] == "--db" else 1
    if i >= len(argv) or argv[i] in _ROOT_FLAGS:
        return argv
    first = argv[i]
    groups = {g.name: g.typer_instance for g in app.registered_groups}
    if first not in groups and first not in {_name(c) for c in app.registered_commands}:
        return [*argv[:i], "prompt", *argv[i:]]
    if first in GROUP_DEFAULTS:
        rest = argv[i + 1:]
        group = groups[first]
        names = {_name(c) for c in group.registered_commands} if group is not None else set()
        if not rest or (rest[0] not in names and rest[0] != "--help"):
            return [*argv[:i + 1], GROUP_DEFAULTS[first], *rest]
    return argv


def _command(argv: Optional[list[str]] = None) -> Any:
    """The click command for this run.

    typer converts every command's signature when it builds the tree; a run
    that names its command gets a tree holding only that one. Measured on
    `python -m localfirst logs list -n 1` (empty database, medians of 30 runs
    each, alternating, 2-core machine): 92-93 ms with it, 98 ms without, so it
    saves 5-6 ms. Help for the whole program and unknown names use the full tree.
    """
    source = app
    target = _first_command(sys.argv[1:] if argv is None else argv)
    if target is not None:
        slim = copy.copy(app)
        slim.registered_commands = [c for c in app.registered_commands if _name(c) == target]
        slim.registered_groups = [g for g in app.registered_groups if g.name == target]
        # --install-completion is a root option, used without a command
        # (and shell completion itself runs with no arguments): ~3 ms saved.
        slim._add_completion = False
        if slim.registered_commands or slim.registered_groups:
            source = slim
    command = typer.main.get_command(source)
    stack = [command]
    while stack:
        current = stack.pop()
        stack.extend(getattr(current, "commands", {}).values())
        for param in current.params:
            if getattr(param, "metavar", None) in (PAIR, TYPED_INPUT, TYPED_FILE):
                param.nargs = 2
            elif param.param_type_name == "argument" and param.name:
                # typer 0.28 shows a required argument as {name}; click's own
                # style is NAME, [NAME] or NAME..., which is what the docs use.
                name = param.metavar or param.name.upper()
                name = (name if param.required else f"[{name}]") + ("..." if param.nargs == -1 else "")
                param.make_metavar = lambda *_args, _name=name, **_kwargs: _name  # type: ignore[method-assign]
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


def _typed(pairs: list[Any]) -> list[tuple[str, str]]:
    """``--at PATH TYPE`` values (typer hands each pair over as a sequence of two)."""
    return [(str(spec), str(kind)) for spec, kind in pairs]


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
        prompt = _stdin_text() or None
    rid = log_exchange(
        _continuing_store(continue_, cid)(), model=model, prompt=prompt, response=response, system=system,
        continue_latest=continue_, cid=cid, simulated=simulated, document=document,
    )
    typer.echo(rid)


_INPUT = "PATH|URL|-"


@app.command("prompt")
def prompt_command(
    prompt: Optional[str] = typer.Argument(None, help="The prompt, or a template's input; piped stdin goes first."),
    model: Optional[str] = typer.Option(None, "-m", "--model", help="Model to use (localfirst's, or llm's)."),
    system: Optional[str] = typer.Option(None, "-s", "--system", help="System prompt."),
    attachment: list[str] = typer.Option([], "-a", "--attachment", metavar=_INPUT,
                                         help="Attach a file, a URL or stdin; repeatable. The bytes are stored."),
    attachment_type: list[str] = typer.Option([], "--at", "--attachment-type", metavar=TYPED_INPUT,
                                              help="Attach with this MIME type (--at photo.bin image/jpeg); "
                                                   "repeatable."),
    fragment: list[str] = typer.Option([], "-f", "--fragment", metavar=_INPUT,
                                       help="Text sent before the prompt, and recorded; repeatable."),
    system_fragment: list[str] = typer.Option([], "--sf", "--system-fragment", metavar=_INPUT,
                                              help="Text sent before the system prompt; repeatable."),
    continue_: bool = typer.Option(False, "-c", "--continue", help="Continue the latest conversation."),
    cid: Optional[str] = typer.Option(None, "--cid", help="Continue this conversation (id or 8+ characters of it)."),
    option: list[str] = typer.Option([], "-o", "--option", metavar=PAIR, help="Model option, repeatable."),
    template: Optional[str] = typer.Option(None, "-t", "--template", help="Fill and run this template."),
    param: list[str] = typer.Option([], "-p", "--param", metavar=PAIR, help="Template variable, repeatable."),
    no_log: bool = typer.Option(False, "-n", "--no-log", help="Do not log this exchange."),
    key: Optional[str] = typer.Option(None, "--key", help="API key for this call only (never stored)."),
    usage: bool = typer.Option(False, "-u", "--usage", help="Show token usage on stderr."),
    extract: bool = typer.Option(False, "-x", "--extract", help="Print only the first fenced code block."),
    extract_last: bool = typer.Option(False, "--xl", "--extract-last", help="Print only the last fenced code block."),
    no_stream: bool = typer.Option(False, "--no-stream", help="Wait for the whole answer instead of streaming."),
    timeout: Optional[float] = typer.Option(
        None, "--timeout", help="Seconds to wait for the model's next bytes (default 300).", metavar="SECONDS"
    ),
) -> None:
    """Send a prompt to a model and log the exchange (the default command)."""
    from .inputs import gather
    from .prompting import run_prompt

    if timeout is not None and timeout <= 0:
        raise BadInput("--timeout must be more than 0 seconds")
    options, extras, schema = _options(option), None, None
    if template is None and param:
        raise BadInput("-p/--param fills a template's variables: add -t NAME")
    got = gather(attachments=attachment, fragments=fragment, system_fragments=system_fragment, stdin=_stdin_bytes,
                 typed_attachments=_typed(attachment_type))
    # llm's order: what is piped in, a space, then the argument.
    stdin = None if got.stdin_used else _stdin_text()
    if stdin is not None and stdin.strip():
        prompt = stdin if prompt is None else f"{stdin} {prompt}"
    if template is not None:
        from .templates import apply_template

        filled = apply_template(open_store(), template, input=prompt, params=_pairs(param),
                                model=model, system=system, options=options)
        prompt, model, system, options = filled.prompt, filled.model, filled.system, filled.options
        extras, schema = filled.extras, filled.schema
        loaded = gather(attachments=[], fragments=filled.fragments, system_fragments=filled.system_fragments,
                        stdin=_stdin_bytes)
        got.fragments[:0], got.system_fragments[:0] = loaded.fragments, loaded.system_fragments
    if prompt is None and not got.fragments and not got.attachments:
        raise BadInput("give a prompt as an argument or on stdin")
    quiet = extract or extract_last

    def show(text: str) -> None:
        if not quiet:
            sys.stdout.write(text)
            sys.stdout.flush()

    response = run_prompt(
        _continuing_store(continue_, cid), prompt, model=model, system=system, options=options,
        continue_latest=continue_, cid=cid, log=not no_log, on_text=show,
        stream=not no_stream, timeout=timeout, extras=extras, attachments=got.attachments,
        fragments=got.fragments, system_fragments=got.system_fragments, key=key, schema=schema,
    )
    if quiet:
        from .textutil import fenced_code

        text = fenced_code(response.response, last=extract_last) or response.response or ""
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        sys.stdout.write("\n")
    if usage:
        from .textutil import usage_line

        typer.echo(usage_line(response.input_tokens, response.output_tokens, response.token_details), err=True)
    if (response.extras or {}).get("localfirst:interrupted"):
        logged = f"; logged what arrived as {response.id}" if response.id else ""
        typer.echo(f"Interrupted{logged}", err=True)
        raise typer.Exit(130)


@app.command("chat")
def chat_command(
    model: Optional[str] = typer.Option(None, "-m", "--model", help="Model to chat with (localfirst's, or llm's)."),
    system: Optional[str] = typer.Option(None, "-s", "--system", help="System prompt, sent with the first turn."),
    attachment: list[str] = typer.Option([], "-a", "--attachment", metavar="PATH|URL",
                                         help="Attach a file or a URL to the first turn; repeatable."),
    attachment_type: list[str] = typer.Option([], "--at", "--attachment-type", metavar=TYPED_FILE,
                                              help="Attach with this MIME type to the first turn; repeatable."),
    fragment: list[str] = typer.Option([], "-f", "--fragment", metavar="PATH|URL",
                                       help="Text sent before the first turn's prompt, and recorded; repeatable."),
    system_fragment: list[str] = typer.Option([], "--sf", "--system-fragment", metavar="PATH|URL",
                                              help="Text sent before the system prompt, with the first turn; "
                                                   "repeatable."),
    continue_: bool = typer.Option(False, "-c", "--continue", help="Continue the latest conversation."),
    cid: Optional[str] = typer.Option(None, "--cid", help="Continue this conversation (id or 8+ characters of it)."),
    option: list[str] = typer.Option([], "-o", "--option", metavar=PAIR, help="Model option, repeatable."),
    key: Optional[str] = typer.Option(None, "--key", help="API key for this chat only (never stored)."),
    no_stream: bool = typer.Option(False, "--no-stream", help="Wait for each whole answer instead of streaming."),
) -> None:
    """Chat with a model; every turn is logged into one conversation."""
    from .chatting import ChatSession, chat_loop
    from .inputs import gather

    if "-" in (*attachment, *(spec for spec, _ in _typed(attachment_type)), *fragment, *system_fragment):
        raise BadInput("chat reads its prompts from stdin, so - cannot be an attachment or a fragment")
    # Read before the first line, so that one that cannot be read stops the chat before it starts.
    got = gather(attachments=attachment, fragments=fragment, system_fragments=system_fragment,
                 typed_attachments=_typed(attachment_type), stdin=_stdin_bytes)

    at_terminal = sys.stdin is not None and sys.stdin.isatty()
    if at_terminal:
        import readline  # noqa: F401  (line editing and history for input())

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    session = ChatSession(_continuing_store(continue_, cid), model=model, system=system, options=_options(option),
                          continue_latest=continue_, cid=cid, key=key, stream=not no_stream,
                          attachments=got.attachments, fragments=got.fragments,
                          system_fragments=got.system_fragments)
    chat_loop(session, read_line=input, write=write, keep_going=at_terminal)


# -- logs ------------------------------------------------------------------


@logs_app.command("list")
def logs_list(
    count: int = typer.Option(3, "-n", "--count", min=0, help="How many responses (0 for all)."),
    query: Optional[str] = typer.Option(None, "-q", "--query", help="Full-text search, best match first."),
    model: Optional[str] = typer.Option(None, "-m", "--model", help="Only this model."),
    cid: Optional[str] = typer.Option(None, "--cid", help="Only this conversation (id or 8+ characters of it)."),
    since: Optional[str] = typer.Option(None, "--since", help="From this date or ISO time (UTC)."),
    until: Optional[str] = typer.Option(None, "--until", help="Up to this date or ISO time (UTC)."),
    json_output: bool = typer.Option(False, "--json", help="Output a JSON array."),
    short: bool = typer.Option(False, "-s", "--short", help="One short entry per response."),
    truncate_text: bool = typer.Option(False, "-t", "--truncate", help="Truncate long text."),
    response_only: bool = typer.Option(False, "-r", "--response", help="Only the last response's text."),
) -> None:
    """List logged responses, latest last."""
    list_logs(lambda: open_store(for_reading=True), echo=typer.echo, count=count, query=query, model=model,
              cid=cid, since=since, until=until, json_output=json_output, short=short,
              truncate_text=truncate_text, response_only=response_only)


@logs_app.command("show")
def logs_show(
    response_id: str = typer.Argument(..., help="Response id, or its first 8 or more characters."),
    json_output: bool = typer.Option(False, "--json", help="Output JSON."),
) -> None:
    """Show one response in full."""
    from . import render

    found = open_store(for_reading=True).get_response(response_id)
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

    typer.echo(render.status_text(open_store(for_reading=True).status(), logging_on=logging_enabled()))


@logs_app.command("on")
def logs_on() -> None:
    """Log prompts (the default)."""
    from .prompting import set_logging

    set_logging(True)
    typer.echo("Logging is on")


@logs_app.command("off")
def logs_off() -> None:
    """Stop logging prompts on this machine (the log command still records)."""
    from .prompting import set_logging

    set_logging(False)
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
    cutoff = parse_when(before, option="--before") if before else None
    doomed = store.select_for_delete(response_ids=response_ids or [], conversation_id=conversation, before=cutoff)
    if not doomed and conversation is None:
        typer.echo("Nothing to delete.")
        return
    if not yes:
        if sys.stdin is None or not sys.stdin.isatty():
            raise BadInput(f"would delete {plural(len(doomed), 'response')}: "
                           "add --yes to confirm when not at a terminal")
        if not typer.confirm(f"Delete {plural(len(doomed), 'response')}?", default=False):
            raise LocalFirstError("nothing deleted")
    # The criteria are applied again inside the delete's transaction: what was
    # logged while the question was on screen goes too.
    deleted = store.delete(doomed, conversation_id=conversation, before=cutoff)
    typer.echo(f"Deleted {plural(deleted, 'response')}.")
    from .bridge import remove_deleted_now

    removed = remove_deleted_now(store)
    if removed:
        typer.echo(f"Removed {removed} from the linked llm database.")


# -- conversations ---------------------------------------------------------


@conversations_app.command("list")
def conversations_list(
    count: int = typer.Option(0, "-n", "--count", min=0, help="How many (0 for all)."),
    json_output: bool = typer.Option(False, "--json", help="Output a JSON array."),
) -> None:
    """Conversations, most recently active first."""
    from . import render

    _check_count(count)
    found = open_store(for_reading=True).conversations(count=count)
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

    result = merge_database(open_store, other)
    typer.echo(result.summary(str(other)))


# -- models and templates ---------------------------------------------------

models_app = typer.Typer(help="Configure the model servers localfirst can prompt (alone: list).")
templates_app = typer.Typer(help="The prompt library: templates kept in the database.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(templates_app, name="templates")


def _pairs(pairs: list[Any]) -> dict[str, str]:
    """``-p VAR VALUE`` / ``--header K V``: values stay text."""
    return {str(key): str(value) for key, value in pairs}


@models_app.command("add")
def models_add(
    name: str = typer.Argument(..., help="Name to use with -m."),
    base_url: str = typer.Option(..., "--base-url", help="The server's OpenAI-compatible base URL (…/v1)."),
    model_id: str = typer.Option(..., "--model", help="The model id the server knows."),
    api_key_env: Optional[str] = typer.Option(None, "--api-key-env", help="Read the API key from this variable."),
    header: list[str] = typer.Option([], "--header", metavar=PAIR, help="Extra HTTP header, repeatable."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Read time-out in seconds.", metavar="SECONDS"),
    default: bool = typer.Option(False, "--default", help="Also make it the default model."),
) -> None:
    """Add (or replace) a model on an OpenAI-compatible server."""
    from .models.config import add_model

    add_model(name, base_url=base_url, model=model_id, api_key_env=api_key_env, headers=_pairs(header),
              timeout=timeout, make_default=default)
    typer.echo(f"Added model {name}" + (" (default)" if default else ""))


@models_app.command("list")
def models_list(
    json_output: bool = typer.Option(False, "--json", help="Output a JSON array (with a source for each model)."),
    with_llm: bool = typer.Option(True, "--llm/--no-llm", help="Also list llm's models, when llm is installed."),
) -> None:
    """Configured models (* marks the default), then llm's."""
    from .listing import llm_models_text, models_json, models_table
    from .models import builtin_models, default_model_name
    from .models.config import key_source, load_config

    models = list(load_config().models.values())
    taken = {*builtin_models(), *(m.name for m in models)}
    llm_models: list[tuple[str, list[str]]] = []
    if with_llm:
        from .models.via_llm import llm_model_names  # imports llm, when it is installed

        llm_models = llm_model_names()
    if json_output:
        _print_json(models_json(models, llm_models, taken=taken))
        return
    sources = {m.name: key_source(m) for m in models}
    typer.echo(models_table(models, default=default_model_name(), key_sources=sources))
    extra = llm_models_text(llm_models, taken=taken)
    if extra:
        typer.echo("\n" + extra)


@models_app.command("default")
def models_default(name: Optional[str] = typer.Argument(None, help="Model to use without -m.")) -> None:
    """Show or set the model used when -m is not given."""
    from .models import default_model_name
    from .models.config import set_default

    if name is not None:
        set_default(name)
    typer.echo(default_model_name())


@models_app.command("remove")
def models_remove(name: str = typer.Argument(..., help="Configured model name.")) -> None:
    """Remove a model and its stored key."""
    from .models.config import remove_model

    remove_model(name)
    typer.echo(f"Removed model {name}")


@models_app.command("key")
def models_key(name: str = typer.Argument(..., help="Configured model name.")) -> None:
    """Store a model's API key in the keys file (mode 0600); reads it from stdin."""
    from .models.config import keys_path, set_key

    key = _stdin_text()
    if key is None:
        key = typer.prompt(f"API key for {name}", hide_input=True)
    set_key(name, key)
    typer.echo(f"Saved the key for {name} in {keys_path()}")


@templates_app.command("add")
def templates_add(
    name: str = typer.Argument(..., help="Template name."),
    prompt: Optional[str] = typer.Option(None, "--prompt", help="Prompt, with $variables and $input."),
    system: Optional[str] = typer.Option(None, "--system", help="System prompt, with $variables."),
    model: Optional[str] = typer.Option(None, "--model", help="Model to use by default."),
    option: list[str] = typer.Option([], "-o", "--option", metavar=PAIR, help="Model option, repeatable."),
    default: list[str] = typer.Option([], "-d", "--default", metavar=PAIR, help="Variable default, repeatable."),
) -> None:
    """Save a new template."""
    from .templates import add_template

    version = add_template(open_store(), name, prompt=prompt, system=system, model=model,
                           options=_options(option), defaults=_pairs(default))
    variables = " ".join("$" + v for v in version.variables())
    typer.echo(f"Saved template {name}" + (f" (variables: {variables})" if variables else ""))


@templates_app.command("list")
def templates_list(json_output: bool = typer.Option(False, "--json", help="Output a JSON array.")) -> None:
    """Every template: personal ones, then each team's (TEAM/NAME), with which are read-only here."""
    from .listing import templates_table
    from .templates import list_templates

    found = list_templates(open_store())
    if json_output:
        _print_json([t.to_json() for t in found])
    else:
        typer.echo(templates_table(found))


@templates_app.command("show")
def templates_show(
    name: str = typer.Argument(..., help="Template name."),
    json_output: bool = typer.Option(False, "--json", help="Output JSON."),
) -> None:
    """Show a template's current version as YAML."""
    from .template_files import dump_template_yaml
    from .templates import get_template

    version = get_template(open_store(), name)
    if json_output:
        _print_json(version.to_json())
    else:
        typer.echo(dump_template_yaml(version).rstrip("\n"))


@templates_app.command("edit")
def templates_edit(name: str = typer.Argument(..., help="Template name.")) -> None:
    """Edit a template in $EDITOR; saving it adds a version."""
    from .template_files import edit_template

    version = edit_template(open_store(), name)
    typer.echo(f"Saved a new version of {name}" if version else f"No changes to {name}")


@templates_app.command("rm")
def templates_rm(name: str = typer.Argument(..., help="Template name.")) -> None:
    """Delete a template and all its versions, on every machine after sync."""
    from .templates import remove_template

    count = remove_template(open_store(), name)
    typer.echo(f"Deleted template {name} ({plural(count, 'version')})")


@templates_app.command("history")
def templates_history(
    name: str = typer.Argument(..., help="Template name."),
    json_output: bool = typer.Option(False, "--json", help="Output a JSON array."),
) -> None:
    """Every version of a template, newest first, with the labels pointing at each."""
    from .listing import template_history_text
    from .templates import template_history

    versions = template_history(open_store(), name)
    if json_output:
        _print_json([v.to_json() for v in versions])
    else:
        typer.echo(template_history_text(versions))


@templates_app.command("label")
def templates_label(
    name: str = typer.Argument(..., help="Template name (NAME or TEAM/NAME)."),
    label: str = typer.Argument(..., help="The label: production, staging, any name."),
    version: Optional[str] = typer.Argument(None, help="Version id, or its first 8+ characters (default: the "
                                                       "current version)."),
) -> None:
    """Point a label at a version; `-t NAME@LABEL` runs what it points at, on every machine after sync."""
    from .templates import label_template

    target = label_template(open_store(), name, label, version)
    typer.echo(f"{name}@{label} is now version {target.id} (saved {target.created_utc[:19].replace('T', ' ')})")


@templates_app.command("publish")
def templates_publish(
    name: str = typer.Argument(..., help="A personal template (NAME or NAME@VERSION)."),
    team: str = typer.Argument(..., help="The team to publish it to."),
) -> None:
    """Put a personal template into a team's library as TEAM/NAME (a new version if it is there already)."""
    from .templates import parse_ref, publish_template

    version = publish_template(open_store(), name, team)
    target = f"{team}/{parse_ref(name).name}"
    typer.echo(f"{target} already says the same; nothing changed" if version is None
               else f"Published {target} (version {version.id}); the team gets it at your next sync")


@templates_app.command("copy")
def templates_copy(
    name: str = typer.Argument(..., help="Any template: NAME, TEAM/NAME, with @LABEL or @VERSION."),
    new: str = typer.Argument(..., help="The name of the personal copy."),
) -> None:
    """Take a copy of a template (a team's, say) as a personal template you can change."""
    from .templates import copy_template

    version = copy_template(open_store(), name, new)
    typer.echo(f"Copied {name} to {new} (version {version.id})")


@templates_app.command("import")
def templates_import(
    directory: Path = typer.Argument(..., help="Directory of llm template YAML files."),
    strict: bool = typer.Option(False, "--strict", help="Refuse files with keys localfirst does not know."),
) -> None:
    """Import llm's template YAML files (NAME.yaml) from a directory."""
    from .template_files import import_templates

    _show_template_import(import_templates(open_store(), directory.expanduser(), strict=strict))


def _show_template_import(result: Any) -> None:
    for name, keys in result.unknown_keys.items():
        typer.echo(f"Warning: {name}: kept unknown keys {', '.join(keys)} as extras", err=True)
    typer.echo(f"Imported {len(result.added)} new, {len(result.changed)} changed, "
               f"{len(result.unchanged)} unchanged templates")


@templates_app.command("export")
def templates_export(directory: Path = typer.Argument(..., help="Directory to write NAME.yaml files to.")) -> None:
    """Write every personal template as an llm template YAML file."""
    from .template_files import export_templates

    written = export_templates(open_store(), directory.expanduser())
    typer.echo(f"Exported {plural(len(written), 'template')} to {directory}")


# -- import and export -----------------------------------------------------

import_app = typer.Typer(help="Bring other tools' history into localfirst.", no_args_is_help=True)
app.add_typer(import_app, name="import")


def _import_progress() -> Any:
    """A rich progress bar on stderr when it is a terminal; otherwise nothing to draw."""
    from contextlib import nullcontext

    if sys.stderr is None or not sys.stderr.isatty():
        return nullcontext(None)
    from contextlib import contextmanager

    @contextmanager
    def bar() -> Any:
        from rich.console import Console
        from rich.progress import Progress

        with Progress(console=Console(stderr=True), transient=True) as progress:
            task = progress.add_task("Importing", total=None)
            yield lambda done, total: progress.update(task, completed=done, total=total)

    return bar()


@import_app.command("llm")
def import_llm_command(
    path: Optional[Path] = typer.Argument(
        None, help="llm's logs.db (default: the one in LLM_USER_PATH or llm's user directory)."),
    templates: bool = typer.Option(
        False, "--templates", help="Import llm's templates instead; PATH is then the templates folder."),
    json_output: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Import llm's logs; run it again to import only what is new."""
    from .importers import import_llm, import_llm_templates

    if templates:
        _show_template_import(import_llm_templates(open_store(), path.expanduser() if path is not None else None))
        return
    with _import_progress() as progress:
        report = import_llm(open_store(), path.expanduser() if path is not None else None, progress=progress)
    if json_output:
        _print_json(report.to_json())
    else:
        typer.echo(report.summary())


@import_app.command("jsonl")
def import_jsonl_command(
    path: str = typer.Argument(..., help="A file written by export --format jsonl, or - for stdin."),
    json_output: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Restore what export --format jsonl wrote, exactly; all of it or nothing; again changes nothing."""
    from .restore import import_jsonl_path

    result = import_jsonl_path(open_store, path, stdin=sys.stdin)
    if json_output:
        _print_json(result.to_json())
    else:
        typer.echo(result.summary("stdin" if path == "-" else path))


@app.command("backup")
def backup_command(path: Path = typer.Argument(..., help="The new file to write the copy to.")) -> None:
    """Copy the live database to a new file, consistent while others write, without this machine's sync id."""
    from .backup import backup

    result = backup(open_store(for_reading=True), path)
    typer.echo(f"Backed up {result.responses} responses to {result.path} ({result.size_bytes} bytes)")


@app.command("serve")
def serve_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(0, "--port", help="Port to listen on (default: a free one)."),
    open_browser: bool = typer.Option(False, "--open", help="Open the page in a web browser."),
) -> None:
    """Browse the database in Datasette, read-only, with a transcript page per conversation."""
    from .web import prepare

    server = prepare(db_path(), host=host, port=port)
    typer.echo(f"Serving {db_path()} read-only at {server.url} (Ctrl-C stops)", err=True)
    typer.echo(server.url)
    sys.stdout.flush()
    if open_browser:
        import webbrowser

        webbrowser.open(server.url)
    server.run()


@app.command("export")
def export_command(
    path: Optional[Path] = typer.Argument(None, help="The file to write (required with --format llm)."),
    fmt: str = typer.Option("jsonl", "--format", "-f", help="jsonl, markdown or llm."),
    cid: Optional[str] = typer.Option(None, "--cid", help="Only this conversation."),
    since: Optional[str] = typer.Option(None, "--since", help="From this date or ISO time (UTC)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write to this file, not stdout."),
) -> None:
    """Export responses as JSON lines, Markdown transcripts or an llm database."""
    from .exporters import export
    from .timeutil import parse_when

    if path is not None and output is not None:
        raise BadInput("give the output file once: as PATH or with -o")
    target = path or output
    result = export(
        open_store(for_reading=True), fmt, output=target.expanduser() if target is not None else None,
        stream=sys.stdout, cid=cid, since=parse_when(since, option="--since") if since else None,
    )
    if result.path is not None:
        typer.echo(f"Exported {plural(result.responses, 'response')} to {result.path}", err=True)
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
_PASSPHRASE_FILE = typer.Option(None, "--passphrase-file", metavar="PATH",
                                help="Read the passphrase (or recovery key) from this file.")
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

    from .bridge import around_sync

    store = open_store()
    names: list[str | None] = [remote] if remote is not None else [r.name for r in sync.list_remotes(store)]
    names = names or [None]
    if len(names) == 1:
        with _ProgressBar("Syncing") as bar:
            result, bridged = around_sync(store, lambda: sync.sync(store, names[0], progress=bar))
        if json_output:
            _print_json({**result.to_json(), "llm": bridged.to_json() if bridged else None})
        else:
            typer.echo(result.summary())
            if bridged is not None:
                typer.echo(bridged.summary())
        return
    # Several remotes (a person's own and their teams'): each in turn; one that
    # fails does not stop the others, and its error is the command's.
    failed: list[LocalFirstError] = []

    def every() -> list[Any]:
        done = []
        for name in names:
            try:
                with _ProgressBar(f"Syncing {name}") as bar:
                    done.append(sync.sync(store, name, progress=bar))
            except LocalFirstError as exc:
                failed.append(type(exc)(f"{name}: {exc.message}"))
        return done

    results, bridged = around_sync(store, every)
    if json_output:
        _print_json({"remotes": [r.to_json() for r in results], "llm": bridged.to_json() if bridged else None})
    else:
        for r in results:
            typer.echo(r.summary())
        if bridged is not None:
            typer.echo(bridged.summary())
    if failed:
        raise failed[0]


@app.command("compact")
def compact_command(
    remote: Optional[str] = _REMOTE_ARG,
    margin: str = typer.Option("7d", "--margin", metavar="DURATION",
                               help="Delete only what a snapshot at least this old holds (7d, 12h, 0)."),
    purge: bool = typer.Option(False, "--purge", help="Margin zero, and remove every older snapshot: deleted rows "
                                                      "leave the remote."),
    json_output: bool = _JSON_OPT,
) -> None:
    """Write a snapshot of the remote, then delete the changesets and snapshots it supersedes."""
    import sync
    from sync.compaction import parse_duration

    seconds = parse_duration(margin)
    _show(sync.compact(open_store(), remote, margin=seconds, purge=purge), json_output)


@app.command("verify")
def verify_command(
    remote: Optional[str] = _REMOTE_ARG,
    read_data_subset: Optional[float] = typer.Option(
        None, "--read-data-subset", metavar="PERCENT", min=0, max=100,
        help="Read this share of objects in full (default: names, sizes and stored hashes only)."),
    local: bool = typer.Option(False, "--local", help="Also check this database: integrity, search index, "
                                                       "capture triggers."),
    json_output: bool = _JSON_OPT,
) -> None:
    """Prove that a remote is whole (exit 0), or list what is damaged (exit 1). Repairs nothing."""
    import sync

    found = sync.verify(open_store(), remote, share=(read_data_subset or 0) / 100, local=local)
    if json_output:
        _print_json(found.to_json())
    else:
        for p in found.problems:
            typer.echo(f"{p.object}: {p.what}")
        typer.echo(found.summary())
    if found.problems:
        raise typer.Exit(1)


@remote_app.command("add")
def remote_add(
    name: str = typer.Argument(..., help="A short name for the remote."),
    url: str = typer.Argument(..., help="file:///path/to/folder or s3://bucket/prefix."),
    endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url", help="S3 endpoint (MinIO, R2, Ceph)."),
    region: Optional[str] = typer.Option(None, "--region", help="S3 region."),
    profile: Optional[str] = typer.Option(None, "--profile", help="AWS profile for credentials."),
    encrypt: bool = typer.Option(False, "--encrypt", help="Create the remote encrypted end to end (a remote that "
                                                         "is already encrypted is noticed without it)."),
    passphrase_file: Optional[Path] = _PASSPHRASE_FILE,
) -> None:
    """Add a remote; the next push sends everything already logged.

    An encrypted remote asks for its passphrase (or recovery key): from
    --passphrase-file, LOCALFIRST_PASSPHRASE, or the terminal.
    """
    from sync import add_remote

    added = add_remote(open_store(), name, url, endpoint_url=endpoint_url, region=region, profile=profile,
                       encrypt=encrypt, passphrase=_passphrase(passphrase_file))
    how = " (encrypted)" if added.config.encrypted else ""
    typer.echo(f"Added remote {added.name}: {added.url}{how}")
    if not added.reached:
        typer.echo(f"Could not reach {added.url} now; it is checked at the first sync.", err=True)
    if added.recovery_key:
        typer.echo(f"Recovery key, shown only now: {added.recovery_key}\n"
                   "Keep it away from this machine: with the passphrase lost, it is the only way back in.")


# -- team libraries -----------------------------------------------------------

team_app = typer.Typer(help="Team prompt libraries: shared through a bucket, changed only by its writers.",
                       no_args_is_help=True)
app.add_typer(team_app, name="team")


@team_app.command("create")
def team_create(
    name: str = typer.Argument(..., help="A short name for the team (TEAM in TEAM/NAME)."),
    url: str = typer.Argument(..., help="An empty folder or prefix: file:///path or s3://bucket/prefix."),
    endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url", help="S3 endpoint (MinIO, R2, Ceph)."),
    region: Optional[str] = typer.Option(None, "--region", help="S3 region."),
    profile: Optional[str] = typer.Option(None, "--profile", help="AWS profile for credentials."),
    encrypt: bool = typer.Option(False, "--encrypt", help="Encrypt the library end to end."),
    passphrase_file: Optional[Path] = _PASSPHRASE_FILE,
    json_output: bool = _JSON_OPT,
) -> None:
    """Make a team library that you own; prints the fingerprint members join with."""
    import sync

    made = sync.create_team(open_store(), name, url, endpoint_url=endpoint_url, region=region, profile=profile,
                            encrypt=encrypt, passphrase=_passphrase(passphrase_file) if encrypt else None)
    if json_output:
        _print_json({"name": made.config.name, "url": made.config.url, "fingerprint": made.fingerprint,
                     "writer_key": made.config.writer, "encrypted": made.config.encrypted,
                     "recovery_key": made.recovery_key})
        return
    typer.echo(f"Created team {name} at {made.config.url}" + (" (encrypted)" if made.config.encrypted else ""))
    typer.echo(f"Fingerprint: {made.fingerprint}")
    typer.echo(f"Members join with: localfirst team join {name} {made.config.url} --trust {made.fingerprint}")
    if made.recovery_key:
        typer.echo(f"Recovery key, shown only now: {made.recovery_key}")


@team_app.command("join")
def team_join(
    name: str = typer.Argument(..., help="The team's name on this machine."),
    url: str = typer.Argument(..., help="The team library's URL."),
    trust: str = typer.Option(..., "--trust", metavar="FINGERPRINT",
                              help="The owner's fingerprint, as `team create` printed it."),
    read_only: bool = typer.Option(False, "--read-only", help="Only read: never write to the library."),
    endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url", help="S3 endpoint (MinIO, R2, Ceph)."),
    region: Optional[str] = typer.Option(None, "--region", help="S3 region."),
    profile: Optional[str] = typer.Option(None, "--profile", help="AWS profile for credentials."),
    passphrase_file: Optional[Path] = _PASSPHRASE_FILE,
    json_output: bool = _JSON_OPT,
) -> None:
    """Join a team library; nothing is saved unless its owner's fingerprint matches --trust."""
    import sync

    joined = sync.join_team(open_store(), name, url, trust=trust, read_only=read_only, endpoint_url=endpoint_url,
                            region=region, profile=profile, passphrase=_passphrase(passphrase_file))
    writer = joined.config.writer
    listed = writer in joined.writers.writers
    if json_output:
        _print_json({"name": name, "url": joined.config.url, "fingerprint": joined.fingerprint,
                     "read_only": read_only, "writer_key": writer, "writer": listed and not read_only})
        return
    typer.echo(f"Joined team {name} at {joined.config.url}" + (" read-only" if read_only else ""))
    if not read_only and not listed:
        typer.echo(f"To write to it, give the owner your key, for `localfirst team writers {name} add KEY`:\n"
                   f"  {writer}")
    typer.echo(f"Run `localfirst sync {name}` to fetch its templates.")


@team_app.command("whoami")
def team_whoami(name: str = typer.Argument(..., help="The team's name."), json_output: bool = _JSON_OPT) -> None:
    """This machine's writer key for a team (give it to the owner to become a writer)."""
    import sync

    key = sync.team_whoami(open_store(), name)
    if json_output:
        _print_json({"team": name, "key": key})
    else:
        typer.echo(key)


@team_app.command("writers")
def team_writers(
    name: str = typer.Argument(..., help="The team's name."),
    action: Optional[str] = typer.Argument(None, metavar="add|remove", help="add or remove a key (the owner only)."),
    key: Optional[str] = typer.Argument(None, help="A writer key, as `team whoami` prints it."),
    json_output: bool = _JSON_OPT,
) -> None:
    """The keys that may write to a team; its owner adds and removes them (the list is signed)."""
    import sync

    if action not in (None, "add", "remove"):
        raise BadInput(f"{action!r}: use `team writers {name}`, `team writers {name} add KEY` or "
                       f"`team writers {name} remove KEY`")
    if action is not None and key is None:
        raise BadInput(f"`team writers {name} {action}` needs a writer key")
    store = open_store()
    found = sync.team_writers(store, name, add=key if action == "add" else None,
                              remove=key if action == "remove" else None)
    mine = sync.team_whoami(store, name)
    if json_output:
        _print_json({"team": name, "version": found.version, "owner": found.owner, "writers": list(found.writers),
                     "removed": sorted(found.removed)})
        return
    if action is not None:
        typer.echo(f"{'Added' if action == 'add' else 'Removed'} {key} (writer list version {found.version})")
    for writer in found.writers:
        typer.echo(writer + ("  (this machine)" if writer == mine else ""))


@remote_app.command("passphrase")
def remote_passphrase(
    name: Optional[str] = _REMOTE_ARG, passphrase_file: Optional[Path] = _PASSPHRASE_FILE,
) -> None:
    """Change an encrypted remote's passphrase: the old one stops working, the recovery key stays."""
    import sync

    sync.change_passphrase(open_store(), name, passphrase=_passphrase(passphrase_file))
    typer.echo("Passphrase changed; machines already syncing go on without it.")


@remote_app.command("rotate-key")
def remote_rotate_key(name: Optional[str] = _REMOTE_ARG) -> None:
    """Add a data key to an encrypted remote: new objects use it; `compact` rewrites the rest."""
    import sync

    key_id = sync.rotate_key(open_store(), name)
    typer.echo(f"New data key {key_id}: new objects are sealed with it; older ones stay readable.")


def _passphrase(path: Optional[Path]) -> Callable[[bool], str]:
    """Where a passphrase comes from: a file, LOCALFIRST_PASSPHRASE, or the terminal (asked twice when new)."""

    def ask(new: bool) -> str:
        if path is not None:
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
                raise BadInput(f"cannot read the passphrase file {path}: {why}") from None
            return text.removesuffix("\n").removesuffix("\r")
        env = os.environ.get("LOCALFIRST_PASSPHRASE")
        if env is not None:
            return env
        if not sys.stdin.isatty():
            raise BadInput("this remote needs a passphrase: set LOCALFIRST_PASSPHRASE, give --passphrase-file, "
                           "or run on a terminal")
        import getpass

        first = getpass.getpass("New passphrase: " if new else "Passphrase (or recovery key): ")
        if new and first and getpass.getpass("Again: ") != first:
            raise BadInput("the two passphrases differ; nothing was changed")
        return first

    return ask


@remote_app.command("list")
def remote_list(json_output: bool = _JSON_OPT) -> None:
    """List the configured remotes."""
    from sync import list_remotes
    from sync.keys import key_id as sync_key_id

    found = list_remotes(open_store())
    if json_output:
        _print_json([{**r.to_json(), "key_id": sync_key_id(r)} for r in found])
        return
    for r in found:
        extra = "".join(f" {k}={v}" for k, v in r.to_json().items()
                        if v and k not in ("name", "url", "encrypted") and v != "all")
        if r.encrypted:
            extra += f" encrypted key={sync_key_id(r) or 'missing on this machine'}"
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
    sealed = f" (encrypted, key {found.key_id})" if found.encrypted else " (not encrypted)"
    typer.echo(f"{found.remote} {found.url}{sealed}\n{found.waiting} rows waiting to be pushed{pending}")
    for h in found.hosts:
        who = " (this machine)" if h.this_machine else ""
        typer.echo(f"  {h.host}{who}: pushed {h.pushed}, applied here {h.applied}")
    if found.snapshot is None:
        typer.echo("No snapshot yet: a new machine replays every changeset (`localfirst compact` writes one)")
    else:
        snap = found.snapshot
        typer.echo(f"Newest snapshot {snap['id']} ({snap['rows']} rows), {_age(snap['age_seconds'])} old, "
                   f"covering {', '.join(f'{h} to {q}' for h, q in sorted(snap['covers'].items())) or 'nothing'}; "
                   f"{snap['changesets_after']} changesets ({snap['bytes_after']} bytes) after it")
    if found.conflicts:
        typer.echo(f"{len(found.conflicts)} keys arrived with other content than here; every machine keeps "
                   "the version with the smaller hash:")
        for c in found.conflicts[:20]:
            typer.echo(f"  {c.table} {c.key} from {c.source}: kept {c.kept[:12]}, dropped {c.other[:12]}")


def _age(seconds: int) -> str:
    if seconds < 3600:
        return f"{seconds // 60} minutes"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} hours"
    return f"{seconds // 86400} days"


@remote_app.command("reset-host")
def remote_reset_host() -> None:
    """Give this database a new host id (after a fork error)."""
    from sync import reset_host

    old, new = reset_host(open_store())
    typer.echo(f"Host id {old} -> {new}; run `localfirst sync` to push unsent changes under it")


# -- the bridge with llm's database --------------------------------------------

llm_app = typer.Typer(help="Link llm's own logs.db, so that sync carries it both ways.", no_args_is_help=True)
app.add_typer(llm_app, name="llm")


@llm_app.command("link")
def llm_link(
    path: Optional[Path] = typer.Argument(
        None, help="llm's logs.db (default: the one in LLM_USER_PATH or llm's user directory)."),
) -> None:
    """Link llm's database: every sync then imports from it and writes other machines' responses into it."""
    from .bridge import link

    linked = link(open_store(), path)
    typer.echo(f"Linked {linked}; `localfirst sync` (or `localfirst llm sync`) now carries it both ways")


@llm_app.command("unlink")
def llm_unlink() -> None:
    """Forget the link; nothing is removed from either database."""
    from .bridge import unlink

    typer.echo(f"Unlinked {unlink(open_store())}")


@llm_app.command("sync")
def llm_sync(json_output: bool = _JSON_OPT) -> None:
    """Bridge with the linked llm database now, without a remote."""
    from .bridge import run

    _show(run(open_store()), json_output)


def main(argv: Optional[list[str]] = None) -> int:
    """Run the CLI; errors become messages in :func:`localfirst.running.finish`, typer's own here."""
    args = with_default_command(list(sys.argv[1:] if argv is None else argv))

    def body() -> int:
        try:
            code = _command(args).main(args=args, prog_name="localfirst", standalone_mode=False)
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
        return code if isinstance(code, int) else 0

    return running.finish(body, echo=typer.echo, close=_close_store)


def _close_store() -> None:
    if state.store is not None:
        state.store.close()
        state.store = None
