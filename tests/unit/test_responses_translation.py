"""The Responses surface's translation, without a server: request -> canonical chat body,
canonical answer -> Response, canonical chunks -> the event stream, and the pass-through's
stream watch."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from unigate.errors import InvalidRequest, UpstreamUnavailable
from unigate.providers.openai_responses import ResponsesStreamWatch, response_usage
from unigate.surfaces.responses.request import to_canonical
from unigate.surfaces.responses.response import Echo, to_response
from unigate.surfaces.responses.stream import RelayErrorEncoder, ResponsesStreamEncoder


def events(data: bytes) -> list[dict[str, Any]]:
    out = []
    for block in data.split(b"\n\n"):
        if not block:
            continue
        name, payload = block.split(b"\n", 1)
        ev = orjson.loads(payload[len(b"data: "):])
        assert name == b"event: " + ev["type"].encode()
        out.append(ev)
    return out


def chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> dict[str, Any]:
    c: dict[str, Any] = {"id": "c1", "model": "m-served", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage is not None:
        c["usage"] = usage
    return c


USAGE = {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14,
         "prompt_tokens_details": {"cached_tokens": 3}, "completion_tokens_details": {"reasoning_tokens": 2}}


# ---------------------------------------------------------------------------------- request


def test_request_fields_map_to_chat() -> None:
    t = to_canonical({
        "model": "m", "instructions": "Sys.", "max_output_tokens": 9, "temperature": 0, "top_p": 0.5, "user": "u",
        "reasoning": {"effort": "high", "summary": "auto"}, "text": {"format": {"type": "json_object"}, "verbosity": "low"},
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": False}],
        "tool_choice": {"type": "function", "name": "f"}, "parallel_tool_calls": False, "stream": True,
        "metadata": {"a": "b"}, "store": True, "include": ["reasoning.encrypted_content"], "truncation": "auto",
        "input": [{"role": "user", "content": "Q"}],
    })
    assert t.body == {
        "model": "m", "messages": [{"role": "system", "content": "Sys."}, {"role": "user", "content": "Q"}],
        "stream": True, "temperature": 0, "top_p": 0.5, "user": "u", "max_completion_tokens": 9,
        "reasoning_effort": "high", "response_format": {"type": "json_object"},
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}, "strict": False}}],
        "parallel_tool_calls": False, "tool_choice": {"type": "function", "function": {"name": "f"}},
    }
    # what the chat form cannot carry is named, never silently lost
    assert t.dropped == ["reasoning.summary", "text.verbosity", "include.reasoning.encrypted_content", "truncation"]


def test_items_merge_calls_into_the_assistant_message() -> None:
    t = to_canonical({"model": "m", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Calling."}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{\"x\":1}"},
        {"type": "function_call_output", "call_id": "c1", "output": "one"},
        {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "two"}]},
        {"type": "function_call", "call_id": "c3", "name": "f", "arguments": "{}"},
    ]})
    assert t.body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": "Calling.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{\"x\":1}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "tool", "tool_call_id": "c2", "content": "two"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c3", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
    ]


def test_history_comes_between_instructions_and_input() -> None:
    history = [{"type": "message", "role": "user", "content": "first"},
               {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ok"}]}]
    t = to_canonical({"model": "m", "instructions": "I.", "input": "second"}, history)
    assert [m["content"] for m in t.body["messages"]] == ["I.", "first", "ok", "second"]


@pytest.mark.parametrize(("body", "param"), [
    ({"input": "x"}, "model"),
    ({"model": "m", "input": "x", "tools": [{"type": "web_search_preview"}]}, "tools[0].type"),
    ({"model": "m", "input": "x", "tools": [{"type": "local_shell"}]}, "tools[0].type"),
    ({"model": "m", "input": "x", "tool_choice": {"type": "function", "name": "f"}}, "tool_choice"),
    ({"model": "m", "input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]},
     "input[0].arguments"),
    ({"model": "m", "input": [{"role": "system", "content": [{"type": "input_image", "image_url": "u"}]}]},
     "input[0].content"),
    ({"model": "m", "input": "x", "conversation": "conv_1"}, "conversation"),
    ({"model": "m", "input": "x", "prompt": {"id": "p"}}, "prompt"),
])
def test_bad_input(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as ei:
        to_canonical(body)
    assert ei.value.param == param and ei.value.http_status == 400


# ---------------------------------------------------------------------------------- answer


def test_answer_to_response() -> None:
    echo = Echo.of({"model": "asked", "tools": [{"type": "function", "name": "f"}], "metadata": {"k": "v"}}, True)
    obj = {"model": "served", "usage": USAGE, "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "Sure.", "reasoning_content": "Think.",
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}}]}
    r = to_response(obj, echo)
    assert r["id"] == echo.id and r["id"].startswith("resp_") and r["object"] == "response"
    assert r["status"] == "completed" and r["incomplete_details"] is None and r["model"] == "served"
    assert [o["type"] for o in r["output"]] == ["reasoning", "message", "function_call"]
    assert r["output"][0]["content"] == [{"type": "reasoning_text", "text": "Think."}]
    assert r["output"][1]["content"] == [{"type": "output_text", "text": "Sure.", "annotations": [], "logprobs": []}]
    fc = r["output"][2]
    assert (fc["call_id"], fc["name"], fc["arguments"], fc["status"]) == ("call_1", "f", "{\"a\":1}", "completed")
    assert r["usage"] == {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 3, "cache_write_tokens": 0},
                          "output_tokens": 4, "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 14}
    assert r["metadata"] == {"k": "v"} and r["store"] is True
    assert r["tools"] == [{"type": "function", "name": "f", "description": None, "parameters": None, "strict": True}]


@pytest.mark.parametrize(("finish", "reason"), [("length", "max_output_tokens"), ("content_filter", "content_filter")])
def test_incomplete(finish: str, reason: str) -> None:
    obj = {"choices": [{"finish_reason": finish, "message": {"role": "assistant", "content": "Par", "refusal": None}}]}
    r = to_response(obj, Echo.of({"model": "m"}, False))
    assert r["status"] == "incomplete" and r["incomplete_details"] == {"reason": reason}
    assert r["output"][0]["status"] == "incomplete" and r["model"] == "m" and r["usage"] is None


def test_refusal_is_a_refusal_part() -> None:
    obj = {"choices": [{"finish_reason": "stop", "message": {"role": "assistant", "content": None, "refusal": "No."}}]}
    assert to_response(obj, Echo.of({"model": "m"}, False))["output"][0]["content"] == [{"type": "refusal", "refusal": "No."}]


# ---------------------------------------------------------------------------------- stream


def test_stream_items_one_at_a_time() -> None:
    finals: list[Any] = []
    enc = ResponsesStreamEncoder(Echo.of({"model": "m"}, True), finals.append)
    out = enc.chunk(chunk({"role": "assistant", "reasoning_content": "Hm."}))
    out += enc.chunk(chunk({"content": "A"}))
    out += enc.chunk(chunk({"content": "B"}))
    out += enc.chunk(chunk({"tool_calls": [{"index": 0, "id": "call_x", "function": {"name": "f", "arguments": "{\"a\""}}]}))
    out += enc.chunk(chunk({"tool_calls": [{"index": 1, "id": "call_y", "function": {"name": "g", "arguments": "{}"}}]}))
    # a late fragment of the first call (interleaved parallel calls)
    out += enc.chunk(chunk({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}))
    out += enc.chunk(chunk({}, "tool_calls"))
    out += enc.finish(USAGE)
    evs = events(out)
    assert [e["sequence_number"] for e in evs] == list(range(len(evs)))
    assert [e["type"] for e in evs] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added", "response.reasoning_text.delta",
        "response.reasoning_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.content_part.added", "response.output_text.delta",
        "response.output_text.delta", "response.output_text.done", "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",  # the late fragment, with the first call's item id
        "response.function_call_arguments.done", "response.output_item.done",
        "response.completed"]
    assert [e["output_index"] for e in evs if e["type"] == "response.output_item.added"] == [0, 1, 2, 3]
    final = evs[-1]["response"]
    assert final["status"] == "completed" and final["model"] == "m-served"
    assert [o["type"] for o in final["output"]] == ["reasoning", "message", "function_call", "function_call"]
    assert final["output"][1]["content"][0]["text"] == "AB"
    assert final["output"][2]["arguments"] == "{\"a\":1}" and final["output"][3]["call_id"] == "call_y"
    assert final["usage"]["input_tokens_details"]["cached_tokens"] == 3
    assert finals == [final]  # the surface is told before the client reads the last event


def test_stream_cut_before_finish_is_a_failure() -> None:
    finals: list[Any] = []
    enc = ResponsesStreamEncoder(Echo.of({"model": "m"}, True), finals.append)
    evs = events(enc.chunk(chunk({"content": "Hal"})) + enc.finish(None))
    assert [e["type"] for e in evs[-2:]] == ["error", "response.failed"]
    assert evs[-1]["response"]["status"] == "failed" and "ended before" in evs[-1]["response"]["error"]["message"]
    assert finals == []  # a failed response is not stored


def test_error_before_any_chunk_still_frames_the_stream() -> None:
    enc = ResponsesStreamEncoder(Echo.of({"model": "m"}, False))
    evs = events(enc.error(UpstreamUnavailable("boom", code="x_code")))
    assert [e["type"] for e in evs] == ["response.created", "response.in_progress", "error", "response.failed"]
    assert evs[2]["code"] == "x_code" and evs[2]["message"] == "boom"


# ---------------------------------------------------------------------------------- pass-through


def test_watch_reads_usage_errors_and_the_end() -> None:
    done = {"type": "response.completed", "sequence_number": 5, "response": {
        "id": "r", "usage": {"input_tokens": 3, "output_tokens": 2, "output_tokens_details": {"reasoning_tokens": 1}}}}
    delta = {"type": "response.output_text.delta", "delta": "x", "sequence_number": 4}
    block = b"".join(b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in (delta, done))
    w = ResponsesStreamWatch("openai")
    out, err = w.see(block)
    assert out == block and err is None
    assert w.usage is not None and (w.usage["prompt_tokens"], w.usage["completion_tokens"]) == (3, 2)
    w.close()

    w = ResponsesStreamWatch("openai")
    bad = b"event: error\ndata: " + orjson.dumps({"type": "error", "message": "overloaded", "code": "server_error"}) + b"\n\n"
    first = b"event: x\ndata: " + orjson.dumps(delta) + b"\n\n"
    out, err = w.see(first + bad)
    assert out == first and err is not None and "overloaded" in err.message
    # the surface numbers its error event after the last event relayed (4)
    assert b"event: error" in RelayErrorEncoder().error(err) and b'"sequence_number":5' in RelayErrorEncoder().error(err)
    with pytest.raises(UpstreamUnavailable):
        ResponsesStreamWatch("openai").close()  # no terminal event: a cut stream


def test_response_usage_checks_the_shape() -> None:
    assert response_usage(orjson.dumps({"object": "response", "output": [], "usage": {"input_tokens": 1}}))[
        "prompt_tokens"] == 1
    with pytest.raises(ValueError):
        response_usage(b'{"object": "chat.completion", "choices": []}')


ODD: list[Any] = [None, True, 0, -1, 1.5, "", "x", [], [None], [1], ["x"], {}, {"type": ["x"]}, {"type": None},
                  {"role": ["user"]}, {"effort": ["low"]}, {"format": ["x"]}, {"format": {"type": ["x"]}}]
FIELDS = ["input", "instructions", "tools", "tool_choice", "text", "max_output_tokens", "temperature", "top_p",
          "reasoning", "parallel_tool_calls", "metadata", "user", "stream", "store", "include", "truncation",
          "previous_response_id"]


@pytest.mark.parametrize("name", FIELDS)
def test_odd_values_are_400s_never_crashes(name: str) -> None:
    """Every field with values of every odd shape: translated, or an InvalidRequest (a 400), and
    the echo built from the same body never trips either (a crash would be a 500)."""
    for v in ODD:
        shapes = [v, [v], {"format": v}, {"effort": v}]
        if name == "input":
            shapes += [[{"role": "user", "content": v}], [{"role": "user", "content": [v]}],
                       [{"role": "assistant", "content": [v]}], [{"type": "function_call", "call_id": v}],
                       [{"type": "function_call_output", "call_id": "c", "output": v}],
                       [{"role": "user", "content": [{"type": "input_image", "image_url": v, "detail": v}]}]]
        if name == "tools":
            shapes += [[{"type": "function", "name": "f", "parameters": v, "description": v, "strict": v}],
                       [{"type": v}]]
        for wrapped in shapes:
            body = {"model": "m", "input": "hi", name: wrapped}
            try:
                to_canonical(body)
            except InvalidRequest:
                pass
            Echo.of(body, False)
