"""Pure translation edge cases of the Gemini dialect (no HTTP)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from unigate.config import Timeouts
from unigate.errors import (
    InvalidRequest,
    UnsupportedFeature,
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from unigate.providers.base import Deployment, Provider, unread_fields
from unigate.providers.gemini import GeminiAdapter
from unigate.providers.gemini.embeddings import build_body as embed_body
from unigate.providers.gemini.errors import error_from_object, error_from_response
from unigate.providers.gemini.request import READS, SKIP_SIGNATURE, build_body
from unigate.providers.gemini.response import finish_reason, to_completion, usage_from
from unigate.providers.gemini.schema import json_schema, openapi_schema
from unigate.providers.gemini.stream import GeminiStreamDecoder
from unigate.providers.options import GeminiOptions
from unigate.providers.presets import PRESETS

JSON = dict[str, Any]
USER = [{"role": "user", "content": "hi"}]


def dep(model: str = "gemini-2.5-flash", **options: Any) -> Deployment:
    prov = Provider(id="gemini", preset=PRESETS["gemini"], base_url="https://g.example", api_key="k",
                    headers={"x-goog-api-key": "k"}, timeouts=Timeouts(), options=GeminiOptions(**options))
    return Deployment(id="d", provider=prov, model=model, adapter=GeminiAdapter(), timeouts=Timeouts())


def body_of(b: JSON, model: str = "gemini-2.5-flash", **kw: Any) -> JSON:
    return build_body({"model": "x", **b}, model, **kw)[0]


# ------------------------------------------------------------------ schema


def test_openapi_schema_strips_and_folds() -> None:
    s = {
        "$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "additionalProperties": False,
        "properties": {
            "a": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}], "description": "A"},
            "b": {"oneOf": [{"type": "string"}, {"type": "number"}]},
            "c": {"const": "x"},
            "d": {"type": "array", "items": [{"type": "string"}], "uniqueItems": True},
            "e": {"type": "string", "format": "uri", "properties": {"z": {}}, "required": ["z"]},
            "f": {"type": ["integer", "string"]},
            "g": {"type": "array"},
            "h": {"allOf": [{"properties": {"p": {"type": "string"}}, "required": ["p"]}, {"description": "H"}]},
            "i": {"type": "integer", "enum": [1, 2]},
        },
        "required": ["a", "missing"],
    }
    assert openapi_schema(s) == {"type": "object", "properties": {
        "a": {"type": "integer", "minimum": 1, "nullable": True, "description": "A"},
        "b": {"anyOf": [{"type": "string"}, {"type": "number"}]},
        "c": {"enum": ["x"], "type": "string"},
        "d": {"type": "array", "items": {"type": "string"}},
        "e": {"type": "string"},
        "f": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        "g": {"type": "array", "items": {"type": "string"}},
        "h": {"type": "object", "description": "H", "properties": {"p": {"type": "string"}}, "required": ["p"]},
        "i": {"type": "integer"},
    }, "required": ["a"]}


def test_openapi_schema_inlines_refs_and_stops_recursion() -> None:
    s = {"type": "object", "properties": {"node": {"$ref": "#/$defs/Node", "description": "root"},
                                          "bad": {"$ref": "https://x/y"}},
         "$defs": {"Node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}}}}}
    out = openapi_schema(s)
    assert out["properties"]["node"]["description"] == "root"
    assert out["properties"]["node"]["properties"]["child"]["type"] == "object"
    assert out["properties"]["bad"] == {"type": "object"}
    depth, node = 0, out["properties"]["node"]
    while "properties" in node:
        node, depth = node["properties"]["child"], depth + 1
    assert 3 < depth < 12  # cut off, not infinite
    assert openapi_schema({"type": "object", "properties": {"b": {"type": "string"}}}, ordered=True)["propertyOrdering"] == ["b"]


def test_json_schema_keeps_json_schema_but_drops_what_gemini_refuses() -> None:
    s = {"$schema": "x", "type": "object", "additionalProperties": False,
         "properties": {"$schema": {"type": "string"}, "r": {"$ref": "#/$defs/R", "type": "object", "description": "d"}},
         "$defs": {"R": {"type": "string"}}}
    assert json_schema(s) == {"type": "object", "additionalProperties": False,
                              "properties": {"$schema": {"type": "string"}, "r": {"$ref": "#/$defs/R", "description": "d"}},
                              "$defs": {"R": {"type": "string"}}}


# ------------------------------------------------------------------ messages


def test_roles_system_and_lone_system_prompt() -> None:
    b = body_of({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
                              {"role": "assistant", "content": [{"type": "text", "text": "A"}]},
                              {"role": "assistant", "content": ""}, {"role": "user", "content": ""}]})
    assert b["systemInstruction"] == {"parts": [{"text": "S"}]}
    assert b["contents"] == [{"role": "user", "parts": [{"text": "U"}]}, {"role": "model", "parts": [{"text": "A"}]}]
    assert body_of({"messages": [{"role": "system", "content": "only"}]}) == {
        "contents": [{"role": "user", "parts": [{"text": "only"}]}]}
    with pytest.raises(UnsupportedFeature):
        body_of({"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}, *USER]})


def test_tool_results_resolve_names_and_merge() -> None:
    calls = [{"id": "a", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}},
             {"id": "b", "type": "function", "function": {"name": "g", "arguments": ""}}]
    b = body_of({"messages": [*USER, {"role": "assistant", "content": None, "tool_calls": calls},
                              {"role": "tool", "tool_call_id": "b", "content": [{"type": "text", "text": "[1, 2]"}]},
                              {"role": "tool", "tool_call_id": "a", "content": "not json"},
                              {"role": "user", "content": "and?"}]})
    assert b["contents"][1] == {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"x": 1}}},
                                                           {"functionCall": {"name": "g", "args": {}}}]}
    assert b["contents"][2] == {"role": "user", "parts": [
        {"functionResponse": {"name": "g", "response": {"result": [1, 2]}}},
        {"functionResponse": {"name": "f", "response": {"result": "not json"}}},
        {"text": "and?"}]}
    # legacy function role names itself
    b = body_of({"messages": [*USER, {"role": "assistant", "function_call": {"name": "h", "arguments": "{}"}},
                              {"role": "function", "name": "h", "content": '{"ok": true}'}]})
    assert b["contents"][2]["parts"] == [{"functionResponse": {"name": "h", "response": {"ok": True}}}]


def test_tool_message_errors() -> None:
    with pytest.raises(InvalidRequest, match="does not match"):
        body_of({"messages": [*USER, {"role": "tool", "tool_call_id": "zz", "content": "x"}]})
    bad = [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{broken"}}]
    with pytest.raises(InvalidRequest) as ei:
        body_of({"messages": [*USER, {"role": "assistant", "tool_calls": bad}]})
    assert ei.value.param == "messages[1].tool_calls[0].function.arguments"


def test_thought_signatures() -> None:
    calls = [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"},
              "extra_content": {"google": {"thought_signature": "SIG"}}},
             {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}}]
    msgs = [*USER, {"role": "assistant", "tool_calls": calls}]
    parts = body_of({"messages": msgs})["contents"][1]["parts"]
    assert parts[0]["thoughtSignature"] == "SIG" and "thoughtSignature" not in parts[1]
    unsigned = [*USER, {"role": "assistant", "tool_calls": calls[1:]}]
    assert "thoughtSignature" not in body_of({"messages": unsigned})["contents"][1]["parts"][0]
    gemini3 = body_of({"messages": unsigned}, model="gemini-3-pro-preview")
    assert gemini3["contents"][1]["parts"][0]["thoughtSignature"] == SKIP_SIGNATURE


def test_media_parts() -> None:
    def part(url: str) -> JSON:
        b = body_of({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]})
        return b["contents"][0]["parts"][0]  # type: ignore[no-any-return]

    assert part("data:image/webp;base64,AAAA") == {"inlineData": {"mimeType": "image/webp", "data": "AAAA"}}
    assert part("https://x.test/a.b/pic.gif#f") == {"fileData": {"mimeType": "image/gif", "fileUri": "https://x.test/a.b/pic.gif#f"}}
    assert part("https://x.test/a.b/pic")["fileData"]["mimeType"] == "image/jpeg"
    for bad in ("ftp://x/y.png", "data:image/png,plain", "data:image/png;base64,@@@@"):
        with pytest.raises(InvalidRequest):
            part(bad)
    b = body_of({"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}}]}]})
    assert b["contents"][0]["parts"] == [{"inlineData": {"mimeType": "audio/wav", "data": "UklG"}},
                                         {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}}]
    with pytest.raises(UnsupportedFeature):
        body_of({"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "f-1"}}]}]})


# ------------------------------------------------------------------ tools and config


def test_tools_and_tool_choice_variants() -> None:
    tools = [{"type": "function", "function": {"name": n, "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}
             for n in ("a", "b")]
    b = body_of({"messages": USER, "tools": tools, "tool_choice": {"type": "allowed_tools", "allowed_tools": {
        "mode": "required", "tools": [{"type": "function", "function": {"name": "b"}}]}}})
    assert [d["name"] for d in b["tools"][0]["functionDeclarations"]] == ["b"]
    assert b["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert "toolConfig" not in body_of({"messages": USER, "tool_choice": "none"})
    json_mode = body_of({"messages": USER, "tools": tools[:1]}, schema_mode="json")
    assert json_mode["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"]["properties"] == {"q": {"type": "string"}}
    with pytest.raises(UnsupportedFeature):
        body_of({"messages": USER, "tools": [{"type": "custom", "custom": {"name": "x"}}]})
    assert body_of({"messages": USER, "web_search_options": {}})["tools"] == [{"googleSearch": {}}]


def test_generation_config_and_dropped() -> None:
    body = {"model": "x", "messages": USER, "logprobs": True, "top_logprobs": 3, "n": 1,
            "stop": "END", "parallel_tool_calls": False, "store": True,
            "google": {"safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
                       "cached_content": "cachedContents/1", "thinking_config": {"include_thoughts": True}}}
    out, dropped = build_body(body, "gemini-2.5-flash")
    assert out["generationConfig"] == {"stopSequences": ["END"], "responseLogprobs": True, "logprobs": 3,
                                       "thinkingConfig": {"includeThoughts": True}}
    assert out["safetySettings"] == [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    assert out["cachedContent"] == "cachedContents/1"
    assert dropped == ("parallel_tool_calls",) and unread_fields(body, READS) == ["store"]
    with pytest.raises(UnsupportedFeature):
        body_of({"messages": USER, "modalities": ["text", "audio"]})


@pytest.mark.parametrize("model,effort,cfg", [
    ("gemini-2.5-flash", "none", {"thinkingBudget": 0, "includeThoughts": False}),
    ("gemini-2.5-pro", "high", {"thinkingBudget": 24576, "includeThoughts": True}),
    ("gemini-3-pro-preview", "low", {"thinkingLevel": "LOW", "includeThoughts": True}),
    ("gemini-3.1-flash", "minimal", {"thinkingLevel": "MINIMAL", "includeThoughts": True}),
])
def test_reasoning_effort(model: str, effort: str, cfg: JSON) -> None:
    assert body_of({"messages": USER, "reasoning_effort": effort}, model=model)["generationConfig"]["thinkingConfig"] == cfg


def test_urls() -> None:
    a = GeminiAdapter()
    assert str(a.chat_request({"messages": USER}, dep(), stream=True).url) == \
        "https://g.example/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert str(a.chat_request({"messages": USER}, dep("tunedModels/t1", api_version="v1"), stream=False).url) == \
        "https://g.example/v1/tunedModels/t1:generateContent"
    # each segment of the name stays one encoded segment: a ':' cannot start another method
    assert str(a.chat_request({"messages": USER}, dep("gemini-2.0-flash:countTokens"), stream=False).url) == \
        "https://g.example/v1beta/models/gemini-2.0-flash%3AcountTokens:generateContent"


# ------------------------------------------------------------------ responses


@pytest.mark.parametrize("native,tools,expected", [
    ("STOP", False, "stop"), ("STOP", True, "tool_calls"), ("MAX_TOKENS", True, "length"),
    ("SAFETY", False, "content_filter"), ("RECITATION", False, "content_filter"), ("SPII", False, "content_filter"),
    ("BLOCKLIST", False, "content_filter"), ("PROHIBITED_CONTENT", False, "content_filter"),
    ("MALFORMED_FUNCTION_CALL", False, "stop"), ("OTHER", False, "stop"), (None, False, "stop"),
])
def test_finish_reasons(native: Any, tools: bool, expected: str) -> None:
    assert finish_reason(native, tools) == expected


def test_usage_mapping() -> None:
    u = usage_from({"promptTokenCount": 100, "toolUsePromptTokenCount": 20, "candidatesTokenCount": 7,
                    "thoughtsTokenCount": 30, "cachedContentTokenCount": 64, "totalTokenCount": 157})
    assert u == {"prompt_tokens": 120, "completion_tokens": 37, "total_tokens": 157,
                 "prompt_tokens_details": {"cached_tokens": 64}, "completion_tokens_details": {"reasoning_tokens": 30}}
    assert usage_from(None) is None


def test_completion_with_native_call_id_logprobs_and_block() -> None:
    obj = {"candidates": [{"content": {"parts": [{"text": "a"}, {"functionCall": {"id": "fc-1", "name": "f", "args": {"k": "v"}}}]},
                           "finishReason": "STOP", "logprobsResult": {
                               "chosenCandidates": [{"token": "a", "logProbability": -0.1}],
                               "topCandidates": [{"candidates": [{"token": "a", "logProbability": -0.1}, {"token": "b", "logProbability": -2.0}]}]}}],
           "responseId": "r1"}
    c = to_completion(obj, "m")
    ch = c["choices"][0]
    assert c["id"] == "chatcmpl-r1" and c["model"] == "m" and "usage" not in c
    assert ch["message"]["content"] == "a" and ch["finish_reason"] == "tool_calls"
    assert ch["message"]["tool_calls"] == [{"id": "fc-1", "type": "function", "function": {"name": "f", "arguments": '{"k":"v"}'}}]
    assert ch["logprobs"]["content"][0]["top_logprobs"][1] == {"token": "b", "logprob": -2.0, "bytes": [98]}
    blocked = to_completion({"promptFeedback": {"blockReason": "OTHER", "blockReasonMessage": "no"}}, "m")
    assert blocked["choices"][0]["finish_reason"] == "content_filter"
    assert blocked["choices"][0]["message"]["refusal"] == "The prompt was blocked by Gemini (OTHER): no"
    with pytest.raises(ValueError):
        to_completion({}, "m")
    with pytest.raises(UpstreamRateLimited):
        GeminiAdapter().chat_response(b'{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "q"}}', dep())


# ------------------------------------------------------------------ stream decoder


def sse(obj: Any) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\r\n\r\n"


def feed_bytewise(dec: GeminiStreamDecoder, data: bytes) -> list[JSON]:
    out: list[JSON] = []
    for i in range(len(data)):
        out.extend(dec.feed(data[i : i + 1]))
    return out + dec.close()


def test_stream_call_then_stop_fed_byte_by_byte() -> None:
    data = (sse({"candidates": [{"content": {"parts": [{"text": "Hi "}]}}], "responseId": "r"})
            + b": comment\r\n\r\n"
            + sse({"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": {"a": [1]}}}]}}]})
            + sse({"candidates": [{"content": {"parts": [{"text": ""}]}, "finishReason": "STOP"}],
                   "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4}}))
    dec = GeminiStreamDecoder("m", "gemini")
    chunks = feed_bytewise(dec, data)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0] == {"role": "assistant", "content": "Hi "}
    tc = deltas[1]["tool_calls"][0]
    assert tc["index"] == 0 and tc["function"] == {"name": "f", "arguments": '{"a":[1]}'} and tc["id"].startswith("call_")
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, "tool_calls"]
    assert {c["id"] for c in chunks} == {"chatcmpl-r"}
    assert dec.usage == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


def test_stream_raw_error_object_raises() -> None:
    dec = GeminiStreamDecoder("m", "gemini")
    assert dec.feed(sse({"candidates": [{"content": {"parts": [{"text": "x"}]}}]}))
    raw = b'{\n  "error": {\n    "code": 429,\n    "message": "slow down",\n    "status": "RESOURCE_EXHAUSTED"\n  }\n}\n'
    dec.feed(raw[:20])
    with pytest.raises(UpstreamRateLimited, match=r"^gemini: slow down"):
        dec.feed(raw[20:])


def test_stream_data_error_without_code_uses_grpc_status() -> None:
    dec = GeminiStreamDecoder("m", "gemini")
    with pytest.raises(UpstreamUnavailable) as ei:
        dec.feed(sse({"error": {"message": "busy", "status": "UNAVAILABLE"}}))
    assert ei.value.http_status == 503


def test_stream_truncation_and_block() -> None:
    dec = GeminiStreamDecoder("m", "gemini")
    dec.feed(sse({"candidates": [{"content": {"parts": [{"text": "x"}]}}]}))
    with pytest.raises(UpstreamUnavailable, match="without a finish reason"):
        dec.close()
    with pytest.raises(UpstreamUnavailable, match="before any data"):
        GeminiStreamDecoder("m", "gemini").close()
    dec = GeminiStreamDecoder("m", "gemini")
    chunks = dec.feed(sse({"promptFeedback": {"blockReason": "SAFETY"}})) + dec.close()
    assert chunks[0]["choices"][0]["finish_reason"] == "content_filter"
    assert chunks[0]["choices"][0]["delta"]["refusal"].startswith("The prompt was blocked")


def test_stream_two_candidates_finish_independently() -> None:
    dec = GeminiStreamDecoder("m", "gemini")
    chunks = dec.feed(sse({"candidates": [
        {"index": 0, "content": {"parts": [{"text": "a"}]}, "finishReason": "STOP"},
        {"index": 1, "content": {"parts": [{"functionCall": {"name": "f", "args": {}}}]}}]}))
    chunks += dec.feed(sse({"candidates": [{"index": 1, "finishReason": "STOP"}]})) + dec.close()
    fin = [(c["choices"][0]["index"], c["choices"][0]["finish_reason"]) for c in chunks if c["choices"][0]["finish_reason"]]
    assert fin == [(0, "stop"), (1, "tool_calls")]


# ------------------------------------------------------------------ errors


def err_body(code: int, status: str, message: str, details: list[Any] | None = None) -> bytes:
    return orjson.dumps({"error": {"code": code, "status": status, "message": message, "details": details or []}})


def test_error_mapping() -> None:
    bad_key = err_body(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                       [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}])
    e = error_from_response(400, bad_key, {}, "gemini")
    assert isinstance(e, UpstreamAuthError) and e.http_status == 401 and e.code == "invalid_api_key"
    e = error_from_response(400, err_body(400, "INVALID_ARGUMENT", "Unknown name \"x\""), {}, "gemini")
    assert isinstance(e, UpstreamBadRequest) and e.code == "invalid_argument" and e.message == 'gemini: Unknown name "x"'
    e = error_from_response(400, err_body(400, "INVALID_ARGUMENT", "The input token count (2000000) exceeds the maximum number of tokens allowed (1048576)."), {}, "gemini")
    assert e.code == "context_length_exceeded"
    retry = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "17.5s"}]
    e = error_from_response(429, err_body(429, "RESOURCE_EXHAUSTED", "quota", retry), {}, "gemini")
    assert isinstance(e, UpstreamRateLimited) and e.retry_after == 17.5 and e.headers() == {"Retry-After": "18"}
    e = error_from_response(429, err_body(429, "RESOURCE_EXHAUSTED", "quota", retry), {"retry-after": "3"}, "gemini")
    assert e.retry_after == 3.0
    assert error_from_response(403, err_body(403, "PERMISSION_DENIED", "no"), {}, "gemini").http_status == 403
    assert isinstance(error_from_response(404, err_body(404, "NOT_FOUND", "no"), {}, "gemini"), UpstreamNotFound)
    assert error_from_response(500, err_body(500, "INTERNAL", "oops"), {}, "gemini").http_status == 502
    assert error_from_response(503, err_body(503, "UNAVAILABLE", "busy"), {}, "gemini").http_status == 503
    assert isinstance(error_from_response(504, err_body(504, "DEADLINE_EXCEEDED", "slow"), {}, "gemini"), UpstreamTimeout)
    listed = b"[" + err_body(404, "NOT_FOUND", "gone") + b"]"
    assert error_from_response(404, listed, {}, "gemini").message == "gemini: gone"
    assert error_from_response(502, b"<html>bad gateway</html>", {}, "gemini").message == "gemini: an HTML page"
    assert error_from_object({"status": "DEADLINE_EXCEEDED", "message": "t"}, "gemini").http_status == 504


# ------------------------------------------------------------------ embeddings


def test_embeddings_request() -> None:
    out, dropped = embed_body({"model": "x", "input": "hello", "user": "u"}, "models/e")
    assert out == {"requests": [{"model": "models/e", "content": {"parts": [{"text": "hello"}]}}]}
    assert dropped == ("user",)
    with pytest.raises(UnsupportedFeature):
        embed_body({"model": "x", "input": [[1, 2, 3]]}, "models/e")
