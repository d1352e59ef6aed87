"""Cohere v2 translation edge cases, without HTTP."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.fakes.cohere import body_problems, stream_bytes
from unigate.config import Timeouts
from unigate.errors import (
    InvalidRequest,
    UnsupportedFeature,
    UpstreamAuthError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from unigate.providers.base import Deployment, Provider
from unigate.providers.cohere import CohereAdapter, cohere_usage, to_cohere_messages
from unigate.providers.presets import PRESETS

A = CohereAdapter()


def dep(base: str = "https://api.cohere.com", model: str = "command-r") -> Deployment:
    prov = Provider(id="cohere", preset=PRESETS["cohere"], base_url=base, api_key="k",
                    headers={"Authorization": "Bearer k"}, timeouts=Timeouts())
    return Deployment(id="d", provider=prov, model=model, adapter=A, timeouts=Timeouts())


def build(body: dict[str, Any], **kw: Any) -> dict[str, Any]:
    req = A.chat_request({"model": "cohere/command-r", **body}, dep(**kw), stream=False)
    out: dict[str, Any] = orjson.loads(req.body or b"")
    assert body_problems(out) == []
    return out


def test_url_and_base_with_v2_suffix() -> None:
    assert A.chat_request({"messages": [{"role": "user", "content": "x"}]}, dep(), stream=False).url == "https://api.cohere.com/v2/chat"
    assert A.chat_request({"messages": [{"role": "user", "content": "x"}]}, dep("http://h:1/v2/"), stream=True).url == "http://h:1/v2/chat"


def test_roles() -> None:
    msgs = to_cohere_messages([
        {"role": "developer", "content": "dev rules"},
        {"role": "system", "content": [{"type": "text", "text": "sys"}]},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "text", "text": "hel"}, {"type": "text", "text": "lo"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]},
        {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "42"}]},
    ], "cohere")
    assert msgs == [
        {"role": "system", "content": "dev rules"},
        {"role": "system", "content": [{"type": "text", "text": "sys"}]},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "42"}]},
    ]


def test_legacy_function_call_turns_become_tool_turns() -> None:
    msgs = to_cohere_messages([
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}},
        {"role": "function", "name": "f", "content": "ok"},
    ], "cohere")
    call_id = msgs[1]["tool_calls"][0]["id"]
    assert msgs[2] == {"role": "tool", "tool_call_id": call_id, "content": "ok"}


def test_image_in_system_message_is_unsupported() -> None:
    with pytest.raises(UnsupportedFeature) as ei:
        build({"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]})
    assert ei.value.param == "messages[0].content[0]" and ei.value.message.startswith("cohere:")


def test_tool_choice_variants() -> None:
    f = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}, "strict": True}}
    g = {"type": "function", "function": {"name": "g"}}
    m = [{"role": "user", "content": "x"}]
    out = build({"messages": m, "tools": [f, g]})
    assert "tool_choice" not in out and out["strict_tools"] is True
    assert out["tools"][1] == {"type": "function", "function": {"name": "g", "parameters": {"type": "object", "properties": {}}}}
    allowed = {"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [{"type": "function", "function": {"name": "g"}}]}}
    out = build({"messages": m, "tools": [f, g], "tool_choice": allowed})
    assert out["tool_choice"] == "REQUIRED" and [t["function"]["name"] for t in out["tools"]] == ["g"]
    out = build({"messages": m, "tool_choice": "required"})  # no tools: nothing to choose from
    assert "tool_choice" not in out and "tools" not in out
    out = build({"messages": m, "functions": [{"name": "f"}], "function_call": {"name": "f"}})
    assert out["tool_choice"] == "REQUIRED" and out["tools"][0]["function"]["name"] == "f"
    with pytest.raises(InvalidRequest):
        build({"messages": m, "tools": [f], "tool_choice": {"type": "function", "function": {"name": "nope"}}})
    with pytest.raises(UnsupportedFeature):
        build({"messages": m, "tools": [{"type": "custom", "custom": {"name": "x"}}]})


def test_sampling_and_format_mapping() -> None:
    out = build({"messages": [{"role": "user", "content": "x"}], "max_tokens": 9, "stop": ["a", "b"], "top_k": 5,
                 "response_format": {"type": "text"}, "reasoning_effort": "none", "n": 1})
    assert out["max_tokens"] == 9 and out["stop_sequences"] == ["a", "b"] and out["k"] == 5
    assert "response_format" not in out and out["thinking"] == {"type": "disabled"}


def test_usage_prefers_tokens_then_billed_units() -> None:
    assert cohere_usage({"tokens": {"input_tokens": 5, "output_tokens": 2}, "billed_units": {"input_tokens": 1, "output_tokens": 1}}) == \
        {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    assert cohere_usage({"billed_units": {"input_tokens": 3.0, "output_tokens": 4.0}}) == \
        {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert cohere_usage({}) is None and cohere_usage(None) is None


def test_response_unknown_finish_is_stop_and_timeout_raises() -> None:
    body = {"id": "x", "finish_reason": "SOMETHING_NEW", "message": {"role": "assistant", "content": [{"type": "text", "text": "hi"}]}}
    r = A.chat_response(orjson.dumps(body), dep())
    assert r["choices"][0]["finish_reason"] == "stop" and r["choices"][0]["message"]["content"] == "hi" and "usage" not in r
    with pytest.raises(UpstreamTimeout):
        A.chat_response(orjson.dumps({**body, "finish_reason": "TIMEOUT"}), dep())


@pytest.mark.parametrize("size", [1, 2, 7, 10_000])
def test_stream_decoder_any_split(size: int) -> None:
    data = stream_bytes("tools2", {"messages": []}).replace(b"\n", b"\r\n")  # CRLF as well
    d = A.chat_stream({}, dep())
    chunks: list[dict[str, Any]] = []
    for i in range(0, len(data), size):
        chunks += d.feed(data[i : i + size])
    chunks += d.close()
    args: dict[int, str] = {}
    for c in chunks:
        for tc in c["choices"][0]["delta"].get("tool_calls") or ():
            args[tc["index"]] = args.get(tc["index"], "") + tc["function"]["arguments"]
    assert args == {0: '{"city": "Paris"}', 1: '{"city": "Paris"}'}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert {c["id"] for c in chunks} == {"c0ffee00-1111-2222-3333-444455556666"}
    assert d.usage == {"prompt_tokens": 61, "completion_tokens": 4, "total_tokens": 65,
                       "prompt_tokens_details": {"cached_tokens": 8}}


def test_stream_tool_indexes_are_renumbered_from_zero() -> None:
    ev = lambda kind, **p: b"data: " + orjson.dumps({"type": kind, **p}) + b"\n\n"  # noqa: E731
    data = (ev("message-start", id="m") + ev("tool-plan-delta", delta={"message": {"tool_plan": "plan"}})
            + ev("tool-call-start", index=3, delta={"message": {"tool_calls": {"id": "t", "type": "function",
                                                                               "function": {"name": "f", "arguments": ""}}}})
            + ev("tool-call-delta", index=3, delta={"message": {"tool_calls": {"function": {"arguments": "{}"}}}})
            + ev("message-end", delta={"finish_reason": "TOOL_CALL"}) + b"data: [DONE]\n\n")
    d = A.chat_stream({}, dep())
    chunks = d.feed(data) + d.close()
    calls = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls") or ()]
    assert [tc["index"] for tc in calls] == [0, 0] and calls[1]["function"]["arguments"] == "{}"
    assert d.usage is None


def test_stream_errors() -> None:
    d = A.chat_stream({}, dep())
    with pytest.raises(UpstreamUnavailable, match="overloaded"):
        d.feed(b'data: {"type":"message-end","delta":{"finish_reason":"ERROR","error":"overloaded"}}\n\n')
    d = A.chat_stream({}, dep())
    d.feed(b'data: {"type":"message-start","id":"m"}\n\n')
    with pytest.raises(UpstreamUnavailable, match="before message-end"):
        d.close()
    d = A.chat_stream({}, dep())
    with pytest.raises(UpstreamUnavailable, match="unreadable"):
        d.feed(b"data: {not json\n\n")


def test_error_mapping() -> None:
    body = b'{"id":"e","message":"invalid api token"}'
    e = A.error(498, body, {}, dep())
    assert isinstance(e, UpstreamAuthError) and e.http_status == 401 and e.message == "cohere: invalid api token"
    e = A.error(429, b'{"message":"slow down"}', {"retry-after": "3"}, dep())
    assert isinstance(e, UpstreamRateLimited) and e.retry_after == 3.0
    assert A.error(422, b"{}", {}, dep()).http_status == 400
    assert A.error(499, b"", {}, dep()).fallbackable
