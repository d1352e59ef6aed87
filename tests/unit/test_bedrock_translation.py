"""Pure translation edge cases of the Bedrock Converse dialect (no network)."""

from __future__ import annotations

import re
from typing import Any

import botocore.session
import msgspec
import orjson
import pytest
from botocore.serialize import create_serializer

from tests.fakes.bedrock import event, exception_frame, frame
from unigate.canonical.tools import JSON_TOOL
from unigate.config import Timeouts, parse_config
from unigate.errors import (
    InvalidRequest,
    UnsupportedFeature,
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from unigate.providers.base import Deployment, Provider, unread_fields
from unigate.providers.bedrock import BedrockAdapter, sign
from unigate.providers.bedrock.content import tool_use_id
from unigate.providers.bedrock.errors import http_error
from unigate.providers.bedrock.request import READS, build_converse
from unigate.providers.bedrock.response import parse_converse
from unigate.providers.bedrock.stream import ConverseStreamDecoder
from unigate.providers.options import BedrockOptions
from unigate.providers.presets import PRESETS
from unigate.providers.registry import build_providers

CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"
USER = {"role": "user", "content": "hi"}


def dep(model: str = CLAUDE, **options: Any) -> Deployment:
    opts = {"aws_secret_access_key": "secret", "region": "us-west-2", **options}
    p = Provider(id="bedrock", preset=PRESETS["bedrock"], base_url="https://bedrock-runtime.us-west-2.amazonaws.com",
                 api_key="AKIDTEST", headers={"Content-Type": "application/json"}, timeouts=Timeouts(), options=BedrockOptions(**opts))
    return Deployment(id="d", provider=p, model=model, adapter=BedrockAdapter(), timeouts=p.timeouts)


def conv(body: dict[str, Any], model: str = CLAUDE, mode: str = "auto") -> tuple[dict[str, Any], tuple[str, ...]]:
    return build_converse({"model": "x", **body}, "bedrock", model, mode)


# ---------------------------------------------------------------------------- URL, signing, credentials


@pytest.mark.parametrize("model_id", [CLAUDE, "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.x-v1:0"])
def test_path_is_what_botocore_serializes(model_id: str) -> None:
    op = botocore.session.get_session().get_service_model("bedrock-runtime").operation_model("Converse")
    ref = create_serializer("rest-json").serialize_to_request({"modelId": model_id, "messages": []}, op)
    url = sign.endpoint(dep(model_id), stream=False)
    assert url == "https://bedrock-runtime.us-west-2.amazonaws.com" + ref["url_path"]
    assert str(sign.wire_url(url)).endswith(ref["url_path"])  # not re-normalised on the way out


def test_signed_headers_and_bearer_fallback() -> None:
    req = BedrockAdapter().chat_request({"model": "x", "messages": [USER]}, dep(aws_session_token="tok"), stream=True)
    assert str(req.url).endswith("/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse-stream")
    assert req.headers["Host"] == "bedrock-runtime.us-west-2.amazonaws.com"
    assert re.fullmatch(r"AWS4-HMAC-SHA256 Credential=AKIDTEST/\d{8}/us-west-2/bedrock/aws4_request, "
                        r"SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature=[0-9a-f]{64}",
                        req.headers["Authorization"])
    assert req.headers["X-Amz-Security-Token"] == "tok"
    # no secret: the key is a Bedrock API key, sent as a bearer token
    d = dep()
    d.provider.options = msgspec.structs.replace(d.provider.options, aws_secret_access_key=None)
    req = BedrockAdapter().chat_request({"model": "x", "messages": [USER]}, d, stream=False)
    assert req.headers["Authorization"] == "Bearer AKIDTEST" and "X-Amz-Date" not in req.headers


def test_host_header_drops_default_ports() -> None:
    assert sign.host_header("https://h.example:443/x") == "h.example"
    assert sign.host_header("http://127.0.0.1:8080/x") == "127.0.0.1:8080"


def test_registry_resolves_region_secret_and_endpoint() -> None:
    cfg = parse_config({}, where="<t>", env={})
    p = build_providers(cfg, {"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "S", "AWS_SESSION_TOKEN": "T",
                              "AWS_DEFAULT_REGION": "eu-central-1"})["bedrock"]
    assert p.base_url == "https://bedrock-runtime.eu-central-1.amazonaws.com" and p.api_key == "AK"
    assert p.options == BedrockOptions(aws_secret_access_key="S", aws_session_token="T", region="eu-central-1")
    assert "Authorization" not in p.headers
    # an explicit base URL wins; the region still signs; AWS_REGION beats AWS_DEFAULT_REGION
    p = build_providers(cfg, {"BEDROCK_API_KEY": "AK", "BEDROCK_BASE_URL": "http://127.0.0.1:9/", "AWS_REGION": "us-west-2",
                              "AWS_DEFAULT_REGION": "eu-central-1"})["bedrock"]
    assert p.base_url == "http://127.0.0.1:9" and p.options == BedrockOptions(region="us-west-2")
    # config options win, and the env session token is not mixed with other credentials
    cfg = parse_config({"providers": {"bedrock": {"api_key": "AK2", "options": {"aws_secret_access_key": "S2",
                                                                                 "region": "ap-south-1"}}}},
                       where="<t>", env={})
    p = build_providers(cfg, {"AWS_SECRET_ACCESS_KEY": "S", "AWS_SESSION_TOKEN": "T"})["bedrock"]
    assert p.options == BedrockOptions(aws_secret_access_key="S2", region="ap-south-1")
    assert p.base_url == "https://bedrock-runtime.ap-south-1.amazonaws.com"


# ---------------------------------------------------------------------------- messages


def test_roles_system_hoisting_and_merging() -> None:
    out, _ = conv({"messages": [
        {"role": "system", "content": "A"}, {"role": "developer", "content": [{"type": "text", "text": "B"}]},
        {"role": "user", "content": "one"}, {"role": "user", "content": [{"type": "text", "text": "two"}]},
        {"role": "assistant", "content": ""},  # empty: dropped, so the user turns around it merge
        {"role": "user", "content": "three"}, {"role": "system", "content": "C"},
    ]})
    assert out["system"] == [{"text": "A"}, {"text": "B"}, {"text": "C"}]
    assert out["messages"] == [{"role": "user", "content": [{"text": "one"}, {"text": "two"}, {"text": "three"}]}]


def test_tool_history_results_first_and_ids() -> None:
    msgs = [USER,
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "[1, 2]"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "r"},
            {"role": "user", "content": "and now?"}]
    out, _ = conv({"messages": msgs, "tools": [{"type": "function", "function": {"name": "f"}}]})
    assert out["messages"][1]["content"] == [{"toolUse": {"toolUseId": "call_1", "name": "f", "input": {"value": [1, 2]}}}]
    assert out["messages"][2]["content"] == [{"toolResult": {"toolUseId": "call_1", "content": [{"text": "r"}]}},
                                             {"text": "and now?"}]
    assert out["toolConfig"] == {"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object", "properties": {}}}}}]}


