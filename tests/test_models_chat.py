"""Reading chat-completions chunks and bodies, without a network."""

from __future__ import annotations

import pytest

from localfirst.errors import ModelError
from localfirst.models.chat import ChatReader, error_message


def test_tool_calls_without_index_and_with_a_split_name():
    reader = ChatReader()
    reader.feed({"choices": [{"delta": {"tool_calls": [{"id": "a", "function": {"name": "get_", "arguments": ""}}]}}]})
    reader.feed({"choices": [{"delta": {"tool_calls": [{"id": "a", "function": {"name": "weather"}}]}}]})
    reader.feed({"choices": [{"delta": {"tool_calls": [{"id": "a", "function": {"arguments": '{"q": 1'}}]}}]})
    reader.feed({"choices": [{"delta": {}, "finish_reason": "tool_calls"}]})
    [part] = reader.parts()
    assert (part.tool_call_id, part.tool_name, part.arguments) == ("a", "get_weather", '{"q": 1')  # cut: kept raw


def test_other_choices_are_ignored_and_usage_may_ride_on_any_chunk():
    reader = ChatReader()
    text = reader.feed({"model": "m-9", "choices": [
        {"index": 0, "delta": {"content": "yes"}}, {"index": 1, "delta": {"content": "no"}}]})
    assert text == "yes"
    reader.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}],
                 "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}})
    response = reader.response(model="alias")
    assert (response.response, response.resolved_model, response.finish_reason) == ("yes", "m-9", "length")
    assert (response.input_tokens, response.output_tokens, response.token_details) == (1, 2, None)
    assert response.response_json["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize("bad", [
    {"choices": "nope"},
    {"error": {"message": "quota"}},
    {"choices": [{"delta": {"tool_calls": ["x"]}}]},
])
def test_bad_chunks(bad):
    with pytest.raises(ModelError):
        ChatReader().feed(bad)


def test_a_body_without_choices():
    with pytest.raises(ModelError, match="without any choices"):
        ChatReader().read_body({"choices": []})


def test_error_messages_in_their_usual_shapes():
    assert error_message({"error": {"message": "m"}}) == "m"
    assert error_message({"error": "plain"}) == "plain"
    assert error_message({"detail": "Not Found"}) == "Not Found"
    assert error_message({"message": "top"}) == "top"
    assert error_message(["x"]) is None
