"""Small text helpers for what the CLI prints. No I/O here."""

from __future__ import annotations

import re

__all__ = ["plural", "fenced_code", "usage_line"]

# A fence of three or more backticks at the start of a line, an optional
# language tag, the code, and a closing fence of the same length.
_FENCE = re.compile(r"(?:^|\n)(?P<fence>`{3,})[^\n`]*\n(?P<code>.*?)\n?(?P=fence)[ \t]*(?=\n|$)", re.S)


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 response``, ``2 responses``."""
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"


def fenced_code(text: str | None, *, last: bool = False) -> str | None:
    """The code inside the first (or last) fenced block of ``text``; None when there is none."""
    found = list(_FENCE.finditer(text or ""))
    if not found:
        return None
    code = found[-1 if last else 0].group("code")
    return code if code.endswith("\n") or not code else code + "\n"


def usage_line(input_tokens: int | None, output_tokens: int | None, details: dict[str, object] | None) -> str:
    """``Token usage: 1,200 input, 30 output`` (with the details as JSON, as llm prints them)."""
    import json

    bits = []
    if input_tokens is not None:
        bits.append(f"{input_tokens:,} input")
    if output_tokens is not None:
        bits.append(f"{output_tokens:,} output")
    if details:
        bits.append(json.dumps(details, ensure_ascii=False))
    return "Token usage: " + (", ".join(bits) or "not reported by the model")
