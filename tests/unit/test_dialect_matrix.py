"""The cross-dialect matrix: each canonical (OpenAI Chat Completions) feature, built through each
native adapter's `chat_request(body, dep, stream=...)`, gives the agreed native mapping or a
documented 400 naming the parameter. Where a fake upstream knows what the real API refuses
(Anthropic, Gemini, Cohere) or botocore can validate the request (Bedrock), every native body
built here is also checked against it.

The agreed mapping (`canonical/` holds the shared parts: effort table, reserved tool, tool ids,
turn merging, max-token pick):

| feature | anthropic (Messages) | bedrock (Converse) | gemini (generateContent) | cohere (v2 chat) | openai |
|---|---|---|---|---|---|
| system / developer | top-level `system` (text joined) | top-level `system` blocks | `systemInstruction.parts` | `system` messages | as sent |
| images | `image` block, base64 or url source | `image` bytes; an http(s) URL is a 400 (`messages[i].content[j]`) | `inlineData` / `fileData` | `image_url` part | as sent |
| image in a system message | 400 `messages[i].content[j]` | same 400 | same 400 | same 400 | as sent |
| tools | `tools[].input_schema` | `toolConfig.tools[].toolSpec` | `functionDeclarations` | `tools[].function` | as sent |
| tool_choice required / named | `any` / `tool` | `any` / `tool` | `ANY` / `ANY` + allowedFunctionNames | `REQUIRED` / `REQUIRED` + only that tool | as sent |
| non-function tool | 400 `tools[i].type` | same 400 | same 400 | same 400 | as sent |
| tool named `unigate_structured_output` | the same 400 `tools[i].function.name` on every native dialect ||||as sent |
| tool results | user turn, `tool_result` blocks first | user turn, `toolResult` blocks first | user turn of `functionResponse` parts | `tool` messages | as sent; ids rewritten where a preset wants (Mistral: 9 alnum) |
| tool-call ids | rewritten to `[a-zA-Z0-9_-]+` | rewritten to `[a-zA-Z0-9_.:-]{1,64}` | (names, no ids) | as sent | as sent |
| consecutive same-role turns | merged | merged | merged | as sent | as sent |
| json_schema / json_object | forced tool `unigate_structured_output` | forced tool `unigate_structured_output` (or `outputConfig`, see below) | `responseMimeType` + `responseSchema` | `response_format` json_object (+ schema) | as sent |
| json_schema of a non-object | 400 `response_format.json_schema.schema` | `outputConfig.textFormat` | `responseSchema` | schema | as sent |
| json_object with tools | forced `any` (a tool or the answer tool) | 400 `response_format` | `responseMimeType` | json_object | as sent |
| stop | `stop_sequences` | `inferenceConfig.stopSequences` | `generationConfig.stopSequences` | `stop_sequences` | as sent |
| max tokens (`max_completion_tokens` wins over `max_tokens`) | `max_tokens` (4096 when unset: required) | `inferenceConfig.maxTokens` | `maxOutputTokens` | `max_tokens` | as sent (presets may rename) |
| reasoning_effort | Claude table: `thinking.budget_tokens` | Claude models: the same budgets in `additionalModelRequestFields.thinking`; other models: dropped | Gemini table: `thinkingBudget` (2.x) / `thinkingLevel` (3+) | `thinking.type` enabled / disabled | as sent |
| reasoning_effort outside none..xhigh | the same 400 `reasoning_effort` on every native dialect ||||as sent |
| reasoning + forced tool (Claude) | 400 `response_format` (JSON answer) / `tool_choice` | the same two 400s | n/a | n/a | as sent |
| reasoning with max tokens <= 1024 (Claude) | 400 naming the field sent | the same 400 | n/a | n/a | as sent |
| streaming usage | `stream: true`; usage from message_start/delta | `converse-stream`; usage from metadata | `streamGenerateContent?alt=sse`; usageMetadata | `stream: true`; usage from message-end | `stream_options.include_usage` added |

Claude's effort table (the same on Anthropic and Bedrock): none = no thinking, minimal 1024,
low 2048, medium 8192, high 16384, xhigh 32768 budget tokens; with no max tokens the call gets
budget + 4096, under a smaller client limit the budget shrinks to limit - 1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import botocore.session
import orjson
import pytest
from botocore.validate import ParamValidator

from tests.fakes import anthropic as anthropic_fake
from tests.fakes import gemini as gemini_fake
from tests.fakes import openai as openai_fake
from tests.fakes.cohere import body_problems
from tests.fakes.faulty import AnthropicWire, BedrockWire, Call, CohereWire, GeminiWire
from tests.unit.test_anthropic_translation import dep as anthropic_dep
from tests.unit.test_bedrock_translation import CLAUDE
from tests.unit.test_bedrock_translation import dep as bedrock_dep
from tests.unit.test_cohere_translation import dep as cohere_dep
from tests.unit.test_gemini_translation import dep as gemini_dep
from unigate.canonical.effort import CLAUDE_BUDGETS, EFFORTS
from unigate.canonical.tools import JSON_TOOL
from unigate.config import Timeouts
from unigate.errors import InvalidRequest, UnsupportedFeature
from unigate.providers.base import Deployment, Provider, UpstreamRequest
from unigate.providers.openai_compat import OpenAICompatAdapter
from unigate.providers.presets import PRESETS
from unigate.surfaces.validate import REASONING_EFFORTS

JSON = dict[str, Any]
NATIVE = ("anthropic", "bedrock", "gemini", "cohere")
USER: JSON = {"role": "user", "content": "hi"}
PARAMS: JSON = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                           "parameters": PARAMS}}]
SCHEMA: JSON = {"type": "object", "properties": {"temp_c": {"type": "number"}}, "required": ["temp_c"]}
JSON_SCHEMA: JSON = {"type": "json_schema", "json_schema": {"name": "weather", "schema": SCHEMA}}
PNG = "data:image/png;base64,iVBORw0KGgo="
PNG_URL = "https://example.com/cat.png"
_CONVERSE = botocore.session.get_session().get_service_model("bedrock-runtime").operation_model("Converse")


def openai_dep(preset: str = "openai") -> Deployment:
    p = Provider(id=preset, preset=PRESETS[preset], base_url="https://api.example.com/v1", api_key="k",
                 headers={"Authorization": "Bearer k"}, timeouts=Timeouts())
    return Deployment(id="d", provider=p, model="gpt-x", adapter=OpenAICompatAdapter(), timeouts=Timeouts())


def deployment(dialect: str, model: str | None = None) -> Deployment:
    if dialect == "anthropic":
        return anthropic_dep()
    if dialect == "bedrock":
        return bedrock_dep(model or CLAUDE)
    if dialect == "gemini":
        return gemini_dep(model or "gemini-2.5-flash")
    if dialect == "cohere":
        return cohere_dep(model=model or "command-a-03-2025")
    return openai_dep(dialect)


def _conforms(dialect: str, req: UpstreamRequest, out: JSON, d: Deployment) -> None:
    """What the real API would refuse in the native body: nothing."""
    if dialect == "anthropic":
        headers = {k.lower(): v for k, v in req.headers.items()}
        assert anthropic_fake.check_request(headers, out, "k") == []
    elif dialect == "bedrock":
        report = ParamValidator().validate({"modelId": d.model, **out}, _CONVERSE.input_shape)
        assert not report.has_errors(), report.generate_report()
    elif dialect == "gemini":
        assert gemini_fake.check_request(out) is None
    elif dialect == "cohere":
        assert body_problems(out) == []


def request(dialect: str, body: JSON, *, stream: bool = False, model: str | None = None) -> UpstreamRequest:
    d = deployment(dialect, model)
    return d.adapter.chat_request({"model": "x", **body}, d, stream=stream)


def native(dialect: str, body: JSON, *, stream: bool = False, model: str | None = None) -> JSON:
    d = deployment(dialect, model)
    req = d.adapter.chat_request({"model": "x", **body}, d, stream=stream)
    out: JSON = orjson.loads(req.body or b"")
    _conforms(dialect, req, out, d)
    return out


def refusal(dialect: str, body: JSON, model: str | None = None) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as ei:
        native(dialect, body, model=model)
    assert ei.value.http_status == 400
    return ei.value


def turns(dialect: str, out: JSON) -> list[JSON]:
    return list(out["contents"] if dialect == "gemini" else out["messages"])


# ---------------------------------------------------------------------------- system


SYSTEM_BODY: JSON = {"messages": [{"role": "system", "content": "Be brief."},
                                  {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
                                  USER]}
SYSTEM: dict[str, Callable[[JSON], Any]] = {
    "anthropic": lambda o: o["system"] == "Be brief.\n\nUse metric units." and o["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    "bedrock": lambda o: o["system"] == [{"text": "Be brief."}, {"text": "Use metric units."}]
    and o["messages"] == [{"role": "user", "content": [{"text": "hi"}]}],
    "gemini": lambda o: o["systemInstruction"] == {"parts": [{"text": "Be brief."}, {"text": "Use metric units."}]}
    and o["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}],
    "cohere": lambda o: o["messages"] == [{"role": "system", "content": "Be brief."},
                                          {"role": "system", "content": [{"type": "text", "text": "Use metric units."}]},
                                          USER],
}


@pytest.mark.parametrize("dialect", NATIVE)
def test_system(dialect: str) -> None:
    assert SYSTEM[dialect](native(dialect, SYSTEM_BODY))


@pytest.mark.parametrize("dialect", NATIVE)
def test_system_takes_only_text(dialect: str) -> None:
    body = {"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": PNG}}]}, USER]}
    err = refusal(dialect, body)
    assert isinstance(err, UnsupportedFeature) and err.param == "messages[0].content[0]"


# ---------------------------------------------------------------------------- images


def _image_body(url: str) -> JSON:
    return {"messages": [{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                                      {"type": "image_url", "image_url": {"url": url}}]}]}


IMAGES: dict[str, tuple[JSON, JSON | None]] = {  # (the data URL's block, the https URL's block or None: a 400)
    "anthropic": ({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                  {"type": "image", "source": {"type": "url", "url": PNG_URL}}),
    "bedrock": ({"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}}, None),
    "gemini": ({"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
               {"fileData": {"mimeType": "image/png", "fileUri": PNG_URL}}),
    "cohere": ({"type": "image_url", "image_url": {"url": PNG}}, {"type": "image_url", "image_url": {"url": PNG_URL}}),
}


def _blocks(dialect: str, turn: JSON) -> list[JSON]:
    return list(turn["parts"] if dialect == "gemini" else turn["content"])


@pytest.mark.parametrize("dialect", NATIVE)
def test_images(dialect: str) -> None:
    inline, remote = IMAGES[dialect]
    assert _blocks(dialect, turns(dialect, native(dialect, _image_body(PNG)))[0])[1] == inline
    if remote is None:
        err = refusal(dialect, _image_body(PNG_URL))
        assert isinstance(err, UnsupportedFeature) and err.param == "messages[0].content[1]"
    else:
        assert _blocks(dialect, turns(dialect, native(dialect, _image_body(PNG_URL)))[0])[1] == remote


# ---------------------------------------------------------------------------- tools


def _tools_of(dialect: str, out: JSON) -> tuple[list[str], Any]:
    """(tool names offered, tool choice) in the native body."""
    if dialect == "anthropic":
        return [t["name"] for t in out.get("tools", ())], out.get("tool_choice")
    if dialect == "bedrock":
        cfg = out.get("toolConfig") or {}
        return [t["toolSpec"]["name"] for t in cfg.get("tools", ())], cfg.get("toolChoice")
    if dialect == "gemini":
        decls = [d for t in out.get("tools", ()) for d in t.get("functionDeclarations", ())]
        return [d["name"] for d in decls], (out.get("toolConfig") or {}).get("functionCallingConfig")
    return [t["function"]["name"] for t in out.get("tools", ())], out.get("tool_choice")


TOOL_SPEC: dict[str, Callable[[JSON], Any]] = {
    "anthropic": lambda o: o["tools"] == [{"name": "get_weather", "input_schema": PARAMS, "description": "Weather for a city"}],
    "bedrock": lambda o: o["toolConfig"]["tools"] == [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": PARAMS},
                                                                     "description": "Weather for a city"}}],
    "gemini": lambda o: o["tools"] == [{"functionDeclarations": [{"name": "get_weather", "description": "Weather for a city",
                                                                  "parameters": PARAMS}]}],
    "cohere": lambda o: o["tools"] == [{"type": "function", "function": {"name": "get_weather", "parameters": PARAMS,
                                                                          "description": "Weather for a city"}}],
}
REQUIRED = {"anthropic": {"type": "any"}, "bedrock": {"any": {}}, "gemini": {"mode": "ANY"}, "cohere": "REQUIRED"}
NAMED = {"anthropic": {"type": "tool", "name": "get_weather"}, "bedrock": {"tool": {"name": "get_weather"}},
         "gemini": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}, "cohere": "REQUIRED"}


@pytest.mark.parametrize("dialect", NATIVE)
def test_tools_and_tool_choice(dialect: str) -> None:
    out = native(dialect, {"messages": [USER], "tools": TOOLS})
    assert TOOL_SPEC[dialect](out)
    other = {"type": "function", "function": {"name": "other"}}
    assert _tools_of(dialect, native(dialect, {"messages": [USER], "tools": TOOLS, "tool_choice": "required"})) == (
        ["get_weather"], REQUIRED[dialect])
    named = native(dialect, {"messages": [USER], "tools": [*TOOLS, other],
                             "tool_choice": {"type": "function", "function": {"name": "get_weather"}}})
    names, choice = _tools_of(dialect, named)
    assert choice == NAMED[dialect]
    assert names == (["get_weather"] if dialect == "cohere" else ["get_weather", "other"])  # Cohere cannot name one


@pytest.mark.parametrize("dialect", NATIVE)
def test_only_function_tools(dialect: str) -> None:
    err = refusal(dialect, {"messages": [USER], "tools": [{"type": "web_search"}]})
    assert isinstance(err, UnsupportedFeature) and err.param == "tools[0].type"


@pytest.mark.parametrize("key,tools,param", [
    ("tools", [*TOOLS, {"type": "function", "function": {"name": JSON_TOOL}}], "tools[1].function.name"),
    ("functions", [{"name": JSON_TOOL}], "functions[0].name"),
])
def test_reserved_tool_name_is_refused_the_same_way_everywhere(key: str, tools: list[JSON], param: str) -> None:
    errors = [refusal(dialect, {"messages": [USER], key: tools}) for dialect in NATIVE]
    assert {(type(e), e.param, e.code, e.message) for e in errors} == {
        (InvalidRequest, param, "invalid_value",
         f"The tool name {JSON_TOOL!r} is reserved by the gateway for response_format answers; please rename the tool.")}


# ---------------------------------------------------------------------------- tool results


CALLS = [{"id": "call.1/x", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
         {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}]
HISTORY: JSON = {"tools": TOOLS, "messages": [
    {"role": "user", "content": "Weather in Paris and Rome?"},
    {"role": "assistant", "content": None, "tool_calls": CALLS},
    {"role": "tool", "tool_call_id": "call.1/x", "content": "18C"},
    {"role": "tool", "tool_call_id": "call_2", "content": "21C"},
    {"role": "user", "content": "And tomorrow?"},
]}


def _check_results_anthropic(o: JSON) -> None:
    _ask, calls, results = o["messages"]  # the two tool turns and the user turn are one user turn
    uses = [b for b in calls["content"] if b["type"] == "tool_use"]
    assert [(u["name"], u["input"]) for u in uses] == [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]
    assert uses[1]["id"] == "call_2" and uses[0]["id"] != "call.1/x"  # only the invalid id is rewritten
    assert results["content"] == [{"type": "tool_result", "tool_use_id": uses[0]["id"], "content": "18C"},
                                  {"type": "tool_result", "tool_use_id": "call_2", "content": "21C"},
                                  {"type": "text", "text": "And tomorrow?"}]


def _check_results_bedrock(o: JSON) -> None:
    _ask, calls, results = o["messages"]
    uses = [b["toolUse"] for b in calls["content"]]
    assert [(u["name"], u["input"]) for u in uses] == [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]
    assert uses[1]["toolUseId"] == "call_2" and uses[0]["toolUseId"] != "call.1/x"
    assert results["content"] == [{"toolResult": {"toolUseId": uses[0]["toolUseId"], "content": [{"text": "18C"}]}},
                                  {"toolResult": {"toolUseId": "call_2", "content": [{"text": "21C"}]}},
                                  {"text": "And tomorrow?"}]


def _check_results_gemini(o: JSON) -> None:
    _ask, calls, results = o["contents"]
    assert [p["functionCall"] for p in calls["parts"]] == [{"name": "get_weather", "args": {"city": "Paris"}},
                                                            {"name": "get_weather", "args": {"city": "Rome"}}]
    assert results == {"role": "user", "parts": [
        {"functionResponse": {"name": "get_weather", "response": {"result": "18C"}}},
        {"functionResponse": {"name": "get_weather", "response": {"result": "21C"}}},
        {"text": "And tomorrow?"}]}


def _check_results_cohere(o: JSON) -> None:
    assert [m["role"] for m in o["messages"]] == ["user", "assistant", "tool", "tool", "user"]
    assert [c["id"] for c in o["messages"][1]["tool_calls"]] == ["call.1/x", "call_2"]
    assert [m["tool_call_id"] for m in o["messages"][2:4]] == ["call.1/x", "call_2"]


TOOL_RESULTS: dict[str, Callable[[JSON], None]] = {"anthropic": _check_results_anthropic, "bedrock": _check_results_bedrock,
                                                    "gemini": _check_results_gemini, "cohere": _check_results_cohere}


@pytest.mark.parametrize("dialect", NATIVE)
def test_tool_results(dialect: str) -> None:
    TOOL_RESULTS[dialect](native(dialect, HISTORY))


@pytest.mark.parametrize("dialect", ["anthropic", "bedrock", "gemini"])
def test_consecutive_same_role_turns_are_merged(dialect: str) -> None:
    out = native(dialect, {"messages": [USER, {"role": "user", "content": "there"},
                                        {"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"},
                                        {"role": "user", "content": "c"}]})
    assert len(turns(dialect, out)) == 3


def test_openai_preset_tool_ids_are_rewritten_in_pairs() -> None:
    d = openai_dep("mistral")
    out = orjson.loads(d.adapter.chat_request({"model": "x", **HISTORY}, d, stream=False).body or b"")
    ids = [c["id"] for c in out["messages"][1]["tool_calls"]]
    assert all(len(i) == 9 and i.isalnum() for i in ids) and len(set(ids)) == 2
    assert [m["tool_call_id"] for m in out["messages"][2:4]] == ids
    assert HISTORY["messages"][1]["tool_calls"][0]["id"] == "call.1/x"  # the client's body is not changed


# ---------------------------------------------------------------------------- json_schema / json_object


JSON_ANSWER: dict[str, Callable[[JSON], Any]] = {
    "anthropic": lambda o: o["tools"][-1]["name"] == JSON_TOOL and o["tools"][-1]["input_schema"] == SCHEMA
    and o["tool_choice"] == {"type": "tool", "name": JSON_TOOL, "disable_parallel_tool_use": True},
    "bedrock": lambda o: o["toolConfig"]["tools"][-1]["toolSpec"]["name"] == JSON_TOOL
    and o["toolConfig"]["tools"][-1]["toolSpec"]["inputSchema"] == {"json": SCHEMA}
    and o["toolConfig"]["toolChoice"] == {"tool": {"name": JSON_TOOL}},
    "gemini": lambda o: o["generationConfig"]["responseMimeType"] == "application/json"
    and o["generationConfig"]["responseSchema"] == {**SCHEMA, "propertyOrdering": ["temp_c"]},
    "cohere": lambda o: o["response_format"] == {"type": "json_object", "json_schema": SCHEMA},
}
JSON_OBJECT: dict[str, Callable[[JSON], Any]] = {
    "anthropic": lambda o: o["tools"] == [{"name": JSON_TOOL, "input_schema": {"type": "object"},
                                           "description": o["tools"][0]["description"]}],
    "bedrock": lambda o: o["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"] == {"json": {"type": "object"}},
    "gemini": lambda o: o["generationConfig"] == {"responseMimeType": "application/json"},
    "cohere": lambda o: o["response_format"] == {"type": "json_object"},
}


@pytest.mark.parametrize("dialect", NATIVE)
def test_json_schema_and_json_object(dialect: str) -> None:
    assert JSON_ANSWER[dialect](native(dialect, {"messages": [USER], "response_format": JSON_SCHEMA}))
    assert JSON_OBJECT[dialect](native(dialect, {"messages": [USER], "response_format": {"type": "json_object"}}))


def test_json_schema_documented_differences() -> None:
    array = {"type": "json_schema", "json_schema": {"name": "list", "schema": {"type": "array"}}}
    err = refusal("anthropic", {"messages": [USER], "response_format": array})
    assert isinstance(err, UnsupportedFeature) and err.param == "response_format.json_schema.schema"
    assert native("bedrock", {"messages": [USER], "response_format": array})["outputConfig"]["textFormat"]["type"] == "json_schema"
    assert native("gemini", {"messages": [USER], "response_format": array})["generationConfig"]["responseSchema"]["type"] == "array"
    with_tools = {"messages": [USER], "tools": TOOLS, "response_format": {"type": "json_object"}}
    assert native("anthropic", with_tools)["tool_choice"] == {"type": "any"}
    err = refusal("bedrock", with_tools)
    assert isinstance(err, UnsupportedFeature) and err.param == "response_format"


# ---------------------------------------------------------------------------- stop, max tokens


STOP = {"anthropic": lambda o: o.get("stop_sequences"), "bedrock": lambda o: o.get("inferenceConfig", {}).get("stopSequences"),
        "gemini": lambda o: o.get("generationConfig", {}).get("stopSequences"), "cohere": lambda o: o.get("stop_sequences")}
MAX_TOKENS = {"anthropic": lambda o: o.get("max_tokens"), "bedrock": lambda o: o.get("inferenceConfig", {}).get("maxTokens"),
              "gemini": lambda o: o.get("generationConfig", {}).get("maxOutputTokens"), "cohere": lambda o: o.get("max_tokens")}


@pytest.mark.parametrize("dialect", NATIVE)
def test_stop(dialect: str) -> None:
    assert STOP[dialect](native(dialect, {"messages": [USER], "stop": ["END", "STOP"]})) == ["END", "STOP"]
    assert STOP[dialect](native(dialect, {"messages": [USER], "stop": "END"})) == ["END"]
    assert STOP[dialect](native(dialect, {"messages": [USER]})) is None


@pytest.mark.parametrize("dialect", NATIVE)
@pytest.mark.parametrize("limits,expected", [
    ({"max_tokens": 10}, 10),
    ({"max_completion_tokens": 20}, 20),
    ({"max_tokens": 10, "max_completion_tokens": 20}, 20),  # the newer name wins
    ({"max_tokens": 10, "max_completion_tokens": None}, 10),  # null is not set
    ({}, None),
])
def test_max_tokens(dialect: str, limits: JSON, expected: int | None) -> None:
    if expected is None and dialect == "anthropic":
        expected = 4096  # Anthropic requires max_tokens
    assert MAX_TOKENS[dialect](native(dialect, {"messages": [USER], **limits})) == expected


# ---------------------------------------------------------------------------- reasoning_effort


def _claude_thinking(dialect: str, out: JSON) -> tuple[int | None, int | None]:
    """(thinking budget or None, max tokens) of a native Claude body."""
    if dialect == "anthropic":
        return (out.get("thinking") or {}).get("budget_tokens"), out.get("max_tokens")
    thinking = (out.get("additionalModelRequestFields") or {}).get("thinking") or {}
    return thinking.get("budget_tokens"), (out.get("inferenceConfig") or {}).get("maxTokens")


@pytest.mark.parametrize("effort", EFFORTS)
@pytest.mark.parametrize("limit", [None, 5000, 100_000])
def test_reasoning_effort_is_the_same_for_claude_on_anthropic_and_bedrock(effort: str, limit: int | None) -> None:
    body: JSON = {"messages": [USER], "reasoning_effort": effort}
    if limit is not None:
        body["max_completion_tokens"] = limit
    anthropic, bedrock = (_claude_thinking(d, native(d, body)) for d in ("anthropic", "bedrock"))
    budget = CLAUDE_BUDGETS[effort]
    if budget == 0:
        expected: tuple[int | None, int | None] = (None, 4096 if limit is None else limit)
        assert anthropic == expected and bedrock == (None, limit)  # Converse needs no maxTokens without thinking
        return
    expected = (budget, budget + 4096) if limit is None else (min(budget, limit - 1), limit)
    assert anthropic == bedrock == expected


def test_claude_thinking_refusals_agree() -> None:
    def both(body: JSON) -> set[tuple[type, str | None]]:
        return {(type(e), e.param) for e in (refusal("anthropic", body), refusal("bedrock", body))}

    thinking: JSON = {"messages": [USER], "reasoning_effort": "low"}
    assert both({**thinking, "max_tokens": 1000}) == {(UnsupportedFeature, "max_tokens")}
    assert both({**thinking, "max_completion_tokens": 1024}) == {(UnsupportedFeature, "max_completion_tokens")}
    assert both({**thinking, "response_format": JSON_SCHEMA}) == {(UnsupportedFeature, "response_format")}
    assert both({**thinking, "tools": TOOLS, "tool_choice": "required"}) == {(UnsupportedFeature, "tool_choice")}
    named = {"type": "function", "function": {"name": "get_weather"}}
    assert both({**thinking, "tools": TOOLS, "tool_choice": named}) == {(UnsupportedFeature, "tool_choice")}
    # thinking with tools the model may choose to call is fine on both
    for d in ("anthropic", "bedrock"):
        assert _claude_thinking(d, native(d, {**thinking, "tools": TOOLS}))[0] == 2048


def test_bedrock_drops_reasoning_effort_for_other_families() -> None:
    d = deployment("bedrock", "amazon.nova-pro-v1:0")
    req = d.adapter.chat_request({"model": "x", "messages": [USER], "reasoning_effort": "high"}, d, stream=False)
    assert "additionalModelRequestFields" not in orjson.loads(req.body or b"") and req.dropped == ("reasoning_effort",)


GEMINI_2 = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 24576}
GEMINI_3 = {"none": "MINIMAL", "minimal": "MINIMAL", "low": "LOW", "medium": "MEDIUM", "high": "HIGH", "xhigh": "HIGH"}


@pytest.mark.parametrize("effort", EFFORTS)
def test_reasoning_effort_on_gemini_and_cohere(effort: str) -> None:
    body = {"messages": [USER], "reasoning_effort": effort}
    on = effort != "none"
    assert native("gemini", body)["generationConfig"]["thinkingConfig"] == {
        "thinkingBudget": GEMINI_2[effort], "includeThoughts": on}
    assert native("gemini", body, model="gemini-3-pro-preview")["generationConfig"]["thinkingConfig"] == {
        "thinkingLevel": GEMINI_3[effort], "includeThoughts": on}
    assert native("cohere", body)["thinking"] == {"type": "enabled" if on else "disabled"}


@pytest.mark.parametrize("value", ["extreme", "max", "", 3, ["high"]])
def test_unknown_reasoning_effort_is_the_same_400_everywhere(value: Any) -> None:
    errors = [refusal(d, {"messages": [USER], "reasoning_effort": value}) for d in NATIVE]
    errors.append(refusal("bedrock", {"messages": [USER], "reasoning_effort": value}, model="amazon.nova-pro-v1:0"))
    assert len({(type(e), e.param, e.code, e.message) for e in errors}) == 1
    assert (type(errors[0]), errors[0].param, errors[0].code) == (InvalidRequest, "reasoning_effort", "invalid_value")


def test_accepted_efforts_are_the_surfaces() -> None:
    assert set(EFFORTS) == REASONING_EFFORTS == set(CLAUDE_BUDGETS)


# ---------------------------------------------------------------------------- streaming usage


def _native_stream(dialect: str, model: str, body: JSON) -> bytes:
    call = Call(dialect, "chat", model, True, body, "k")
    wire = {"anthropic": AnthropicWire, "bedrock": BedrockWire, "gemini": GeminiWire, "cohere": CohereWire}[dialect]()
    return b"".join(wire.ok_events(call))


STREAM_REQUEST: dict[str, Callable[[UpstreamRequest], Any]] = {
    "anthropic": lambda r: orjson.loads(r.body or b"")["stream"] is True,
    "bedrock": lambda r: str(r.url).endswith("/converse-stream"),
    "gemini": lambda r: str(r.url).endswith(":streamGenerateContent?alt=sse"),
    "cohere": lambda r: orjson.loads(r.body or b"")["stream"] is True,
}


@pytest.mark.parametrize("dialect", NATIVE)
def test_streaming_usage(dialect: str) -> None:
    body: JSON = {"model": "x", "messages": [USER]}
    d = deployment(dialect)
    req = d.adapter.chat_request(body, d, stream=True)
    assert STREAM_REQUEST[dialect](req)
    decoder = d.adapter.chat_stream(body, d)
    chunks = decoder.feed(_native_stream(dialect, d.model, orjson.loads(req.body or b"")))
    chunks += decoder.close()
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    u = decoder.usage
    assert u is not None and u["prompt_tokens"] > 0 and u["completion_tokens"] > 0
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]


def test_openai_streaming_usage_is_asked_for() -> None:
    d = openai_dep()
    out = orjson.loads(d.adapter.chat_request({"model": "x", "messages": [USER], "stream": True}, d, stream=True).body or b"")
    assert out["stream_options"] == {"include_usage": True}
    decoder = d.adapter.chat_stream({}, d)
    data = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in openai_fake.stream_events("gpt-x", True))
    decoder.feed(data + b"data: [DONE]\n\n")
    assert decoder.usage is not None and decoder.usage["total_tokens"] > 0


# ---------------------------------------------------------------------------- openai passthrough


@pytest.mark.parametrize("feature", [
    SYSTEM_BODY, _image_body(PNG_URL), {"messages": [USER], "tools": TOOLS, "tool_choice": "required"}, HISTORY,
    {"messages": [USER], "response_format": JSON_SCHEMA}, {"messages": [USER], "stop": ["END"]},
    {"messages": [USER], "max_completion_tokens": 20}, {"messages": [USER], "reasoning_effort": "xhigh"},
    {"messages": [USER], "tools": [{"type": "function", "function": {"name": JSON_TOOL}}]},
], ids=["system", "images", "tools", "tool_results", "json_schema", "stop", "max_tokens", "reasoning_effort",
        "reserved_tool_name"])
def test_openai_passes_every_feature_through(feature: JSON) -> None:
    d = openai_dep()
    out = orjson.loads(d.adapter.chat_request({"model": "x", **feature}, d, stream=False).body or b"")
    assert out == {**feature, "model": "gpt-x"}
