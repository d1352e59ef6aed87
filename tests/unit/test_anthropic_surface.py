"""Pure translations of the Anthropic surface: Messages request -> canonical body, canonical
answer/chunks -> Anthropic message/SSE, gateway errors -> Anthropic's envelope."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from unigate.errors import (
    BodyTooLarge,
    Forbidden,
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    RateLimited,
    ServiceUnavailable,
    Unauthenticated,
    UnsupportedFeature,
    UpstreamForbidden,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from unigate.surfaces.anthropic import target_for
from unigate.surfaces.anthropic.request import Target, to_canonical
from unigate.surfaces.anthropic.response import error_type, render_error, to_message, tool_input, usage
from unigate.surfaces.anthropic.stream import AnthropicEgress, AnthropicStreamEncoder

NATIVE = Target(native=True, top_k=True, reasoning=True)
OPENAI = Target(native=False, top_k=False, reasoning=True)
USER = [{"role": "user", "content": "hi"}]


def body(**kw: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 10, "messages": USER, **kw}


# ---------------------------------------------------------------------------------- request


def test_minimal_body() -> None:
    assert to_canonical(body()) == {"model": "m", "max_completion_tokens": 10, "messages": USER}


def test_system_string_and_blocks() -> None:
    assert to_canonical(body(system="Be brief."))["messages"][0] == {"role": "system", "content": "Be brief."}
    blocks = [{"type": "text", "text": "A", "cache_control": {"type": "ephemeral"}}, {"type": "text", "text": "B"}]
    assert to_canonical(body(system=blocks), OPENAI)["messages"][0] == {"role": "system", "content": "A\n\nB"}
    assert to_canonical(body(system=blocks), NATIVE)["messages"][0] == {"role": "system", "content": blocks}
    assert to_canonical(body(system=""))["messages"] == USER  # nothing to say: no system message


def test_tool_results_become_tool_messages_before_the_user_text() -> None:
    msgs = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "s"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "w", "input": {}}]},
        {"role": "user", "content": [
            {"type": "text", "text": "here:"},
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "18C"},
                                                                          {"type": "text", "text": "sunny"}]},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "boom", "is_error": True},
            {"type": "tool_result", "tool_use_id": "toolu_3", "content": [
                {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]}]},
    ]
    out = to_canonical(body(messages=msgs))["messages"]
    assert out == [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "w", "arguments": '{"city":"Paris"}'}},
            {"id": "toolu_2", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C\nsunny"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: boom"},
        {"role": "tool", "tool_call_id": "toolu_3", "content": ""},
        {"role": "user", "content": [{"type": "text", "text": "here:"},
                                     {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
    ]


def test_assistant_with_only_tool_use_has_null_content() -> None:
    msgs = [*USER, {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}]}]
    assert to_canonical(body(messages=msgs))["messages"][1]["content"] is None


def test_images_and_documents() -> None:
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA"}},
        {"type": "document", "title": "r.pdf", "source": {"type": "base64", "media_type": "application/pdf", "data": "PDF"}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain"}},
        {"type": "text", "text": "look", "cache_control": {"type": "ephemeral"}},
    ]
    parts = to_canonical(body(messages=[{"role": "user", "content": content}]), OPENAI)["messages"][0]["content"]
    assert parts == [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}},
        {"type": "file", "file": {"filename": "r.pdf", "file_data": "data:application/pdf;base64,PDF"}},
        {"type": "text", "text": "plain"},
        {"type": "text", "text": "look"},  # cache_control only where an Anthropic upstream reads it
    ]
    native = to_canonical(body(messages=[{"role": "user", "content": content[3:]}]), NATIVE)["messages"][0]["content"]
    assert native == [{"type": "text", "text": "look", "cache_control": {"type": "ephemeral"}}]


def test_sampling_stop_user_stream() -> None:
    out = to_canonical(body(temperature=0.2, top_p=0.8, top_k=5, stop_sequences=["X", "Y"],
                            metadata={"user_id": "u"}, stream=True), NATIVE)
    assert out["temperature"] == 0.2 and out["top_p"] == 0.8 and out["top_k"] == 5
    assert out["stop"] == ["X", "Y"] and out["user"] == "u"
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}
    assert "top_k" not in to_canonical(body(top_k=5), OPENAI)
    assert "stream" not in to_canonical(body(stream=False))


@pytest.mark.parametrize("choice,expected", [
    ({"type": "auto"}, "auto"), ({"type": "any"}, "required"), ({"type": "none"}, "none"),
    ({"type": "tool", "name": "w"}, {"type": "function", "function": {"name": "w"}}),
])
def test_tool_choice(choice: dict[str, Any], expected: Any) -> None:
    tools = [{"name": "w", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}]
    out = to_canonical(body(tools=tools, tool_choice={**choice, "disable_parallel_tool_use": True}), OPENAI)
    assert out["tools"] == [{"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}]
    assert out["tool_choice"] == expected
    assert out.get("parallel_tool_calls") is (None if choice["type"] == "none" else False)
    assert to_canonical(body(tools=tools), NATIVE)["tools"][0]["cache_control"] == {"type": "ephemeral"}


def test_tool_choice_without_tools_is_left_out() -> None:
    assert "tool_choice" not in to_canonical(body(tool_choice={"type": "auto"}))


@pytest.mark.parametrize("budget,effort", [(1024, "low"), (4096, "medium"), (10000, "medium"), (16384, "high")])
def test_thinking_to_reasoning_effort(budget: int, effort: str) -> None:
    th = {"type": "enabled", "budget_tokens": budget}
    assert to_canonical(body(thinking=th), OPENAI)["reasoning_effort"] == effort
    assert "reasoning_effort" not in to_canonical(body(thinking=th), Target(reasoning=False))
    native = to_canonical(body(thinking=th), NATIVE)
    assert native["thinking"] == th and "reasoning_effort" not in native
    assert "reasoning_effort" not in to_canonical(body(thinking={"type": "adaptive"}), OPENAI)


def test_output_config_format() -> None:
    out = to_canonical(body(output_config={"format": {"type": "json_schema", "schema": {"type": "object"}}}))
    assert out["response_format"] == {"type": "json_schema", "json_schema": {"name": "output", "schema": {"type": "object"}}}


@pytest.mark.parametrize("bad,field", [
    ({"model": None}, "model"),
    ({"max_tokens": None}, "max_tokens"),
    ({"max_tokens": -1}, "max_tokens"),
    ({"max_tokens": "10"}, "max_tokens"),
    ({"messages": None}, "messages"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0.role"),
    ({"messages": [{"role": "user"}]}, "messages.0.content"),
    ({"messages": [{"role": "user", "content": [{"type": "video"}]}]}, "messages.0.content.0.type"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "ftp://x"}}]}]},
     "messages.0.content.0.source.url"),
    ({"messages": [{"role": "assistant", "content": [{"type": "tool_use", "name": "f", "input": {}}]}]},
     "messages.0.content.0.id"),
    ({"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": []}]}]},
     "messages.0.content.0.input"),
    ({"temperature": 1.5}, "temperature"),
    ({"top_p": "x"}, "top_p"),
    ({"stop_sequences": "END"}, "stop_sequences"),
    ({"system": [{"type": "image"}]}, "system.0.type"),
    ({"tools": [{"name": "w"}]}, "tools.0.input_schema"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools.0.type"),
    ({"tools": [{"name": "w", "input_schema": {}}], "tool_choice": {"type": "sometimes"}}, "tool_choice.type"),
    ({"tools": [{"name": "w", "input_schema": {}}], "tool_choice": {"type": "tool"}}, "tool_choice.name"),
    ({"thinking": {"type": "enabled"}}, "thinking.budget_tokens"),
    ({"metadata": {"user_id": 5}}, "metadata.user_id"),
])
def test_bad_input_is_400_naming_the_field(bad: dict[str, Any], field: str) -> None:
    b = {k: v for k, v in {**body(), **bad}.items() if v is not None}
    with pytest.raises(InvalidRequest) as ei:
        to_canonical(b)
    assert ei.value.http_status == 400 and ei.value.param == field and field in ei.value.message


def test_server_tools_are_unsupported_not_ignored() -> None:
    with pytest.raises(UnsupportedFeature):
        to_canonical(body(tools=[{"type": "bash_20250124", "name": "bash"}]))


def test_target_for_deployments() -> None:
    def dep(dialect: str, preset: str, model: str) -> Any:
        return SimpleNamespace(adapter=SimpleNamespace(dialect=dialect), provider=SimpleNamespace(preset=SimpleNamespace(id=preset)),
                               model=model)

    assert target_for([dep("anthropic", "anthropic", "claude-x-unknown")]) == Target(native=True, top_k=True, reasoning=True)
    assert target_for([dep("anthropic", "anthropic", "a"), dep("gemini", "gemini", "b")]) == Target(False, True, True)
    assert target_for([dep("openai", "openai", "gpt-4o-mini")]) == Target(native=False, top_k=False, reasoning=False)


# ---------------------------------------------------------------------------------- response


def completion(message: dict[str, Any], finish: str | None = "stop", **choice: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": "up",
            "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish, **choice}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 9, "total_tokens": 39,
                      "prompt_tokens_details": {"cached_tokens": 10, "cache_write_tokens": 5},
                      "completion_tokens_details": {"reasoning_tokens": 4}}}


def test_message_with_reasoning_text_and_tools() -> None:
    m = to_message(completion({"content": "Checking.", "reasoning_content": "hmm", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "w", "arguments": '{"city": "Paris"}'}}]},
        "tool_calls"), "openai/x")
    assert m == {
        "id": "msg_chatcmpl-1", "type": "message", "role": "assistant", "model": "up",
        "content": [{"type": "thinking", "thinking": "hmm", "signature": ""}, {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "call_1", "name": "w", "input": {"city": "Paris"}}],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 15, "output_tokens": 9, "cache_creation_input_tokens": 5, "cache_read_input_tokens": 10,
                  "output_tokens_details": {"thinking_tokens": 4}},
    }


@pytest.mark.parametrize("args,expected", [('{"a": 1}', {"a": 1}), ("", {}), (None, {}), ("  ", {}),
                                           ("[1, 2]", {"_raw": "[1, 2]"}), ('{"a": ', {"_raw": '{"a": '})])
def test_tool_input(args: Any, expected: dict[str, Any]) -> None:
    assert tool_input(args) == expected


@pytest.mark.parametrize("finish,tools,expected", [
    ("stop", False, "end_turn"), (None, False, "end_turn"), ("length", False, "max_tokens"),
    ("tool_calls", True, "tool_use"), ("stop", True, "tool_use"), ("length", True, "max_tokens"),
    ("content_filter", False, "refusal"), ("weird", False, "end_turn"),
])
def test_stop_reasons(finish: str | None, tools: bool, expected: str) -> None:
    msg: dict[str, Any] = {"content": "x"}
    if tools:
        msg["tool_calls"] = [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    assert to_message(completion(msg, finish), "m")["stop_reason"] == expected


def test_stop_sequence_when_the_upstream_names_it() -> None:
    # vLLM reports the matched stop string in choices[].stop_reason
    m = to_message(completion({"content": "x"}, "stop", stop_reason="END"), "m", ["END"])
    assert (m["stop_reason"], m["stop_sequence"]) == ("stop_sequence", "END")
    m = to_message(completion({"content": "x"}, "stop", stop_reason=2), "m", ["END"])  # a token id: EOS
    assert (m["stop_reason"], m["stop_sequence"]) == ("end_turn", None)


def test_refusal_and_missing_usage() -> None:
    obj = completion({"content": None, "refusal": "I can't."})
    del obj["usage"]
    m = to_message(obj, "m")
    assert m["content"] == [{"type": "text", "text": "I can't."}] and m["stop_reason"] == "refusal"
    assert m["usage"] == {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    assert usage({"prompt_tokens": 7, "completion_tokens": 2})["input_tokens"] == 7


# ---------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("err,status,etype", [
    (InvalidRequest("x"), 400, "invalid_request_error"),
    (Unauthenticated("x"), 401, "authentication_error"),
    (UpstreamForbidden("x", status=402), 402, "billing_error"),
    (Forbidden("x"), 403, "permission_error"),
    (ModelNotFound("x"), 404, "not_found_error"),
    (GatewayError("x", status=405), 405, "invalid_request_error"),
    (BodyTooLarge("x"), 413, "request_too_large"),
    (RateLimited("x", retry_after=2.2), 429, "rate_limit_error"),
    (GatewayError("x"), 500, "api_error"),
    (UpstreamUnavailable("x"), 502, "api_error"),
    (ServiceUnavailable("x"), 503, "overloaded_error"),
    (UpstreamTimeout("x"), 504, "timeout_error"),
])
def test_render_error(err: GatewayError, status: int, etype: str) -> None:
    resp = render_error(err, "req_1")
    assert resp.status == status and error_type(status) == etype
    assert orjson.loads(resp.body) == {"type": "error", "error": {"type": etype, "message": "x"}, "request_id": "req_1"}  # type: ignore[arg-type]
    assert resp.headers["request-id"] == "req_1"
    if status == 429:
        assert resp.headers["Retry-After"] == "3"
    if status == 402:
        assert resp.headers["x-should-retry"] == "false"


# ---------------------------------------------------------------------------------- stream


def parse(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in data.decode().split("\n\n"):
        if block:
            name, payload = block.split("\n")
            assert name.startswith("event: ") and payload.startswith("data: ")
            obj = orjson.loads(payload[6:])
            assert obj["type"] == name[7:]
            out.append((name[7:], obj))
    return out


def ch(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-9", "object": "chat.completion.chunk", "model": "up",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, **extra}]}


def run(chunks: list[dict[str, Any]], final_usage: Any = None, stops: Any = None) -> list[tuple[str, dict[str, Any]]]:
    enc = AnthropicEgress("req/model", stops, "req_1").stream_encoder({})
    data = b"".join(enc.chunk(c) for c in chunks) + enc.finish(final_usage)
    return parse(data)


def test_stream_thinking_text_and_parallel_tools() -> None:
    evs = run([
        ch({"role": "assistant", "content": ""}),
        ch({"reasoning_content": "hmm"}), ch({"reasoning_content": "..."}),
        ch({"content": "Let me"}), ch({"content": " check."}),
        ch({"tool_calls": [{"index": 0, "id": "c0", "type": "function", "function": {"name": "a", "arguments": ""}}]}),
        ch({"tool_calls": [{"index": 0, "function": {"arguments": '{"x":'}}]}),
        ch({"tool_calls": [{"index": 1, "id": "c1", "type": "function", "function": {"name": "b", "arguments": "{}"}}]}),
        ch({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),  # a late fragment of call 0
        ch({}, "tool_calls"),
    ], {"prompt_tokens": 20, "completion_tokens": 8, "prompt_tokens_details": {"cached_tokens": 5}})
    names = [n for n, _ in evs]
    assert names == ["message_start",
                     "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
                     "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
                     "content_block_start", "content_block_delta",
                     "content_block_stop", "content_block_start", "content_block_delta",
                     "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    start = evs[0][1]["message"]
    assert start["id"] == "msg_chatcmpl-9" and start["model"] == "up" and start["content"] == []
    assert evs[1][1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert evs[5][1] == {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}
    assert evs[9][1]["content_block"] == {"type": "tool_use", "id": "c0", "name": "a", "input": {}}
    assert evs[12][1]["content_block"]["id"] == "c1" and evs[12][1]["index"] == 3
    late = evs[14][1]
    assert late["index"] == 2 and late["delta"] == {"type": "input_json_delta", "partial_json": "1}"}
    assert evs[-2][1] == {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                          "usage": {"input_tokens": 15, "output_tokens": 8, "cache_creation_input_tokens": 0,
                                    "cache_read_input_tokens": 5}}


def test_stream_stop_sequence_and_usage_from_chunks() -> None:
    usage_chunk = {"id": "x", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
    evs = run([ch({"content": "a"}), ch({}, "stop", stop_reason="END"), usage_chunk], None, ["END"])
    md = evs[-2][1]
    assert md["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "END"}
    assert (md["usage"]["input_tokens"], md["usage"]["output_tokens"]) == (3, 1)


def test_stream_empty_answer() -> None:
    evs = run([ch({"role": "assistant"}), ch({}, "length")])
    assert [n for n, _ in evs] == ["message_start", "message_delta", "message_stop"]
    assert evs[1][1]["delta"]["stop_reason"] == "max_tokens"


def test_stream_without_finish_is_an_error() -> None:
    evs = run([ch({"content": "half"})])
    assert [n for n, _ in evs][-2:] == ["content_block_stop", "error"]
    assert evs[-1][1]["error"]["type"] == "api_error"


def test_stream_error_event() -> None:
    enc = AnthropicStreamEncoder("m", None, "req_1")
    assert parse(enc.error(ServiceUnavailable("busy"))) == [
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}, "request_id": "req_1"})]


def test_egress_names_the_model_that_served() -> None:
    """The upstream's name for the model that answered, as Anthropic's API does; the name asked
    for only when the answer names none."""
    egress = AnthropicEgress("alias-fast")
    assert orjson.loads(egress.encode_json(completion({"content": "hi"})))["model"] == "up"
    assert orjson.loads(egress.encode_json({**completion({"content": "hi"}), "model": None}))["model"] == "alias-fast"
    enc = egress.stream_encoder({})
    start = parse(enc.chunk({**ch({"content": "hi"}), "model": ""}) + enc.finish(None))[0][1]
    assert start["message"]["model"] == "alias-fast"


def test_tool_result_cache_control_kept_for_anthropic() -> None:
    msgs = [*USER, {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "done",
                                          "cache_control": {"type": "ephemeral"}, "is_error": True}]}]
    native = to_canonical(body(messages=msgs), NATIVE)["messages"][2]
    assert native == {"role": "tool", "tool_call_id": "t1",
                      "content": [{"type": "text", "text": "Error: done", "cache_control": {"type": "ephemeral"}}]}
    assert to_canonical(body(messages=msgs), OPENAI)["messages"][2] == {"role": "tool", "tool_call_id": "t1",
                                                                        "content": "Error: done"}
