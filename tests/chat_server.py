"""A real chat-completions server on 127.0.0.1 for the tests, in a thread.

Each request takes the next scripted :class:`Reply`; the server records what
it was sent. A reply may insist on the messages it expects (``expect``) and
answers 400 with the difference when they are wrong, as a strict server would.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    pieces: list[bytes] = field(default_factory=list)  # written one by one, flushed, with `delay` between
    content_type: str = "text/event-stream"
    delay: float = 0.0
    expect: list[dict[str, Any]] | None = None  # the exact messages this request must carry
    wait: float = 0.0  # before answering at all
    reason: str | None = None  # the status line's phrase; None: the standard one


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


def chunk(content: str | None = None, *, reasoning: str | None = None, reasoning_key: str = "reasoning_content",
          tool_calls: list[dict[str, Any]] | None = None, finish: str | None = None,
          model: str = "served-model-1", usage: dict[str, Any] | None = None) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    if content is not None:
        delta["content"] = content
    if reasoning is not None:
        delta[reasoning_key] = reasoning
    if tool_calls is not None:
        delta["tool_calls"] = tool_calls
    out: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": model,
                           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage is not None:
        out["usage"] = usage
    return out


def usage_chunk(prompt: int = 7, completion: int = 3, **details: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "served-model-1", "choices": [],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion, **details}}


def event(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n"


def sse(*objs: Any, done: bool = True) -> Reply:
    """A streamed reply: one event per object, then [DONE]."""
    pieces = [event(o) for o in objs] + ([b"data: [DONE]\n\n"] if done else [])
    return Reply(pieces=pieces)


def stream_text(*texts: str, finish: str = "stop", delay: float = 0.0) -> Reply:
    reply = sse(*[chunk(t) for t in texts], chunk(finish=finish), usage_chunk())
    reply.delay = delay
    return reply


def body(obj: Any, status: int = 200) -> Reply:
    return Reply(status=status, pieces=[json.dumps(obj).encode()], content_type="application/json")


def completion(content: str | None, *, tool_calls: list[dict[str, Any]] | None = None,
               reasoning: str | None = None, finish: str = "stop") -> Reply:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if reasoning:
        message["reasoning_content"] = reasoning
    return body({"id": "chatcmpl-2", "object": "chat.completion", "model": "served-model-1",
                 "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                 "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}})


class ChatServer:
    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # the body ends when the connection closes

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                # Each piece goes out on its own, so the client sees the splits.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                data = json.loads(self.rfile.read(length) or b"{}")
                with server.lock:
                    server.seen.append(Seen(self.path, dict(self.headers.items()), data))
                    reply = server.replies.pop(0) if server.replies else Reply(
                        status=500, pieces=[b'{"error": {"message": "no reply scripted"}}'],
                        content_type="application/json")
                if reply.expect is not None and data.get("messages") != reply.expect:
                    reply = Reply(status=400, content_type="application/json", pieces=[json.dumps(
                        {"error": {"message": f"history mismatch: got {data.get('messages')!r}"}}).encode()])
                time.sleep(reply.wait)
                self.send_response(reply.status, reply.reason)
                self.send_header("Content-Type", reply.content_type)
                self.end_headers()
                try:
                    for i, piece in enumerate(reply.pieces):
                        if i and reply.delay:
                            time.sleep(reply.delay)
                        self.wfile.write(piece)
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client hung up (Ctrl-C); that is what the test wants

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)

    def script(self, *replies: Reply) -> None:
        with self.lock:
            self.replies.extend(replies)


@contextmanager
def running() -> Iterator[ChatServer]:
    server = ChatServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
