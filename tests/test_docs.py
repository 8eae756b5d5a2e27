"""The docs are tested: every command and option appears in docs/cli.md."""

import re
from pathlib import Path

import typer

from localfirst import cli

DOCS = Path(__file__).parent.parent / "docs"


def commands():
    root = typer.main.get_command(cli.app)
    stack = [((), root)]
    while stack:
        path, command = stack.pop()
        subs = getattr(command, "commands", None)
        if subs:
            stack.extend(((*path, name), sub) for name, sub in subs.items())
        else:
            yield " ".join(path), command


def sections():
    text = (DOCS / "cli.md").read_text()
    found = {}
    for match in re.finditer(r"^### localfirst (.+)$", text, re.M):
        end = text.find("\n### ", match.end())
        found[match.group(1).strip()] = text[match.end(): end if end != -1 else None]
    return found


def test_every_command_has_a_section_in_cli_md():
    documented = sections()
    missing = [name for name, _ in commands() if name not in documented]
    assert not missing, f"commands missing from docs/cli.md: {missing}"


def test_every_option_of_a_command_is_mentioned_in_its_section():
    documented = sections()
    missing = []
    for name, command in commands():
        for param in command.params:
            opts = [o for o in getattr(param, "opts", []) if o.startswith("--")]
            if opts and not any(o in documented.get(name, "") for o in opts):
                missing.append(f"{name} {opts[0]}")
    assert not missing, f"options missing from docs/cli.md: {missing}"


def test_readme_gives_the_two_quick_start_commands_and_ci_runs_the_test_one():
    readme = (DOCS.parent / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (DOCS.parent / ".ci" / "run").read_text()