def test_tool_id_rewrite_is_stable_valid_and_distinct() -> None:
    ok = re.compile(r"[a-zA-Z0-9_.:-]{1,64}")
    for raw in ["call/1", "call/2", "x" * 100, "", "toolu_01!", "日本"]:
        new = tool_use_id(raw)
        assert ok.fullmatch(new) and new == tool_use_id(raw)
    assert tool_use_id("call/1") != tool_use_id("call/2") and tool_use_id("x" * 100) != tool_use_id("x" * 99 + "y")
    assert tool_use_id("tooluse_kZJMlvQmRJ6eAyJE5GIl7Q") == "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q"


def test_invalid_tool_arguments_name_the_message() -> None:
    msgs = [USER, {"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                                                       "function": {"name": "f", "arguments": "{oops"}}]}]
    with pytest.raises(InvalidRequest) as ei:
        conv({"messages": msgs})
    assert ei.value.param == "messages[1].tool_calls[0].function.arguments"


def test_tool_history_without_tools_declares_them() -> None:
    msgs = [USER, {"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                                                       "function": {"name": "lookup", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c", "content": "done"}]
    out, _ = conv({"messages": msgs})
    assert [t["toolSpec"]["name"] for t in out["toolConfig"]["tools"]] == ["lookup"]
    out, _ = conv({"messages": msgs, "tool_choice": "none", "tools": [{"type": "function", "function": {"name": "lookup"}}]})
    assert "toolChoice" not in out["toolConfig"] and len(out["toolConfig"]["tools"]) == 1


@pytest.mark.parametrize(("choice", "expected"), [
    ("auto", None), ("required", {"any": {}}), ({"type": "function", "function": {"name": "b"}}, {"tool": {"name": "b"}}),
])
def test_tool_choice(choice: Any, expected: Any) -> None:
    tools = [{"type": "function", "function": {"name": n}} for n in ("a", "b")]
    out, _ = conv({"messages": [USER], "tools": tools, "tool_choice": choice})
    assert out["toolConfig"].get("toolChoice") == expected
    out, _ = conv({"messages": [USER], "tools": tools, "tool_choice": "none"})
    assert "toolConfig" not in out
    allowed = {"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [{"type": "function", "function": {"name": "b"}}]}}
    out, _ = conv({"messages": [USER], "tools": tools, "tool_choice": allowed})
    assert [t["toolSpec"]["name"] for t in out["toolConfig"]["tools"]] == ["b"] and out["toolConfig"]["toolChoice"] == {"any": {}}
    with pytest.raises(UnsupportedFeature):
        conv({"messages": [USER], "tools": [{"type": "custom", "custom": {"name": "x"}}]})


def test_images_and_documents() -> None:
    parts = [{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAA\nBBB"}},
             {"type": "image_url", "image_url": {"url": "data:image/webp;base64,CCC"}},
             {"type": "image_url", "image_url": {"url": "s3://bucket/cat.GIF"}},
             {"type": "file", "file": {"filename": "Q3 report_final.pdf", "file_data": "data:application/pdf;base64,DDD"}}]
    out, _ = conv({"messages": [{"role": "user", "content": parts}]})
    assert out["messages"][0]["content"] == [
        {"image": {"format": "jpeg", "source": {"bytes": "AAABBB"}}},
        {"image": {"format": "webp", "source": {"bytes": "CCC"}}},
        {"image": {"format": "gif", "source": {"s3Location": {"uri": "s3://bucket/cat.GIF"}}}},
        {"document": {"format": "pdf", "name": "Q3 report final", "source": {"bytes": "DDD"}}}]
    for bad in [{"type": "image_url", "image_url": {"url": "data:image/bmp;base64,AAA"}},
                {"type": "image_url", "image_url": {"url": "http://x/y.png"}},
                {"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}},
                {"type": "file", "file": {"file_id": "file-123"}}]:
        with pytest.raises(UnsupportedFeature) as ei:
            conv({"messages": [{"role": "user", "content": [bad]}]})
        assert ei.value.param == "messages[0].content[0]" and ei.value.message.startswith("bedrock: ")


def test_inference_config_n_and_dropped() -> None:
    body = {"messages": [USER], "max_tokens": 10, "max_completion_tokens": 20, "stop": ["a", "b"],
            "presence_penalty": 0.5, "logprobs": False, "user": "u", "parallel_tool_calls": False}
    out, dropped = conv(body)
    assert out["inferenceConfig"] == {"maxTokens": 20, "stopSequences": ["a", "b"]}
    # read but not expressible; not read at all (logprobs: false is the default, nothing lost)
    assert dropped == ("parallel_tool_calls",) and unread_fields(body, READS) == ["presence_penalty", "user"]
    with pytest.raises(UnsupportedFeature) as ei:
        conv({"messages": [USER], "n": 3})
    assert ei.value.param == "n"


def test_structured_output_routes() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    rf = {"type": "json_schema", "json_schema": {"name": "thing", "schema": schema}}
    tools = [{"type": "function", "function": {"name": "f"}}]
    out, _ = conv({"messages": [USER], "response_format": rf})
    assert out["toolConfig"]["toolChoice"] == {"tool": {"name": JSON_TOOL}} and "outputConfig" not in out
    # with the client's own tools, or a non-object schema, "auto" uses outputConfig
    out, _ = conv({"messages": [USER], "response_format": rf, "tools": tools})
    assert orjson.loads(out["outputConfig"]["textFormat"]["structure"]["jsonSchema"]["schema"]) == schema
    assert out["toolConfig"]["tools"] == [{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object", "properties": {}}}}}]
    arr = {"type": "json_schema", "json_schema": {"name": "list", "schema": {"type": "array"}}}
    assert "outputConfig" in conv({"messages": [USER], "response_format": arr})[0]
    with pytest.raises(UnsupportedFeature):
        conv({"messages": [USER], "response_format": rf, "tools": tools}, mode="tool")
    out, _ = conv({"messages": [USER], "response_format": rf}, mode="output_config")
    assert "toolConfig" not in out and out["outputConfig"]["textFormat"]["type"] == "json_schema"
    out, _ = conv({"messages": [USER], "response_format": {"type": "json_object"}})
    assert out["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"] == {"json": {"type": "object"}}


def test_reasoning_effort() -> None:
    out, dropped = conv({"messages": [USER], "reasoning_effort": "low", "temperature": 0.5})
    assert out["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 2048}}
    assert out["inferenceConfig"] == {"maxTokens": 2048 + 4096} and dropped == ("temperature",)
    out, _ = conv({"messages": [USER], "reasoning_effort": "high", "max_tokens": 5000})
    assert out["additionalModelRequestFields"]["thinking"]["budget_tokens"] == 4999
    out, dropped = conv({"messages": [USER], "reasoning_effort": "high"}, model="amazon.nova-pro-v1:0")
    assert "additionalModelRequestFields" not in out and dropped == ("reasoning_effort",)


# ---------------------------------------------------------------------------- responses


def _resp(content: list[Any], stop: str, usage: dict[str, int] | None = None) -> bytes:
    return orjson.dumps({"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop,
                         "usage": usage or {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}, "metrics": {"latencyMs": 1}})


def test_response_tool_calls_json_tool_and_unknown_stop() -> None:
    r = parse_converse(_resp([{"toolUse": {"toolUseId": "t1", "name": "f", "input": {"x": 1}}}], "tool_use"), CLAUDE)
    m = r["choices"][0]["message"]
    assert m["content"] is None and m["tool_calls"] == [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}}]
    assert r["choices"][0]["finish_reason"] == "tool_calls" and r["usage"]["total_tokens"] == 7 and r["model"] == CLAUDE
    r = parse_converse(_resp([{"text": "Sure:"}, {"toolUse": {"toolUseId": "t", "name": JSON_TOOL, "input": {"a": "b"}}}], "tool_use"), CLAUDE)
    assert r["choices"][0]["message"]["content"] == '{"a":"b"}' and r["choices"][0]["finish_reason"] == "stop"
    r = parse_converse(_resp([{"text": "x"}], "malformed_model_output"), CLAUDE)
    assert r["choices"][0]["finish_reason"] == "stop"


# ---------------------------------------------------------------------------- stream decoder


def _stream_bytes() -> bytes:
    return b"".join([
        event("messageStart", {"role": "assistant"}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "hmm"}}}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "s"}}}),
        event("contentBlockStop", {"contentBlockIndex": 0}),
        event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": "Hi"}}),
        event("contentBlockStart", {"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "t1", "name": "f"}}}),
        event("contentBlockDelta", {"contentBlockIndex": 2, "delta": {"toolUse": {"input": '{"a"'}}}),
        event("contentBlockDelta", {"contentBlockIndex": 2, "delta": {"toolUse": {"input": ":1}"}}}),
        event("contentBlockStart", {"contentBlockIndex": 3, "start": {"toolUse": {"toolUseId": "t2", "name": "g"}}}),
        event("someFutureEvent", {"x": 1}),
        event("messageStop", {"stopReason": "tool_use"}),
        event("metadata", {"usage": {"inputTokens": 5, "outputTokens": 6, "totalTokens": 11, "cacheReadInputTokens": 2}}),
    ])


def test_stream_decoder_byte_by_byte() -> None:
    d = ConverseStreamDecoder(CLAUDE, "bedrock")
    data = _stream_bytes()
    chunks = [c for i in range(len(data)) for c in d.feed(data[i : i + 1])] + d.close()
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert deltas[1:] == [
        {"reasoning_content": "hmm"}, {"content": "Hi"},
        {"tool_calls": [{"index": 0, "id": "t1", "type": "function", "function": {"name": "f", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]},
        {"tool_calls": [{"index": 1, "id": "t2", "type": "function", "function": {"name": "g", "arguments": ""}}]},
        {}]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["model"] == CLAUDE
    assert d.usage == {"prompt_tokens": 7, "completion_tokens": 6, "total_tokens": 13,
                       "prompt_tokens_details": {"cached_tokens": 2}}


def test_stream_exception_after_chunks_is_raised_next() -> None:
    d = ConverseStreamDecoder(CLAUDE, "bedrock")
    out = d.feed(event("messageStart", {}) + event("contentBlockDelta", {"delta": {"text": "a"}})
                 + exception_frame("modelStreamErrorException", "boom"))
    assert [c["choices"][0]["delta"] for c in out] == [{"role": "assistant", "content": ""}, {"content": "a"}]
    with pytest.raises(UpstreamUnavailable) as ei:
        d.close()
    assert ei.value.http_status == 502 and "ModelStreamErrorException: boom" in ei.value.message
    d = ConverseStreamDecoder(CLAUDE, "bedrock")
    with pytest.raises(UpstreamRateLimited):
        d.feed(exception_frame("throttlingException", "slow down"))
    d = ConverseStreamDecoder(CLAUDE, "bedrock")
    err = frame({":message-type": "error", ":error-code": "InternalFailure", ":error-message": "oops"}, b"")
    with pytest.raises(UpstreamUnavailable, match="InternalFailure: oops"):
        d.feed(err)


def test_stream_corruption_and_truncation() -> None:
    good = event("messageStart", {"role": "assistant"})
    bad = bytearray(good)
    bad[-6] ^= 0xFF  # payload byte: the message CRC no longer matches
    with pytest.raises(UpstreamUnavailable, match="corrupt event stream"):
        ConverseStreamDecoder(CLAUDE, "bedrock").feed(bytes(bad))
    d = ConverseStreamDecoder(CLAUDE, "bedrock")
    d.feed(good + good[:7])
    with pytest.raises(UpstreamUnavailable, match="inside a frame"):
        d.close()
    d = ConverseStreamDecoder(CLAUDE, "bedrock")
    d.feed(good)
    with pytest.raises(UpstreamUnavailable, match="before messageStop"):
        d.close()


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("status", "body", "headers", "cls", "out_status"), [
    (400, {"message": "bad"}, {"x-amzn-ErrorType": "ValidationException:http://internal.amazon.com/coral/x/"},
     UpstreamBadRequest, 400),
    (400, {"__type": "com.amazon.bedrock#ServiceQuotaExceededException", "message": "q"}, {}, UpstreamRateLimited, 429),
    (403, {"Message": "The request signature we calculated does not match"}, {}, UpstreamAuthError, 401),
    (408, {"message": "slow"}, {"X-Amzn-ErrorType": "ModelTimeoutException"}, UpstreamTimeout, 504),
    (424, {"message": "model broke"}, {"x-amzn-ErrorType": "ModelErrorException"}, UpstreamUnavailable, 502),
    (500, {"message": "x"}, {}, UpstreamUnavailable, 502),
])
def test_http_errors(status: int, body: dict[str, str], headers: dict[str, str], cls: type[UpstreamError], out_status: int) -> None:
    e = http_error("bedrock", status, orjson.dumps(body), headers)
    assert type(e) is cls and e.http_status == out_status and e.message.startswith("bedrock: ")


def test_retry_after_is_kept() -> None:
    e = http_error("bedrock", 429, b'{"message": "Too many requests"}',
                   {"x-amzn-ErrorType": "ThrottlingException", "Retry-After": "3"})
    assert isinstance(e, UpstreamRateLimited) and e.retry_after == 3.0
    assert e.message == "bedrock: ThrottlingException: Too many requests"
