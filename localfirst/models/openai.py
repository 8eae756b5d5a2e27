"""Any OpenAI-compatible chat-completions server, over httpx.

Streams server-sent events by default (parsed with httpx-sse, which splits
lines only on CR and LF, so U+2028 inside JSON survives). A failed call raises
:class:`~localfirst.errors.ModelError` and returns nothing, so nothing is
logged half-way. Ctrl-C during a stream returns what arrived, marked with
``extras["localfirst:interrupted"]``.

The API key goes into one request header and nowhere else. A server may echo
it anywhere, so a :class:`Redactor` takes it out of every message, of the text
printed as it streams and of every string in the logged response.
"""

from __future__ import annotations

import json
import os.path
import re
from collections.abc import Callable, Iterator
from dataclasses import fields, is_dataclass, replace
from typing import TYPE_CHECKING, Any

from ..errors import BadInput, Interrupted, ModelError
from ..records import Response
from . import PromptRequest
from .chat import ChatReader, error_message
from .config import ModelConfig, resolve_key
from .messages import build_messages, without_inline_bytes

if TYPE_CHECKING:
    import httpx

__all__ = ["OpenAIChatModel", "Redactor", "CONNECT_TIMEOUT", "DEFAULT_READ_TIMEOUT"]

CONNECT_TIMEOUT = 10.0
# Local servers load the model on the first request, which can take minutes.
DEFAULT_READ_TIMEOUT = 300.0
_RESERVED_OPTIONS = ("model", "messages", "stream", "stream_options")
_HINTS = {
    401: "check the API key",
    403: "check the API key and what it may access",
    404: "check --base-url and the model id",
    429: "rate limited or out of quota; try again later",
}
REDACTED = "[redacted key]"
# A run this long that starts like a key is a piece of it (an echo cut short).
# A "key" shorter than this is a placeholder such as "ollama" or "EMPTY" that
# local servers ignore; redacting it would cut ordinary words out of answers.
_PIECE = 8


class Redactor:
    """Takes secrets out of text, and out of every string in a value.

    Any run of at least 8 characters that starts like a secret becomes
    ``[redacted key]``: the whole key, the key after ``Bearer ``, or an echo
    that a server or a cut left short. Redaction happens before any cut.
    """

    def __init__(self, *secrets: str | None) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= _PIECE}, key=len, reverse=True)
        heads = "|".join(re.escape(s[:_PIECE]) for s in self.secrets)
        self._heads = re.compile(heads) if heads else None

    def text(self, text: str, *, limit: int | None = None) -> str:
        """``text`` redacted, then cut to ``limit`` characters."""
        if self._heads is not None:
            kept, pos = [], 0
            while (found := self._heads.search(text, pos)) is not None:
                start = found.start()
                kept += [text[pos:start], REDACTED]
                pos = start + max(len(os.path.commonprefix([text[start:start + len(s)], s])) for s in self.secrets)
            text = "".join(kept) + text[pos:]
        return text if limit is None else text[:limit]

    def value(self, value: Any) -> Any:
        """A copy of ``value`` with every string in it redacted (dict keys, lists, dataclass fields)."""
        if not self.secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if is_dataclass(value) and not isinstance(value, type):
            return replace(value, **{f.name: self.value(getattr(value, f.name)) for f in fields(value) if f.init})
        return value

    def open_end(self, text: str) -> int:
        """How many characters at the end of ``text`` could be the start of a secret."""
        for size in range(min(len(text), len(self.secrets[0]) if self.secrets else 0), 0, -1):
            if any(s.startswith(text[-size:]) for s in self.secrets):
                return size
        return 0


class _LiveText:
    """Passes streamed text on as it comes, redacted; holds back an end that may begin a key."""

    def __init__(self, redactor: Redactor, on_text: Callable[[str], None]) -> None:
        self.redactor, self.on_text, self.held = redactor, on_text, ""

    def __call__(self, text: str) -> None:
        text = self.held + text
        ready = len(text) - self.redactor.open_end(text)
        self.held = text[ready:]
        if ready:
            self.on_text(self.redactor.text(text[:ready]))

    def flush(self) -> None:
        text, self.held = self.held, ""
        if text:
            self.on_text(self.redactor.text(text))


