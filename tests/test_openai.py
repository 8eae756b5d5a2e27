"""Prompting an OpenAI-compatible server: a real HTTP server on 127.0.0.1, streaming and not."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

import httpx
import pytest
from chat_server import (
    Reply,
    body,
    chunk,
    completion,
    event,
    running,
    sse,
    stream_text,
    usage_chunk,
)
from helpers import assert_one_line_error as assert_one_error
from helpers import db_state

from localfirst import paths
from localfirst.models import PromptRequest
from localfirst.models.config import ModelConfig
from localfirst.models.openai import OpenAIChatModel, Redactor
from localfirst.prompting import run_prompt
from localfirst.store import Store

KEY = "sk-test-SECRET-5f3a9c1e7b2d4680"


@pytest.fixture
def server():
    with running() as s:
        yield s


@pytest.fixture
def srv(server, run, monkeypatch: pytest.MonkeyPatch) -> str:
    """A model "srv" on the test server, its key in $TEST_KEY."""
    monkeypatch.setenv("TEST_KEY", KEY)
    r = run("models", "add", "srv", "--base-url", server.base_url, "--model", "served-model",
            "--api-key-env", "TEST_KEY")
    assert r.code == 0, r.err
    return "srv"


def logged(run) -> list[dict]:
    r = run("logs", "list", "-n", "0", "--json")
    assert r.code == 0, r.err
    return json.loads(r.out)


# -- streaming ---------------------------------------------------------------


def test_streams_text_and_logs_everything(server, srv, run):
    server.script(sse(
        chunk("Hel"), chunk("lo "), chunk("world"), chunk(finish="stop"),
        usage_chunk(7, 3, completion_tokens_details={"reasoning_tokens": 0}),
    ))
    r = run("prompt", "-m", srv, "-o", "temperature", "0.5", "-s", "Be kind.", "Say hi")
    assert r.code == 0, r.err
    assert r.out == "Hello world\n"
    seen = server.seen[0]
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["Authorization"] == f"Bearer {KEY}"
    assert seen.body["model"] == "served-model"
    assert seen.body["stream"] is True and seen.body["stream_options"] == {"include_usage": True}
    assert seen.body["temperature"] == 0.5
    assert seen.body["messages"] == [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Say hi"}]
    [row] = logged(run)
    assert row["model"] == "srv" and row["resolved_model"] == "served-model-1"
    assert row["response"] == "Hello world" and row["prompt"] == "Say hi" and row["system"] == "Be kind."
    assert row["finish_reason"] == "stop"
    assert (row["input_tokens"], row["output_tokens"]) == (7, 3)
    assert row["token_details"] == {"completion_tokens_details": {"reasoning_tokens": 0}}
    assert row["options"] == {"temperature": 0.5}
    assert isinstance(row["duration_ms"], int) and row["duration_ms"] >= 0
    assert row["response_json"][0]["choices"][0]["finish_reason"] == "stop"
    assert row["response_json"][1]["usage"]["prompt_tokens"] == 7
    assert row["extras"] == {"openai:id": "chatcmpl-1"}
    assert row["prompt_json"]["history_messages"] == 0
    assert row["prompt_json"]["stream_options"] == {"include_usage": True}


def _split_everywhere(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def _cuts_a_character(piece: bytes) -> bool:
    try:
        piece.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


TRICKY = "naïve — line\u2028sep\u2029 ✓ 日本"


def _tricky_stream(newline: bytes = b"\n") -> bytes:
    raw = (
        b": keep-alive\n\n"
        + event(chunk("naïve — "))
        + b": ping\n\n"
        + event(chunk("line\u2028sep\u2029 "))
        + event(chunk("✓ 日本"))
        + event(chunk(finish="stop"))
        + event(usage_chunk())
        + b"data: [DONE]\n\n"
    )
    return raw.replace(b"\n", newline)


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_chunks_split_mid_line_and_mid_character(server, srv, run, size):
    pieces = _split_everywhere(_tricky_stream(), size)
    assert size == 1 or any(_cuts_a_character(p) for p in pieces)
    server.script(Reply(pieces=pieces))
    r = run("prompt", "-m", srv, "go")
    assert r.code == 0, r.err
    assert r.out == TRICKY + "\n"
    assert logged(run)[0]["response"] == TRICKY


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_split_stream_through_a_mock_transport(newline):
    """The same stream cut into 1-4 byte pieces that surely arrive one by one."""
    raw = _tricky_stream(newline)
    sizes = [1, 2, 3, 4]
    pieces, i, k = [], 0, 0
    while i < len(raw):
        pieces.append(raw[i:i + sizes[k % 4]])
        i += sizes[k % 4]
        k += 1
    assert any(_cuts_a_character(p) for p in pieces)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=iter(pieces))

    model = OpenAIChatModel(ModelConfig("m", "http://model.invalid/v1", "x"), transport=httpx.MockTransport(handler))
    shown: list[str] = []
    response = model.execute(PromptRequest(prompt="go"), on_text=shown.append)
    assert "".join(shown) == TRICKY == response.response
    assert response.input_tokens == 7


def test_reasoning_is_logged_but_not_printed(server, srv, run):
    server.script(sse(
        chunk(reasoning="Think"), chunk(reasoning="ing…", reasoning_key="reasoning"),
        chunk("Answer"), chunk(finish="stop"), usage_chunk(),
    ))
    r = run("prompt", "-m", srv, "q")
    assert r.out == "Answer\n"
    [row] = logged(run)
    assert row["reasoning"] == "Thinking…"
    assert row["parts"] == [{"type": "reasoning", "role": "assistant", "text": "Thinking…"}]


def test_tool_call_deltas_over_many_chunks(server, srv, run):
    def call(index, *, id=None, name=None, arguments=""):
        fn = {"arguments": arguments} | ({"name": name} if name else {})
        return [{"index": index, **({"id": id, "type": "function"} if id else {}), "function": fn}]

    server.script(sse(
        chunk("Checking."),
        chunk(tool_calls=call(0, id="call_a", name="get_weather")),
        chunk(tool_calls=call(0, arguments='{"ci')),
        chunk(tool_calls=call(1, id="call_b", name="get_time", arguments='{"tz":')),
        chunk(tool_calls=call(0, arguments='ty": "Os')),
        chunk(tool_calls=call(1, arguments=' "CET"}')),
        chunk(tool_calls=call(0, arguments='lo"}')),
        chunk(finish="tool_calls"),
        usage_chunk(),
    ))
    r = run("prompt", "-m", srv, "weather and time in Oslo?")
    assert r.code == 0, r.err
    [row] = logged(run)
    assert row["finish_reason"] == "tool_calls"
    assert row["response"] == "Checking."
    assert row["parts"] == [
        {"type": "tool_call", "role": "assistant", "tool_call_id": "call_a", "name": "get_weather",
         "arguments": {"city": "Oslo"}},
        {"type": "tool_call", "role": "assistant", "tool_call_id": "call_b", "name": "get_time",
         "arguments": {"tz": "CET"}},
    ]


def test_no_stream_reads_one_json_body(server, srv, run):
    calls = [{"id": "call_9", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}}]
    server.script(completion("Full answer", tool_calls=calls, reasoning="hmm", finish="tool_calls"))
    r = run("prompt", "-m", srv, "--no-stream", "q")
    assert r.code == 0, r.err
    assert r.out == "Full answer\n"
    assert "stream" not in server.seen[0].body
    [row] = logged(run)
    assert (row["input_tokens"], row["output_tokens"], row["finish_reason"]) == (11, 5, "tool_calls")
    assert row["reasoning"] == "hmm"
    assert row["parts"][1] == {"type": "tool_call", "role": "assistant", "tool_call_id": "call_9",
                               "name": "lookup", "arguments": {"q": "x"}}
    assert row["response_json"]["id"] == "chatcmpl-2"


def test_a_server_that_ignores_stream_true_still_works(server, srv, run):
    server.script(completion("one body"))
    r = run("prompt", "-m", srv, "q")
    assert r.code == 0 and r.out == "one body\n"


def test_slow_tokens_arrive_one_by_one(server, srv):
    server.script(stream_text("a", "b", "c", "d", delay=0.05))
    stamps: list[float] = []
    store = Store.open(paths.home() / "logs.db")
    response = run_prompt(lambda: store, "q", model=srv, on_text=lambda _t: stamps.append(time.perf_counter()))
    assert response.response == "abcd"
    assert stamps[-1] - stamps[0] >= 0.1  # printed as they came, not all at the end
    assert response.duration_ms is not None and response.duration_ms >= 150


# -- continuing a conversation -------------------------------------------------


def test_continue_replays_the_whole_history_in_order(server, srv, run):
    assert run("log", "-m", srv, "-s", "Be brief.", "-p", "What is 2+2?", "-r", "4").code == 0
    assert run("log", "-c", "--simulated", "-p", "And 3+3?", "-r", "6").code == 0
    call = {"prompt": "Weather in Oslo?", "parts": [
        {"type": "tool_call", "tool_call_id": "call_1", "name": "get_weather", "arguments": {"city": "Oslo"}}]}
    assert run("log", "-c", "--json", input=json.dumps(call)).code == 0
    result = {"response": "It is 12C.", "parts": [
        {"type": "tool_result", "tool_call_id": "call_1", "name": "get_weather", "output": "12C"}]}
    assert run("log", "-c", "--json", input=json.dumps(result)).code == 0
    history = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3?"},
        {"role": "assistant", "content": "6"},
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "12C", "name": "get_weather"},
        {"role": "assistant", "content": "It is 12C."},
    ]
    reply = stream_text("You're welcome.")
    reply.expect = [*history, {"role": "user", "content": "Thanks"}]
    then = stream_text("Bye.")
    then.expect = [*reply.expect, {"role": "assistant", "content": "You're welcome."},
                   {"role": "user", "content": "Bye"}]
    server.script(reply, then)
    r = run("prompt", "-c", "Thanks")
    assert r.code == 0, r.err
    r = run("prompt", "-c", "Bye")
    assert r.code == 0, r.err
    rows = logged(run)
    assert len({x["conversation_id"] for x in rows}) == 1
    assert rows[-1]["prompt_json"]["history_messages"] == len(history) + 2
    assert rows[-1]["prompt_json"]["messages"] == [{"role": "user", "content": "Bye"}]


def test_a_wrong_history_is_refused_by_the_server(server, srv, run):
    assert run("log", "-m", srv, "-p", "first", "-r", "one").code == 0
    reply = stream_text("x")
    reply.expect = [{"role": "user", "content": "second"}]  # the history is missing
    server.script(reply)
    before = db_state()
    r = run("prompt", "-c", "second")
    assert_one_error(r, "400", "history mismatch")
    assert db_state() == before


# -- failures: one line, nothing logged -----------------------------------------


@pytest.fixture
def seeded(run) -> list[str]:
    """A database with one response in it; returns its rows."""
    assert run("log", "-m", "echo", "-p", "earlier", "-r", "kept").code == 0
    return db_state()


@pytest.mark.parametrize(("reply", "expected"), [
    (body({"error": {"message": f"Incorrect API key provided: {KEY}.", "type": "invalid_request_error"}}, 401),
     ["401", "Incorrect API key provided: [redacted key]", "check the API key"]),
    (body({"error": {"message": "The model `served-model` does not exist"}}, 404),
     ["404", "does not exist", "check --base-url"]),
    (body({"error": {"message": "Rate limit reached for requests"}}, 429), ["429", "Rate limit reached"]),
    (Reply(status=500, pieces=[b"upstream exploded"], content_type="text/plain"), ["500", "upstream exploded"]),
    (body({"detail": "Not Found"}, 404), ["404", "Not Found"]),
])
@pytest.mark.parametrize("stream", [True, False])
def test_error_statuses_show_the_servers_message_without_the_key(server, srv, run, seeded, reply, expected, stream):
    server.script(reply)
    r = run("prompt", "-m", srv, *([] if stream else ["--no-stream"]), "hello")
    assert_one_error(r, *expected)
    assert KEY not in r.err + r.out
    assert db_state() == seeded


@pytest.mark.parametrize(("reply", "expected"), [
    (sse(chunk("partial"), done=False), "ended before [DONE]"),
    (Reply(pieces=[event(chunk("a")), b"data: {not json\n\n", b"data: [DONE]\n\n"]), "not JSON"),
    (Reply(pieces=[]), "empty stream"),
    (Reply(pieces=[b": only a comment\n\n"]), "empty stream"),
    (Reply(pieces=[b"data: [DONE]\n\n"]), "empty stream"),
    (Reply(pieces=[event(chunk("a")), event({"error": {"message": "model overloaded"}})]), "model overloaded"),
    (Reply(pieces=[event(["not", "an", "object"]), b"data: [DONE]\n\n"]), "not an object"),
    (Reply(pieces=[b"oops"], content_type="text/html"), "text/event-stream"),
])
def test_broken_streams_log_nothing(server, srv, run, seeded, reply, expected):
    server.script(reply)
    r = run("prompt", "-m", srv, "hello")
    assert_one_error(r, expected)
    assert db_state() == seeded


def test_not_json_without_streaming(server, srv, run, seeded):
    server.script(Reply(pieces=[b"<html>"], content_type="application/json"))
    assert_one_error(run("prompt", "-m", srv, "--no-stream", "x"), "not JSON")
    assert db_state() == seeded


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_refused(run, seeded):
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    assert run("models", "add", "gone", "--base-url", url, "--model", "m").code == 0
    r = run("prompt", "-m", "gone", "hi")
    assert_one_error(r, "cannot connect", "connection refused", url)
    assert db_state() == seeded


def test_unset_key_variable(server, run, seeded, monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    run("models", "add", "k", "--base-url", server.base_url, "--model", "m", "--api-key-env", "NO_SUCH_KEY_VAR")
    r = run("prompt", "-m", "k", "hi")
    assert_one_error(r, "$NO_SUCH_KEY_VAR", "not set")
    assert r.code == 5
    assert server.seen == []
    assert db_state() == seeded


def test_unknown_model(run, seeded):
    r = run("prompt", "-m", "nope", "hi")
    assert_one_error(r, "unknown model 'nope'", "echo")
    assert r.code == 3
    assert db_state() == seeded


def test_read_timeout(server, srv, run, seeded):
    server.script(stream_text("a", "b", delay=1.0))
    r = run("prompt", "-m", srv, "--timeout", "0.2", "hi")
    assert_one_error(r, "no answer within 0.2 s", "--timeout")
    assert db_state() == seeded


def test_reserved_options_are_refused(server, srv, run, seeded):
    assert_one_error(run("prompt", "-m", srv, "-o", "stream", "false", "hi"), "-o stream")
    assert server.seen == []


# -- Ctrl-C -----------------------------------------------------------------------


def test_ctrl_c_during_a_stream_logs_what_arrived(server, srv):
    server.script(stream_text("one ", "two ", "three ", "four", delay=0.02))
    store = Store.open(paths.home() / "logs.db")
    shown: list[str] = []

    def on_text(text: str) -> None:
        shown.append(text)
        if len(shown) == 2:
            raise KeyboardInterrupt

    response = run_prompt(lambda: store, "count", model=srv, on_text=on_text)
    kept = store.get_response(response.id or "")
    assert kept.response == "one two "
    assert kept.extras is not None and kept.extras["localfirst:interrupted"] is True
    assert kept.finish_reason is None
    store.close()


def test_sigint_to_a_real_process(server, srv):
    server.script(stream_text(*[f"t{i} " for i in range(200)], delay=0.02))
    proc = subprocess.Popen(
        [sys.executable, "-m", "localfirst", "prompt", "-m", srv, "count"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ),
    )
    assert proc.stdout is not None
    first = proc.stdout.read(3)  # blocks until the stream has begun
    assert first == b"t0 "
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err
    assert err.decode().startswith("Interrupted; logged what arrived as ")
    store = Store.open(paths.home() / "logs.db")
    [kept] = store.list_responses(count=0)
    assert kept.extras == {"openai:id": "chatcmpl-1", "localfirst:interrupted": True}
    assert (kept.response or "").startswith("t0 ") and len(kept.response or "") < 200 * 4
    store.close()


def test_sigint_before_the_first_byte_logs_nothing(server, srv, run):
    assert run("log", "-m", "echo", "-p", "earlier", "-r", "kept").code == 0
    before = db_state()
    reply = stream_text("late")
    reply.wait = 5.0
    server.script(reply)
    proc = subprocess.Popen(
        [sys.executable, "-m", "localfirst", "prompt", "-m", srv, "hello"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ),
    )
    deadline = time.monotonic() + 20
    while not server.seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.seen, "the request never reached the server"
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert err.decode().strip() == "Error: interrupted before the model answered; nothing logged"
    assert db_state() == before


# -- the key never leaks -------------------------------------------------------------


def _all_db_bytes() -> bytes:
    home = paths.home()
    return b"".join(p.read_bytes() for p in home.glob("logs.db*"))


def test_the_key_never_reaches_the_database_output_or_tracebacks(server, srv, run):
    outputs: list[str] = []
    server.script(
        stream_text("fine"),
        body({"error": {"message": f"Incorrect API key provided: {KEY}"}}, 401),
        completion("also fine"),
        Reply(pieces=[event(chunk("x")), b"data: " + KEY.encode() + b"\n\n"]),
    )
    for args in (["prompt", "-m", srv, "hi"], ["prompt", "-m", srv, "hi"], ["prompt", "-m", srv, "--no-stream", "hi"],
                 ["prompt", "-m", srv, "hi"], ["models", "list"], ["models", "list", "--json"],
                 ["logs", "list", "-n", "0", "--json"], ["logs", "list", "-n", "0"]):
        r = run(*args)
        outputs += [r.out, r.err]
    assert all(s.headers["Authorization"] == f"Bearer {KEY}" for s in server.seen)
    assert KEY not in "".join(outputs)
    assert KEY.encode() not in _all_db_bytes()
    assert KEY not in (paths.home() / "models.toml").read_text()
    # A bug (here: the text sink fails) keeps its traceback, which must not carry the key either.
    server.script(stream_text("boom"))
    store = Store.open(paths.home() / "logs.db")

    def broken(_text: str) -> None:
        raise RuntimeError("sink failed")

    with pytest.raises(RuntimeError) as caught:
        run_prompt(lambda: store, "hi", model=srv, on_text=broken)
    assert KEY not in "".join(traceback.format_exception(caught.value))
    store.close()


BEARER = f"Bearer {KEY}"


def assert_no_piece_of_the_key(*where: str | bytes) -> None:
    """No 8 characters in a row of KEY appear anywhere in ``where``."""
    pieces = {KEY[i:i + 8] for i in range(len(KEY) - 7)}
    for text in where:
        raw = text if isinstance(text, bytes) else text.encode()
        assert not [p for p in pieces if p.encode() in raw], text


@pytest.mark.parametrize("echo", [KEY, BEARER, f"Authorization: {BEARER}", KEY[:20]])
@pytest.mark.parametrize("lead", [0, 30, 60, 75, 79])
def test_a_chunk_that_is_not_json_shows_no_piece_of_the_key(server, srv, run, seeded, echo, lead):
    # The error quotes the first 80 characters: `lead` places the echo across that cut.
    quoted = "x" * lead + echo + " and more"
    server.script(Reply(pieces=[event(chunk("a")), b"data: " + quoted.encode() + b"\n\n", b"data: [DONE]\n\n"]))
    r = run("prompt", "-m", srv, "hello")
    assert_one_error(r, "not JSON", "x" * lead)
    assert_no_piece_of_the_key(r.out, r.err, _all_db_bytes())
    assert db_state() == seeded


def test_redacting_before_cutting_leaves_no_piece_of_the_key_at_any_cut():
    redactor = Redactor(KEY)
    for echo in (KEY, BEARER, KEY[:8], KEY[:20] + "…"):
        for lead in range(0, 40):
            text = "x" * lead + echo + " tail " + KEY
            for limit in range(1, len(text) + 2):
                assert_no_piece_of_the_key(redactor.text(text, limit=limit))
    assert redactor.text(f"{BEARER}, {KEY[:7]}") == f"Bearer [redacted key], {KEY[:7]}"


def test_a_short_placeholder_key_is_not_a_secret():
    # "ollama", "EMPTY", "none": what local servers are given; answers keep these words.
    assert Redactor("none", "EMPTY").text("none of it is EMPTY") == "none of it is EMPTY"
    assert Redactor(None, "").value({"a": ["b"]}) == {"a": ["b"]}


def _echoing_stream() -> Reply:
    first = chunk("Your key is ", model=f"served-{KEY}")
    first |= {"id": f"chatcmpl-{KEY}", "system_fingerprint": BEARER}
    split = [chunk(KEY[i:i + 3]) for i in range(0, len(KEY), 3)]  # a key spread over many deltas
    call = {"index": 0, "id": f"call_{KEY}", "type": "function",
            "function": {"name": "echo", "arguments": json.dumps({"auth": BEARER})}}
    final = chunk(finish="stop") | {"debug": {"headers": {"Authorization": BEARER, KEY: "as a name"},
                                              "cut": [KEY[:20]]}}
    return sse(first, *split, chunk(". Bye", reasoning=f"they sent {BEARER}"), chunk(tool_calls=[call]),
               final, usage_chunk(7, 3, echoed={"api_key": KEY}))


def _echoing_body() -> Reply:
    message = {"role": "assistant", "content": f"Your key is {KEY}. Bye", "reasoning_content": f"they sent {BEARER}",
               "tool_calls": [{"id": f"call_{KEY}", "type": "function",
                               "function": {"name": "echo", "arguments": json.dumps({"auth": BEARER})}}]}
    return body({"id": f"chatcmpl-{KEY}", "model": f"served-{KEY}", "system_fingerprint": BEARER,
                 "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                 "usage": {"prompt_tokens": 7, "completion_tokens": 3, "echoed": {"api_key": KEY}},
                 "debug": {"headers": {"Authorization": BEARER, KEY: "as a name"}, "cut": [KEY[:20]]}})


@pytest.mark.parametrize("stream", [True, False])
def test_a_server_echoing_the_key_gets_none_of_it_stored_or_shown(server, srv, run, stream):
    echo = _echoing_stream if stream else _echoing_body
    server.script(echo(), echo())
    r = run("prompt", "-m", srv, *([] if stream else ["--no-stream"]), f"is {KEY} right?")
    assert r.code == 0, r.err
    assert r.out == "Your key is [redacted key]. Bye\n"
    # Once more with the store held open, so that the WAL file is there to read.
    store = Store.open(paths.home() / "logs.db")
    shown: list[str] = []
    run_prompt(lambda: store, f"is {KEY} right?", model=srv, stream=stream, on_text=shown.append)
    assert (paths.home() / "logs.db-wal").exists()
    assert_no_piece_of_the_key(r.out, r.err, "".join(shown), _all_db_bytes())
    store.close()
    assert [s.headers["Authorization"] for s in server.seen] == [BEARER] * 2
    assert server.seen[0].body["messages"][-1]["content"] == f"is {KEY} right?"
    listed = run("logs", "list", "-n", "0", "--json").out
    assert_no_piece_of_the_key(listed, _all_db_bytes())
    for row in json.loads(listed):
        assert row["response"] == "Your key is [redacted key]. Bye"
        assert row["prompt"] == "is [redacted key] right?"
        assert row["prompt_json"]["messages"] == [{"role": "user", "content": "is [redacted key] right?"}]
        assert row["resolved_model"] == "served-[redacted key]"
        assert row["extras"] == {"openai:id": "chatcmpl-[redacted key]",
                                 "openai:system_fingerprint": "Bearer [redacted key]"}
        assert row["reasoning"] == "they sent Bearer [redacted key]"
        assert row["parts"][1]["tool_call_id"] == "call_[redacted key]"
        assert row["parts"][1]["arguments"] == {"auth": "Bearer [redacted key]"}
        assert row["token_details"] == {"echoed": {"api_key": "[redacted key]"}}
        final = row["response_json"][0] if stream else row["response_json"]
        assert final["debug"] == {"headers": {"Authorization": "Bearer [redacted key]", "[redacted key]": "as a name"},
                                  "cut": ["[redacted key]"]}


def test_an_authorization_header_set_by_hand_is_a_secret_too(server, run):
    token = "tok-by-hand-0123456789abcdef"
    run("models", "add", "h", "--base-url", server.base_url, "--model", "m", "--header", "authorization",
        f"Bearer {token}")
    server.script(body({"error": {"message": f"bad token {token}"}}, 401))
    r = run("prompt", "-m", "h", "hi")
    assert server.seen[0].headers["authorization"] == f"Bearer {token}"
    assert_one_error(r, "bad token [redacted key]")


@pytest.mark.parametrize(("reply", "status"), [
    (body({"error": {"message": f"Incorrect API key provided: {KEY}"}}, 401), "401"),
    (body({"error": {"message": "x" * 480 + f" {BEARER}"}}, 500), "500"),  # across the cut at 500
    (body({"detail": {"headers": {"authorization": BEARER}, "cut": KEY[:20]}}, 401), "401"),
    (Reply(status=500, pieces=[f"upstream said: {BEARER}".encode()], content_type="text/plain"), "500"),
    (Reply(status=401, reason=f"Bad key {KEY}"), "401"),
])
@pytest.mark.parametrize("stream", [True, False])
def test_error_statuses_quoting_the_key_show_no_piece_of_it(server, srv, run, seeded, reply, status, stream):
    server.script(reply)
    r = run("prompt", "-m", srv, *([] if stream else ["--no-stream"]), "hello")
    assert_one_error(r, status)
    assert_no_piece_of_the_key(r.out, r.err, _all_db_bytes())
    assert db_state() == seeded


@pytest.mark.parametrize("reply", [
    Reply(pieces=[event(chunk("a")), event({"error": {"message": f"bad key {KEY}"}})]),
    Reply(pieces=[event(chunk("a")), b"event: error\ndata: " + BEARER.encode() + b"\n\n"]),
    Reply(pieces=[b"oops"], content_type=f"text/{KEY}"),
])
def test_stream_errors_quoting_the_key_show_no_piece_of_it(server, srv, run, seeded, reply):
    server.script(reply)
    r = run("prompt", "-m", srv, "hello")
    assert_one_error(r)
    assert_no_piece_of_the_key(r.out, r.err, _all_db_bytes())
    assert db_state() == seeded


def test_key_from_the_keys_file(server, run):
    assert run("models", "add", "filed", "--base-url", server.base_url, "--model", "m").code == 0
    secret = "sk-from-keys-file-77aa11"
    r = run("models", "key", "filed", input=secret + "\n")
    assert r.code == 0 and secret not in r.out + r.err
    keys = paths.home() / "keys.json"
    assert keys.stat().st_mode & 0o777 == 0o600
    server.script(stream_text("ok"))
    assert run("prompt", "-m", "filed", "hi").code == 0
    assert server.seen[0].headers["Authorization"] == f"Bearer {secret}"
    assert secret.encode() not in _all_db_bytes()
    assert "keys file" in run("models", "list").out


def test_extra_headers_are_sent(server, run):
    run("models", "add", "h", "--base-url", server.base_url, "--model", "m", "--header", "X-Title", "localfirst")
    server.script(stream_text("ok"))
    assert run("prompt", "-m", "h", "hi").code == 0
    assert server.seen[0].headers["X-Title"] == "localfirst"
    assert "Authorization" not in server.seen[0].headers


def test_httpx_is_imported_only_for_http_models(tmp_path: Path):
    code = (
        "import sys\n"
        "from localfirst.cli import main\n"
        "assert main(['prompt', '-m', 'echo', 'hi']) == 0\n"
        "assert 'httpx' not in sys.modules and 'httpx_sse' not in sys.modules and 'yaml' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "LOCALFIRST_HOME": str(tmp_path)}, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
