"""A conversation replayed as chat-completions messages."""

from __future__ import annotations

from localfirst.models.messages import build_messages
from localfirst.records import Part, Response


def test_system_is_sent_once_and_again_where_it_changes():
    history = [
        Response(model="m", prompt="a", response="A", system="S1"),
        Response(model="m", prompt="b", response="B", system="S1"),
        Response(model="m", prompt="c", response="C", system="S2"),
        Response(model="m", prompt="d", response="D"),
    ]
    messages, replayed = build_messages(history, prompt="e", system=None, parts=[])
    roles = [(m["role"], m["content"]) for m in messages]
    assert roles == [
        ("system", "S1"), ("user", "a"), ("assistant", "A"), ("user", "b"), ("assistant", "B"),
        ("system", "S2"), ("user", "c"), ("assistant", "C"), ("user", "d"), ("assistant", "D"), ("user", "e"),
    ]
    assert replayed == 10
    again, _ = build_messages(history, prompt="e", system="S2", parts=[])
    assert again[-1] == {"role": "user", "content": "e"}  # S2 is already in effect


def test_tool_calls_then_results_in_order():
    call = Part(type="tool_call", tool_call_id="c1", tool_name="f", arguments={"x": 1})
    raw = Part(type="tool_call", tool_call_id="c2", tool_name="g", arguments='{"cut')
    result = Part(type="tool_result", role="user", tool_call_id="c1", tool_name="f", text="ok")
    failed = Part(type="tool_result", role="user", tool_call_id="c2", error="boom")
    reasoning = Part(type="reasoning", text="thinking")
    history = [Response(model="m", prompt="go", response=None, parts=[reasoning, call, raw])]
    messages, _ = build_messages(history, prompt=None, system=None, parts=[result, failed])
    assert messages == [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}},
            {"id": "c2", "type": "function", "function": {"name": "g", "arguments": '{"cut'}},
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok", "name": "f"},
        {"role": "tool", "tool_call_id": "c2", "content": "Error: boom"},
    ]
