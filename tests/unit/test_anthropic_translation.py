"""Pure translation edge cases of the Anthropic adapter: no HTTP, just dicts and bytes."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest

from unigate.canonical.tools import JSON_TOOL
from unigate.config import Timeouts
from unigate.errors import (
    InvalidRequest,
    UnsupportedFeature,
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamUnavailable,
)
from unigate.providers.anthropic import AnthropicAdapter, AnthropicStreamDecoder
from unigate.providers.anthropic.request import READS, build, tool_id
from unigate.providers.base import Deployment, Provider, unread_fields
from unigate.providers.presets import PRESETS

TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
USER = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]


def dep(base_url: str = "https://api.anthropic.com", headers: dict[str, str] | None = None) -> Deployment:
    prov = Provider(id="anthropic", preset=PRESETS["anthropic"], base_url=base_url, api_key="k",
                    headers=headers or {"Content-Type": "application/json", "x-api-key": "k"}, timeouts=Timeouts())
    return Deployment(id="d", provider=prov, model="claude-x", adapter=AnthropicAdapter(), timeouts=Timeouts())


def req(**body: Any) -> dict[str, Any]:
    body.setdefault("messages", USER)
    out, _ = build(body, "claude-x", stream=False)
    return out


# ------------------------------------------------------------------ request


def test_request_url_and_headers_are_built_once_per_provider() -> None:
    d = dep()
    a = AnthropicAdapter()
    r1 = a.chat_request({"messages": USER}, d, stream=False)
    r2 = a.chat_request({"messages": USER}, d, stream=True)
    assert r1.url == "https://api.anthropic.com/v1/messages"
    assert r1.headers["anthropic-version"] == "2023-06-01" and r1.headers["x-api-key"] == "k"
    assert r1.headers is r2.headers  # cached, not rebuilt per request
    assert orjson.loads(r2.body or b"")["stream"] is True
    # a base URL that already carries /v1, and a configured version header, are respected
    d2 = dep("http://h/v1/", {"anthropic-version": "2099-01-01"})
    r3 = a.chat_request({"messages": USER}, d2, stream=False)
    assert r3.url == "http://h/v1/messages" and r3.headers["anthropic-version"] == "2099-01-01"


def test_system_and_developer_are_hoisted_in_order() -> None:
    out = req(messages=[{"role": "system", "content": "a"}, {"role": "user", "content": "u"},
                        {"role": "developer", "content": [{"type": "text", "text": "b"}]}])
    assert out["system"] == "a\n\nb"
    assert out["messages"] == [{"role": "user", "content": [{"type": "text", "text": "u"}]}]
    cached = req(messages=[{"role": "system", "content": [{"type": "text", "text": "big", "cache_control": {"type": "ephemeral"}}]}, *USER])
    assert cached["system"] == [{"type": "text", "text": "big", "cache_control": {"type": "ephemeral"}}]


def test_only_a_system_prompt_is_400() -> None:
    with pytest.raises(InvalidRequest):
        req(messages=[{"role": "system", "content": "a"}])


def test_max_tokens_default_and_precedence() -> None:
    assert req()["max_tokens"] == 4096
    assert req(max_tokens=10)["max_tokens"] == 10
    assert req(max_tokens=10, max_completion_tokens=20)["max_tokens"] == 20
    assert req(max_tokens=0)["max_tokens"] == 0


def test_sampling_and_stop() -> None:
    out = req(temperature=1, top_p=0.5, top_k=5, stop="END", safety_identifier="s", user="u")
    assert (out["temperature"], out["top_p"], out["top_k"]) == (1, 0.5, 5)
    assert out["stop_sequences"] == ["END"] and out["metadata"] == {"user_id": "s"}
    body = {"messages": USER, "seed": 1, "presence_penalty": 0.1, "frequency_penalty": 0.2}
    _, dropped = build(body, "m", stream=False)
    # no counterpart: not read, so the pipeline names them (unread_fields) in x-unigate-dropped-params
    assert dropped == () and unread_fields(body, READS) == ["seed", "presence_penalty", "frequency_penalty"]


@pytest.mark.parametrize("body,param", [
    ({"temperature": 1.2}, "temperature"), ({"n": 3}, "n"), ({"logprobs": True}, "logprobs"),
    ({"modalities": ["text", "audio"]}, "modalities"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}, "messages[0].content[0]"),
    ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0].type"),
])
def test_unsupported_is_400(body: dict[str, Any], param: str) -> None:
    with pytest.raises(UnsupportedFeature) as ei:
        req(**body)
    assert ei.value.param == param and ei.value.http_status == 400


def test_reasoning_effort_sets_a_thinking_budget() -> None:
    out, dropped = build({"messages": USER, "reasoning_effort": "medium", "temperature": 0.2}, "m", stream=False)
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    assert out["max_tokens"] == 8192 + 4096
    assert "temperature" not in out and dropped == ("temperature",)  # thinking needs the default temperature
    # OpenAI counts reasoning inside max_completion_tokens: the budget shrinks to fit
    assert req(reasoning_effort="high", max_completion_tokens=5000)["thinking"]["budget_tokens"] == 4999
    assert "thinking" not in req(reasoning_effort="none")
    with pytest.raises(UnsupportedFeature):
        req(reasoning_effort="high", max_completion_tokens=500)
    with pytest.raises(InvalidRequest):
        req(reasoning_effort="extreme")


def test_tool_id_rewrite_is_stable_and_valid() -> None:
    assert tool_id("toolu_01ABC-x") == "toolu_01ABC-x"
    for odd in ["call:1", "a.b|c", "", "functions.f:0", "ünï"]:
        new = tool_id(odd)
        assert TOOL_ID.match(new) and new == tool_id(odd)
    assert tool_id("a.b") != tool_id("a:b")  # sanitising alone would make these collide


def test_tool_messages_merge_and_results_come_first() -> None:
    out = req(messages=[
        *USER,
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c.1", "type": "function", "function": {"name": "f", "arguments": ""}},
            {"id": "c.2", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]},
        {"role": "tool", "tool_call_id": "c.1", "content": ""},
        {"role": "tool", "tool_call_id": "c.2", "content": "ok"},
        {"role": "user", "content": "next"},
    ], tools=TOOLS)
    assistant, results = out["messages"][1], out["messages"][2]
    assert assistant["content"] == [  # the empty text is dropped: Anthropic rejects empty text blocks
        {"type": "tool_use", "id": tool_id("c.1"), "name": "f", "input": {}},
        {"type": "tool_use", "id": tool_id("c.2"), "name": "f", "input": {"a": 1}}]
    assert results == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": tool_id("c.1")},
        {"type": "tool_result", "tool_use_id": tool_id("c.2"), "content": "ok"},
        {"type": "text", "text": "next"}]}


@pytest.mark.parametrize("args", ['{"a": ', "[1, 2]", "nope"])
def test_bad_tool_arguments_name_the_message(args: str) -> None:
    with pytest.raises(InvalidRequest) as ei:
        req(messages=[*USER, {"role": "assistant", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": args}}]}])
    assert ei.value.param == "messages[1].tool_calls[0].function.arguments"


def test_trailing_assistant_prefill_loses_trailing_whitespace() -> None:
    out = req(messages=[*USER, {"role": "assistant", "content": "The answer is "}])
    assert out["messages"][-1] == {"role": "assistant", "content": [{"type": "text", "text": "The answer is"}]}


def test_tools_and_tool_choice() -> None:
    out = req(tools=[{"type": "function", "function": {"name": "g", "description": "d"}}],
              tool_choice={"type": "function", "function": {"name": "g"}}, parallel_tool_calls=False)
    assert out["tools"] == [{"name": "g", "input_schema": {"type": "object", "properties": {}}, "description": "d"}]
    assert out["tool_choice"] == {"type": "tool", "name": "g", "disable_parallel_tool_use": True}
    assert req(tools=TOOLS, parallel_tool_calls=False)["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert req(tools=TOOLS, tool_choice="none", parallel_tool_calls=False)["tool_choice"] == {"type": "none"}
    assert "tool_choice" not in req(tool_choice="auto")  # no tools, nothing to choose
    two = [*TOOLS, {"type": "function", "function": {"name": "h"}}]
    allowed = req(tools=two, tool_choice={"type": "allowed_tools", "allowed_tools": {
        "mode": "required", "tools": [{"type": "function", "function": {"name": "h"}}]}})
    assert [t["name"] for t in allowed["tools"]] == ["h"] and allowed["tool_choice"] == {"type": "any"}
    with pytest.raises(InvalidRequest):
        req(tools=[{"type": "function", "function": {"name": JSON_TOOL}}])


def test_response_format_with_client_tools() -> None:
    rf = {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object"}}}
    out = req(tools=TOOLS, response_format=rf)
    assert [t["name"] for t in out["tools"]] == ["f", JSON_TOOL]
    assert out["tool_choice"] == {"type": "any"}  # call a tool or answer through the answer tool
    with pytest.raises(UnsupportedFeature):
        req(response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "array"}}})
    with pytest.raises(UnsupportedFeature):
        req(response_format=rf, reasoning_effort="low")


def test_images_and_documents() -> None:
    def part(url: str) -> list[dict[str, Any]]:
        return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]

    assert req(messages=part("data:image/jpg;base64,QUJD"))["messages"][0]["content"][0]["source"] == {
        "type": "base64", "media_type": "image/jpeg", "data": "QUJD"}
    for bad in ["data:image/png,QUJD", "ftp://x/y.png", "data:image/png;base64,"]:
        with pytest.raises(InvalidRequest):
            req(messages=part(bad))
    with pytest.raises(UnsupportedFeature):
        req(messages=part("data:image/tiff;base64,QUJD"))
    pdf = req(messages=[{"role": "user", "content": [{"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE"}}]}])
    assert pdf["messages"][0]["content"][0] == {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}}


# ------------------------------------------------------------------ response


def message(content: list[dict[str, Any]], stop: str = "end_turn", **usage: int) -> bytes:
    return orjson.dumps({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "content": content,
                         "stop_reason": stop, "usage": {"input_tokens": 3, "output_tokens": 4, **usage}})


def test_response_text_tools_thinking_usage() -> None:
    out = AnthropicAdapter().chat_response(message([
        {"type": "thinking", "thinking": "hmm", "signature": "s"},
        {"type": "text", "text": "a"}, {"type": "text", "text": "b"},
        {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"x": 1}}], "tool_use",
        cache_creation_input_tokens=5, cache_read_input_tokens=7), dep())
    msg = out["choices"][0]["message"]
    assert msg["content"] == "ab" and msg["reasoning_content"] == "hmm"
    assert msg["tool_calls"] == [{"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}}]
    assert out["choices"][0]["finish_reason"] == "tool_calls"
    assert out["usage"] == {"prompt_tokens": 15, "completion_tokens": 4, "total_tokens": 19,
                            "prompt_tokens_details": {"cached_tokens": 7, "cache_write_tokens": 5}}
    only_tool = AnthropicAdapter().chat_response(message([{"type": "tool_use", "id": "t", "name": "f", "input": {}}], "tool_use"), dep())
    assert only_tool["choices"][0]["message"]["content"] is None


def test_response_not_a_message_is_unreadable() -> None:
    with pytest.raises(ValueError):
        AnthropicAdapter().chat_response(b'{"type": "error"}', dep())


@pytest.mark.parametrize("status,etype,cls,out_status", [
    (400, "invalid_request_error", UpstreamBadRequest, 400), (401, "authentication_error", UpstreamAuthError, 401),
    (429, "rate_limit_error", UpstreamRateLimited, 429), (500, "api_error", UpstreamUnavailable, 502),
    (529, "overloaded_error", UpstreamUnavailable, 503), (413, "request_too_large", UpstreamBadRequest, 413),
    (402, "billing_error", UpstreamError, 402),
])
def test_error_mapping(status: int, etype: str, cls: type[UpstreamError], out_status: int) -> None:
    body = orjson.dumps({"type": "error", "error": {"type": etype, "message": "boom"}})
    err = AnthropicAdapter().error(status, body, {"retry-after": "3"}, dep())
    assert isinstance(err, cls) and err.http_status == out_status
    assert err.message == "anthropic: boom" and err.provider == "anthropic"
    if status == 429:
        assert err.retry_after == 3
    html = AnthropicAdapter().error(502, b"<html>bad gateway</html>", {}, dep())
    assert html.message == "anthropic: an HTML page"  # never the page itself


# ------------------------------------------------------------------ stream


def sse(*events: tuple[str, dict[str, Any]]) -> bytes:
    return b"".join(b"event: %s\ndata: %s\n\n" % (n.encode(), orjson.dumps(d)) for n, d in events)


START = ("message_start", {"type": "message_start", "message": {"id": "msg_9", "model": "claude-x", "usage": {
    "input_tokens": 10, "cache_read_input_tokens": 4, "cache_creation_input_tokens": 0, "output_tokens": 1}}})
STOP = ("message_stop", {"type": "message_stop"})


def delta(i: int, d: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return ("content_block_delta", {"type": "content_block_delta", "index": i, "delta": d})


def block(i: int, b: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return ("content_block_start", {"type": "content_block_start", "index": i, "content_block": b})


def end(i: int) -> tuple[str, dict[str, Any]]:
    return ("content_block_stop", {"type": "content_block_stop", "index": i})


def msg_delta(stop: str, out_tokens: int) -> tuple[str, dict[str, Any]]:
    return ("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": out_tokens}})


TOOL_STREAM = sse(START, block(0, {"type": "text", "text": ""}), delta(0, {"type": "text_delta", "text": "Hi"}), end(0),
                  block(1, {"type": "tool_use", "id": "toolu_a", "name": "f", "input": {}}),
                  delta(1, {"type": "input_json_delta", "partial_json": ""}),
                  delta(1, {"type": "input_json_delta", "partial_json": '{"a"'}),
                  delta(1, {"type": "input_json_delta", "partial_json": ": 1}"}), end(1),
                  block(2, {"type": "tool_use", "id": "toolu_b", "name": "g", "input": {"z": 2}}), end(2),
                  ("ping", {"type": "ping"}), msg_delta("tool_use", 9), STOP)


def run(decoder: AnthropicStreamDecoder, data: bytes, step: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(0, len(data), step):
        out.extend(decoder.feed(data[i:i + step]))
    out.extend(decoder.close())
    return out


@pytest.mark.parametrize("step", [1, 5, 4096])
def test_stream_tool_calls_any_split(step: int) -> None:
    dec = AnthropicStreamDecoder("fallback", "anthropic")
    chunks = run(dec, TOOL_STREAM, step)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert {c["id"] for c in chunks} == {"msg_9"} and {c["model"] for c in chunks} == {"claude-x"}
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert {"content": "Hi"} in deltas
    tcs = [tc for d in deltas for tc in d.get("tool_calls", [])]
    assert tcs == [
        {"index": 0, "id": "toolu_a", "type": "function", "function": {"name": "f", "arguments": ""}},
        {"index": 0, "function": {"arguments": '{"a"'}},
        {"index": 0, "function": {"arguments": ": 1}"}},
        {"index": 1, "id": "toolu_b", "type": "function", "function": {"name": "g", "arguments": ""}},
        {"index": 1, "function": {"arguments": '{"z":2}'}},  # input that came whole at block start
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert dec.usage == {"prompt_tokens": 14, "completion_tokens": 9, "total_tokens": 23,
                         "prompt_tokens_details": {"cached_tokens": 4}}


def test_stream_crlf_and_comments() -> None:
    data = TOOL_STREAM.replace(b"\n", b"\r\n").replace(b"event: ping", b": keep-alive\r\nevent: ping")
    plain = [c["choices"] for c in run(AnthropicStreamDecoder("m", "anthropic"), TOOL_STREAM, 7)]
    ragged = [c["choices"] for c in run(AnthropicStreamDecoder("m", "anthropic"), data, 3)]
    assert plain == ragged


def test_stream_answer_tool_becomes_content() -> None:
    data = sse(START, block(0, {"type": "tool_use", "id": "t", "name": JSON_TOOL, "input": {}}),
               delta(0, {"type": "input_json_delta", "partial_json": '{"x":'}),
               delta(0, {"type": "input_json_delta", "partial_json": " 1}"}), end(0), msg_delta("tool_use", 2), STOP)
    chunks = run(AnthropicStreamDecoder("m", "anthropic"), data, 11)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == '{"x": 1}'
    assert not any("tool_calls" in c["choices"][0]["delta"] for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_stream_thinking_and_unknown_events() -> None:
    data = sse(START, block(0, {"type": "thinking", "thinking": ""}), delta(0, {"type": "thinking_delta", "thinking": "hm"}),
               delta(0, {"type": "signature_delta", "signature": "s"}), end(0),
               ("brand_new_event", {"type": "brand_new_event"}), msg_delta("end_turn", 3), STOP)
    chunks = run(AnthropicStreamDecoder("m", "anthropic"), data, 9)
    assert [c["choices"][0]["delta"] for c in chunks[1:]] == [{"reasoning_content": "hm"}, {}]


def test_stream_error_event_raises_mapped_error() -> None:
    dec = AnthropicStreamDecoder("m", "anthropic")
    dec.feed(sse(START))
    with pytest.raises(UpstreamUnavailable) as ei:
        dec.feed(sse(("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})))
    assert ei.value.http_status == 503 and ei.value.message == "anthropic: Overloaded"
    with pytest.raises(UpstreamRateLimited):
        AnthropicStreamDecoder("m", "anthropic").feed(
            sse(("error", {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})))


def test_stream_without_message_stop_is_truncated() -> None:
    dec = AnthropicStreamDecoder("m", "anthropic")
    dec.feed(sse(START, block(0, {"type": "text", "text": ""}), delta(0, {"type": "text_delta", "text": "par"})))
    with pytest.raises(UpstreamUnavailable):
        dec.close()