class OpenAIChatModel:
    """A configured model on a chat-completions server."""

    def __init__(self, config: ModelConfig, *, transport: Any = None) -> None:
        """``transport``: an httpx transport to use instead of the network (tests)."""
        self.config = config
        self.transport = transport
        self.name = config.name
        self._key: str | None = None
        self._redactor = Redactor()

    # -- building the request ------------------------------------------------

    def _body(self, request: PromptRequest) -> tuple[dict[str, Any], int]:
        clash = [k for k in request.options if k in _RESERVED_OPTIONS]
        if clash:
            raise BadInput(f"-o {clash[0]} cannot be set; localfirst sets it")
        messages, replayed = build_messages(
            request.history, prompt=request.prompt, system=request.system, parts=request.parts
        )
        body: dict[str, Any] = {"model": self.config.model, "messages": messages, **request.options}
        if request.schema is not None and "response_format" not in body:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "output", "schema": request.schema}}
        if request.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body, replayed

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **self.config.headers}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        return headers

    # -- calling -------------------------------------------------------------

    def execute(self, request: PromptRequest, *, on_text: Callable[[str], None]) -> Response:
        """Send ``request``; stream text to ``on_text``; return the whole answer."""
        self._key = request.key or resolve_key(self.config)
        # The key, and the credentials of an Authorization header set by hand.
        auth = [v.rpartition(" ")[2] for k, v in self._headers().items() if k.lower() == "authorization"]
        self._redactor = redact = Redactor(self._key, *auth)
        body, replayed = self._body(request)
        import httpx

        read = request.timeout or self.config.timeout or DEFAULT_READ_TIMEOUT
        timeout = httpx.Timeout(read, connect=CONNECT_TIMEOUT)
        url = self.config.base_url + "/chat/completions"
        reader = ChatReader()
        live = _LiveText(redact, on_text)
        interrupted = False
        try:
            # Loading the CA bundle costs ~70 ms; a plain-http server (a local
            # model) never uses it. Redirects are followed only over https, so
            # an http server cannot send us to an unverified https one.
            secure = url.startswith("https://")
            with httpx.Client(timeout=timeout, verify=secure, follow_redirects=secure,
                              transport=self.transport) as client:
                if request.stream:
                    interrupted = self._stream(client, url, body, reader, live)
                else:
                    self._single(client, url, body, reader, live)
        except ModelError as exc:
            # Its message may quote what the server sent.
            raise ModelError(redact.text(str(exc))) from None
        except httpx.TimeoutException as exc:
            what = "connect" if isinstance(exc, httpx.ConnectTimeout) else "answer"
            limit = CONNECT_TIMEOUT if what == "connect" else read
            hint = "" if what == "connect" else " (raise it with --timeout)"
            raise ModelError(f"{self._where()}: no {what} within {limit:g} s{hint}") from None
        except httpx.ConnectError as exc:
            raise ModelError(f"{self._where()}: cannot connect: {redact.text(_reason(exc))}") from None
        except httpx.RemoteProtocolError as exc:
            raise ModelError(
                f"{self._where()}: the connection broke mid-answer: {redact.text(_reason(exc))}") from None
        except httpx.TransportError as exc:
            raise ModelError(f"{self._where()}: {redact.text(_reason(exc))}") from None
        except KeyboardInterrupt:
            raise Interrupted("interrupted before the model answered; nothing logged") from None
        live.flush()
        response = reader.response(model=self.name)
        response.prompt, response.system = request.prompt, request.system
        response.options = dict(request.options) or None
        response.parts = list(request.parts) + response.parts
        # The history is in the earlier responses already; keep only what is new.
        response.prompt_json = {**body, "messages": without_inline_bytes(body["messages"][replayed:]),
                                "history_messages": replayed}
        if interrupted:
            response.extras = {**(response.extras or {}), "localfirst:interrupted": True}
        # Whole strings here: a key spread over many chunks is whole again.
        redacted: Response = redact.value(response)
        return redacted

    def _where(self) -> str:
        return f"model {self.name!r} at {self.config.base_url}"

    def _fail_status(self, response: httpx.Response) -> None:
        import httpx

        try:
            raw = response.read()
        except httpx.HTTPError:
            raw = b""  # the status alone is the error then
        text = raw.decode("utf-8", "replace")
        try:
            message = error_message(json.loads(text)) or text
        except ValueError:
            message = text
        message = self._redactor.text(" ".join(message.split()) or response.reason_phrase, limit=500)
        hint = _HINTS.get(response.status_code)
        raise ModelError(
            f"{self._where()} answered {response.status_code}: {message}" + (f" ({hint})" if hint else "")
        )

    def _single(self, client: httpx.Client, url: str, body: dict[str, Any], reader: ChatReader,
                on_text: Callable[[str], None]) -> None:
        response = client.post(url, json=body, headers=self._headers())
        if not response.is_success:
            self._fail_status(response)
        try:
            data = response.json()
        except ValueError:
            raise ModelError(f"{self._where()} answered with something that is not JSON") from None
        on_text(reader.read_body(data))

    def _stream(self, client: httpx.Client, url: str, body: dict[str, Any], reader: ChatReader,
                on_text: Callable[[str], None]) -> bool:
        """Read the event stream into ``reader``; True when Ctrl-C cut it short."""
        headers = {**self._headers(), "Accept": "text/event-stream"}
        with client.stream("POST", url, json=body, headers=headers) as response:
            if not response.is_success:
                self._fail_status(response)
            kind = response.headers.get("content-type", "").partition(";")[0].strip()
            if kind == "application/json":
                # A server that ignores "stream": true answers with one body.
                try:
                    data = json.loads(response.read())
                except ValueError:
                    raise ModelError(f"{self._where()} answered with something that is not JSON") from None
                on_text(reader.read_body(data))
                return False
            try:
                done = False
                for data in self._events(response):
                    if data == "[DONE]":
                        done = True
                        break
                    text = reader.feed(self._decode(data))
                    if text:
                        on_text(text)
            except KeyboardInterrupt:
                return True
        if reader.chunks == 0:
            raise ModelError(f"{self._where()} sent an empty stream")
        if not done:
            raise ModelError(f"{self._where()}: the stream ended before [DONE]; the answer may be cut short")
        return False

    def _events(self, response: httpx.Response) -> Iterator[str]:
        from httpx_sse import EventSource, SSEError

        try:
            for event in EventSource(response).iter_sse():
                if event.event in ("", "message"):
                    yield event.data
                elif event.event == "error":
                    raise ModelError(f"{self._where()} reported an error: {self._redactor.text(event.data, limit=500)}")
        except SSEError as exc:
            raise ModelError(f"{self._where()}: {exc}") from None

    def _decode(self, data: str) -> Any:
        try:
            return json.loads(data)
        except ValueError:
            sample = self._redactor.text(data, limit=80)
            raise ModelError(f"{self._where()} sent a chunk that is not JSON: {sample!r}") from None


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused"
    return text
