"""Attachments and fragments named on the command line: a path, a URL or ``-`` (stdin).

Everything is read before a model is called, so an input that cannot be read
stops the run with one error and nothing is sent or logged. An attachment
keeps its bytes (they are stored with the response); a fragment is text that
is sent ahead of the prompt (or the system prompt) and recorded, as llm does.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BadInput
from .records import Attachment

__all__ = [
    "Fragment", "read_attachment", "read_fragment", "is_url", "sniff_mime", "join_prompt", "join_system",
    "fragment_record", "MAX_FETCH_BYTES", "Gathered", "gather", "check_mime_type",
]

# A URL is read whole into memory and stored: refuse anything larger.
MAX_FETCH_BYTES = 100 * 1024 * 1024
FETCH_TIMEOUT = 30.0

# The first bytes of the formats models take, for stdin and for names without a known suffix.
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"ID3", "audio/mpeg"),
)


@dataclass
class Fragment:
    """Text sent with a prompt, and where it came from."""

    content: str
    source: str

    @property
    def hash(self) -> str:
        # The same id llm gives a fragment: the SHA-256 of its UTF-8 text.
        return hashlib.sha256(self.content.encode("utf-8")).hexdigest()


# RFC 6838: type "/" subtype, each a restricted token; parameters (";charset=...") are not taken.
_MIME = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")


def check_mime_type(value: str, spec: str) -> str:
    """``--at SPEC TYPE``: the type, lower-cased, when it has the form ``type/subtype``."""
    if not _MIME.fullmatch(value.strip()):
        raise BadInput(f"--at {spec} {value!r}: the type must look like image/jpeg (type/subtype)")
    return value.strip().lower()


def is_url(spec: str) -> bool:
    return spec.startswith(("http://", "https://"))


def sniff_mime(content: bytes) -> str:
    """The type the bytes declare by their first bytes; text when they are UTF-8."""
    for magic, mime in _MAGIC:
        if content.startswith(magic):
            return mime
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    if content[:4] == b"RIFF" and content[8:12] == b"WAVE":
        return "audio/wav"
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream"
    return "text/plain"


def _fetch(url: str, what: str) -> tuple[bytes, str | None]:
    """The body of ``url`` and its content type; any failure is one BadInput."""
    import httpx

    try:
        with httpx.Client(timeout=FETCH_TIMEOUT, follow_redirects=True) as client, \
                client.stream("GET", url) as response:
            if not response.is_success:
                raise BadInput(f"{what} {url}: the server answered {response.status_code} "
                               f"{response.reason_phrase}".rstrip())
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_FETCH_BYTES:
                    raise BadInput(f"{what} {url} is larger than {MAX_FETCH_BYTES // (1024 * 1024)} MB")
                chunks.append(chunk)
            kind = response.headers.get("content-type")
    except httpx.InvalidURL as exc:
        raise BadInput(f"{what} {url} is not a valid URL: {exc}") from None
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        if "Connection refused" in reason or "Errno 111" in reason:
            reason = "connection refused"
        raise BadInput(f"{what} {url} cannot be fetched: {reason}") from None
    return b"".join(chunks), kind


def _read_path(spec: str, what: str) -> tuple[Path, bytes]:
    path = Path(spec).expanduser()
    try:
        return path.resolve(), path.read_bytes()
    except FileNotFoundError:
        raise BadInput(f"{what} {spec} does not exist") from None
    except IsADirectoryError:
        raise BadInput(f"{what} {spec} is a directory, not a file") from None
    except OSError as exc:
        raise BadInput(f"{what} {spec} cannot be read: {exc.strerror}") from None


def read_attachment(spec: str, *, stdin: Callable[[], bytes], mime_type: str | None = None) -> Attachment:
    """The attachment ``-a SPEC`` names, with its bytes; ``mime_type`` overrides the guess."""
    import mimetypes

    if spec == "-":
        content = stdin()
        return Attachment(content, mime_type or sniff_mime(content))
    if is_url(spec):
        content, declared = _fetch(spec, "attachment")
        kind = (declared or "").partition(";")[0].strip() or None
        if kind in (None, "application/octet-stream"):
            kind = mimetypes.guess_type(spec.split("?")[0])[0] or sniff_mime(content)
        return Attachment(content, mime_type or kind, url=spec)
    path, content = _read_path(spec, "attachment")
    guessed = mimetypes.guess_type(path.name)[0] or sniff_mime(content)
    return Attachment(content, mime_type or guessed, path=str(path))


def _text(content: bytes, source: str, charset: str | None = None) -> str:
    try:
        return content.decode(charset or "utf-8")
    except (UnicodeDecodeError, LookupError):
        raise BadInput(f"fragment {source} is not UTF-8 text") from None


def read_fragment(spec: str, *, stdin: Callable[[], bytes]) -> Fragment:
    """The fragment ``-f SPEC`` names: a file's text, a URL's body or stdin."""
    if spec == "-":
        return Fragment(_text(stdin(), "-"), "-")
    if is_url(spec):
        content, declared = _fetch(spec, "fragment")
        charset = None
        for param in (declared or "").split(";")[1:]:
            key, _, value = param.strip().partition("=")
            if key.lower() == "charset":
                charset = value.strip('"') or None
        return Fragment(_text(content, spec, charset), spec)
    if ":" in spec and not Path(spec).expanduser().exists():
        name = spec.partition(":")[0]
        raise BadInput(f"fragment {spec}: {name!r} is one of llm's fragment loaders; "
                       "localfirst reads fragments from files, URLs and - (stdin)")
    path, content = _read_path(spec, "fragment")
    return Fragment(_text(content, spec), str(path))


def join_prompt(prompt: str | None, fragments: list[Fragment]) -> str | None:
    """What is sent as the prompt: each fragment, then the prompt, one per line (llm's rule)."""
    if not fragments:
        return prompt
    return "\n".join([f.content for f in fragments] + ([prompt] if prompt else []))


def join_system(system: str | None, fragments: list[Fragment]) -> str | None:
    """What is sent as the system prompt: fragments then the system prompt, stripped, blank-line separated."""
    if not fragments:
        return system
    bits = [b.strip() for b in [f.content for f in fragments] + [system or ""] if b.strip()]
    return "\n\n".join(bits) or None


def fragment_record(fragments: list[Fragment]) -> list[dict[str, Any]]:
    """How fragments are kept in a response's extras (``llm:fragments``, as an llm import keeps them)."""
    return [{"hash": f.hash, "source": f.source} for f in fragments]


@dataclass
class Gathered:
    """Everything ``prompt`` was told to read, read."""

    attachments: list[Attachment]
    fragments: list[Fragment]
    system_fragments: list[Fragment]
    stdin_used: bool


def gather(*, attachments: list[str], fragments: list[str], system_fragments: list[str],
           stdin: Callable[[], bytes], typed_attachments: Sequence[tuple[str, str]] = ()) -> Gathered:
    """Read every ``-a``, ``--at``, ``-f`` and ``--sf`` in order; stdin (``-``) may be named once.

    ``typed_attachments`` are ``--at PATH TYPE`` pairs; as in llm they follow
    the ``-a`` attachments. Every type is checked before anything is read.
    """
    typed = [(spec, check_mime_type(kind, spec)) for spec, kind in typed_attachments]
    dashes = [s for s in (*attachments, *(spec for spec, _ in typed), *fragments, *system_fragments) if s == "-"]
    if len(dashes) > 1:
        raise BadInput("stdin (-) can be read once: name it in one -a, --at, -f or --sf")
    return Gathered(
        attachments=[read_attachment(s, stdin=stdin) for s in attachments]
        + [read_attachment(spec, stdin=stdin, mime_type=kind) for spec, kind in typed],
        fragments=[read_fragment(s, stdin=stdin) for s in fragments],
        system_fragments=[read_fragment(s, stdin=stdin) for s in system_fragments],
        stdin_used=bool(dashes),
    )
