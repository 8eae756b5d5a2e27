"""The llm plugin (entry point group ``llm``): localfirst inside ``llm``.

- ``llm localfirst ...`` runs localfirst's commands (``sync``, ``remote``,
  ``logs rm``, ``templates``, ``llm link`` ...) in llm's environment;
- ``llm -t lf:NAME`` (or ``lf:NAME@VERSION_ID``) runs a template of
  localfirst's library;
- ``llm -f lf:RESPONSE_ID`` inserts a logged response, prompt and answer,
  as a fragment.

llm imports this module on every command, so it imports nothing of ours at
module level: the hooks import what they need when they are called, and the
loaders only when llm calls them (``bench/plugin_startup.py`` measures it).
"""

from __future__ import annotations

from typing import Any

import llm

__all__ = ["register_commands", "register_template_loaders", "register_fragment_loaders"]

PREFIX = "lf"


def _run_localfirst(args: tuple[str, ...]) -> None:
    from .cli import main

    raise SystemExit(main(list(args) or ["--help"]))


@llm.hookimpl
def register_commands(cli: Any) -> None:
    import click  # llm's own click, already imported by llm

    cli.add_command(click.Command(
        name="localfirst",
        callback=_run_localfirst,
        params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        add_help_option=False,
        help="Run a localfirst command: sync, remote, logs rm, templates, llm link ... (--help for all).",
    ))


@llm.hookimpl
def register_template_loaders(register: Any) -> None:
    register(PREFIX, load_template)


@llm.hookimpl
def register_fragment_loaders(register: Any) -> None:
    register(PREFIX, load_fragment)


def load_template(spec: str) -> Any:
    """``lf:NAME`` or ``lf:NAME@VERSION_ID`` as an ``llm.Template``; anything else raises with a reason.

    llm shows the reason as ``Could not load template lf:...: <reason>``.
    """
    from .llm_loaders import template_fields

    template: Any = llm.Template  # pydantic's __init__ is untyped
    return template(**template_fields(spec))


def load_fragment(spec: str) -> Any:
    """``lf:RESPONSE_ID`` as an ``llm.Fragment`` holding the response's prompt and answer."""
    from .llm_loaders import fragment_text

    text, source = fragment_text(spec)
    fragment: Any = llm.Fragment
    return fragment(text, source)
