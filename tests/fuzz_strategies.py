"""Hypothesis strategies for tests/integration/test_fuzz.py: request bodies, raw bytes and
headers for every endpoint of the gateway.

Most strategies build *structurally plausible* requests (the right top-level shape, real model
ids that route to the fake upstreams) with a wrong JSON type or an odd value in some nested
place: that is what gets past the first validation and reaches the translators, where an
unexpected `None.get(...)` or `len(5)` turns into a 500. Arbitrary JSON and raw bytes are
generated too, but they mostly exercise the parser.

Nothing here knows what the gateway accepts: a generated request may be valid (the answer is
then a 200) or not (a 4xx). The properties only say "never a 5xx, never a secret or a trace".
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from hypothesis import strategies as st

T = TypeVar("T")
JSON = Any

# ------------------------------------------------------------------------------- models

#: ids that route to the three fake upstreams, so that the translators really run
GOOD_MODELS: list[str] = [
    "openai/gpt-4o-mini",
    "anthropic/claude-3-5-haiku-latest",
    "gemini/gemini-2.0-flash",
]
#: embeddings models (the catalog refuses /v1/embeddings for a chat model)
EMBEDDING_MODELS: list[str] = ["openai/text-embedding-3-small", "gemini/text-embedding-004", "gemini/gemini-embedding-001"]
#: names the fakes answer in a special but healthy way (tool calls, thinking blocks, ...),
#: to exercise more of the response translators
FEATURE_MODELS: list[str] = [
    "openai/tools",
    "anthropic/tools",
    "anthropic/thinking",
    "anthropic/cache",
    "gemini/tools",
    "gemini/parallel",
    "gemini/thinking",
    "gemini/length",
    "gemini/safety",
    "gemini/blocked",
    "gemini/ragged",
    "anthropic/ragged",
    "openai/ragged",
]
#: model ids that try to leave the upstream's API path when pasted into a URL (Gemini puts the
#: model in the path) or to confuse the router
PATH_ESCAPES: list[str] = [
    "gemini/../../v1beta/cachedContents#",
    "gemini/x/../../../admin",
    "gemini/../../../../etc/passwd",
    "gemini/%2e%2e/%2e%2e/v1beta/files",
    "gemini/%2E%2E%2F%2E%2E%2Fv1beta%2Ffiles",
    "gemini/..%2F..%2Fv1beta%2FcachedContents",
    "gemini/gemini-2.0-flash:generateContent?key=stolen#",
    "gemini/gemini-2.0-flash?alt=json&key=x",
    "gemini/gemini-2.0-flash#frag",
    "gemini/gemini-2.0-flash/../../../v1/models/other",
    "gemini/models/../../v1beta/tunedModels/x",
    "gemini/tunedModels/../../admin",
    "gemini/\\..\\..\\admin",
    "gemini/gemini-2.0-flash\x00/../admin",
    "gemini/ ../..",
    "gemini/..",
    "gemini/.",
    "gemini//",
    "gemini/?",
    "gemini/#",
    "gemini/@evil.example",
    "gemini/http://evil.example/",
    "gemini/gémini-ünïcode-模型",
    "gemini/\u202e\u0000\ufeff",
    "anthropic/../../v1/admin",
    "anthropic/claude\x00",
    "openai/../../v1/files",
    "openai/gpt-4o-mini\r\nX-Injected: 1",
    "../gemini/gemini-2.0-flash",
    "/gemini/gemini-2.0-flash",
    "gemini%2Fgemini-2.0-flash",
]
#: substrings that make a fake deliberately misbehave (error-<status>, slow-<ms>, a stream
#: that breaks off, ...). This file fuzzes the *client* side against *healthy* upstreams, so a
#: random model name must not trigger them (a 502 would then be the correct answer).
UNHEALTHY_MARKERS: tuple[str, ...] = ("error-", "slow-", "stop-", "drop", "trickle", "truncated", "midstream")


def _healthy(model: Any) -> bool:
    return not (isinstance(model, str) and any(m in model for m in UNHEALTHY_MARKERS))


_provider = st.sampled_from(["openai", "anthropic", "gemini", "cohere", "bedrock", "local", "", "OPENAI", "azure"])
random_model_names: st.SearchStrategy[str] = st.one_of(
    st.text(max_size=40),
    st.builds(lambda p, m: f"{p}/{m}", _provider, st.text(max_size=30)),
    st.builds(lambda p, m: f"{p}/{m}", _provider, st.from_regex(r"[A-Za-z0-9._:/%#?@-]{0,30}", fullmatch=True)),
).filter(_healthy)

any_model: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(GOOD_MODELS),
    st.sampled_from(EMBEDDING_MODELS),
    st.sampled_from(GOOD_MODELS),  # twice: most examples should reach a translator
    st.sampled_from(FEATURE_MODELS),
    st.sampled_from(PATH_ESCAPES),
    random_model_names,
)

# ------------------------------------------------------------------------------- JSON values

_int64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what orjson can write
_floats = st.floats(allow_nan=False, allow_infinity=False)
edge_numbers: st.SearchStrategy[int | float] = st.one_of(
    st.sampled_from([0, -1, 1, 2, 3, 128, 129, 255, 256, 4096, 2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, -(2**63),
                     2**64 - 1, 0.0, -0.0, 0.5, 1.0000001, 2.0000001, -2.5, 1e-320, 5e-324, 1e308, -1e308,
                     1.7976931348623157e308]),
    _int64,
    _floats,
)
scalars: st.SearchStrategy[JSON] = st.one_of(st.none(), st.booleans(), edge_numbers, st.text(max_size=20))

any_json: st.SearchStrategy[JSON] = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12,
)

#: one value of every JSON type, small: the "wrong type" in a nested place
wrong: st.SearchStrategy[JSON] = st.one_of(
    st.sampled_from([None, True, False, 0, -1, 1.5, 1e308, "", "x", [], {}, [None], [{}], {"": None}, [[]], [1, "a"]]),
    any_json,
)


def maybe(valid: st.SearchStrategy[T]) -> st.SearchStrategy[T | JSON]:
    """Mostly a valid value, sometimes a value of another type."""
    return st.one_of(valid, valid, wrong)


def obj(required: dict[str, st.SearchStrategy[Any]] | None = None,
        optional: dict[str, st.SearchStrategy[Any]] | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """A JSON object: the required keys, any subset of the optional ones, sometimes a junk key."""
    base = st.fixed_dictionaries(required or {}, optional=optional or {})
    extra = st.dictionaries(st.text(max_size=12), any_json, max_size=2)
    return st.builds(lambda a, b: {**b, **a}, base, st.one_of(st.just({}), st.just({}), extra))


short_text = st.text(max_size=30)
# (no "Traceback" here: the gateway may echo input, and the test looks for traces in answers)
texts = st.one_of(short_text, st.sampled_from(["", " ", "\n", "\x00", "\ud7ff\ufffd", "{}", "null", "<html>",
                                                  "a" * 1000, "%s%n", "${HOME}", "\u202e"]))
urls = st.one_of(
    st.sampled_from([
        "https://example.com/cat.png", "http://127.0.0.1:9/x.png", "data:image/png;base64,iVBORw0KGgo=",
        "data:image/png;base64,!!!notbase64", "data:", "data:;base64,", "data:image/png,raw", "gs://bucket/x.pdf",
        "file:///etc/passwd", "ftp://x", "", "https://", "data:image/png;base64," + "A" * 5000,
    ]),
    st.text(max_size=30),
)
json_strings = st.one_of(st.builds(lambda v: orjson.dumps(v).decode(), any_json), texts)  # tool arguments


def nested(depth: int, leaf: JSON = 1) -> JSON:
    """`depth` levels of arrays around `leaf`."""
    v: JSON = leaf
    for _ in range(depth):
        v = [v]
    return v


#: structures deeper than the gateway may re-serialize (orjson writes at most 255 levels, and
#: reads at most 1024): they parse but cannot be forwarded
deep_json: st.SearchStrategy[JSON] = st.builds(
    lambda d, as_dict: _deep_dict(d) if as_dict else nested(d),
    st.sampled_from([63, 64, 65, 100, 200, 254, 255, 256, 300, 500]),
    st.booleans(),
)


def _deep_dict(depth: int) -> JSON:
    v: JSON = {}
    for _ in range(depth):
        v = {"a": v}
    return v


# ------------------------------------------------------------------------------- JSON Schema

_schema_types = st.one_of(
    st.sampled_from(["object", "array", "string", "number", "integer", "boolean", "null", "OBJECT", "any", ""]),
    st.lists(st.sampled_from(["string", "null", "object", "array", "integer"]), max_size=3),
    wrong,
)


def _schema_node(inner: st.SearchStrategy[JSON]) -> st.SearchStrategy[JSON]:
    return obj(optional={
        "type": _schema_types,
        "properties": st.one_of(st.dictionaries(st.text(max_size=8), inner, max_size=3), wrong),
        "items": st.one_of(inner, st.lists(inner, max_size=2), wrong),
        "required": st.one_of(st.lists(st.text(max_size=8), max_size=3), wrong),
        "enum": st.one_of(st.lists(scalars, max_size=3), wrong),
        "anyOf": st.one_of(st.lists(inner, max_size=3), wrong),
        "oneOf": st.one_of(st.lists(inner, max_size=2), wrong),
        "allOf": st.one_of(st.lists(inner, max_size=2), wrong),
        "$ref": st.one_of(st.sampled_from(["#", "#/$defs/a", "#/definitions/a", "#/$defs/missing", "#/properties/x",
                                           "http://evil.example/s.json", "#/$defs/a/properties/b", "a"]), wrong),
        "$defs": st.one_of(st.dictionaries(st.sampled_from(["a", "b"]), inner, max_size=2),
                           st.just({"a": {"$ref": "#/$defs/a"}}), st.just({"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}),
                           wrong),
        "definitions": st.one_of(st.dictionaries(st.just("a"), inner, max_size=1), wrong),
        "additionalProperties": st.one_of(st.booleans(), inner, wrong),
        "description": maybe(texts),
        "format": maybe(st.sampled_from(["date-time", "enum", "uuid", "int32", ""])),
        "nullable": wrong,
        "default": any_json,
        "const": any_json,
        "minimum": wrong, "maximum": wrong, "minItems": wrong, "maxLength": wrong, "pattern": wrong,
        "propertyOrdering": wrong, "title": wrong, "examples": wrong,
        "$schema": wrong,
    })


json_schemas: st.SearchStrategy[JSON] = st.one_of(
    st.recursive(st.just({}) | st.just({"type": "string"}), _schema_node, max_leaves=6),
    st.just({"$ref": "#"}),  # a schema that refers to itself
    st.just({"type": "object", "properties": {"x": {"$ref": "#"}}}),
    st.just({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}),
    st.just({"$defs": {"a": {"type": "object", "properties": {"next": {"$ref": "#/$defs/a"}}}}, "$ref": "#/$defs/a"}),
    deep_json,
    wrong,
)

# ------------------------------------------------------------------------------- numbers of every kind

temperature = st.one_of(st.floats(0, 2), edge_numbers, wrong)
counts = st.one_of(st.integers(0, 200), edge_numbers, wrong)
booleans = maybe(st.booleans())

# ------------------------------------------------------------------------------- OpenAI chat


def _part() -> st.SearchStrategy[JSON]:
    return obj(
        {"type": maybe(st.sampled_from(["text", "image_url", "input_audio", "file", "refusal", "input_text",
                                        "image", "video_url", "thinking", "tool_result", ""]))},
        {
            "text": maybe(texts),
            "image_url": st.one_of(obj({"url": maybe(urls)}, {"detail": maybe(st.sampled_from(["low", "high", "auto"]))}),
                                   urls, wrong),
            "input_audio": st.one_of(obj({"data": maybe(texts), "format": maybe(st.sampled_from(["wav", "mp3", "x"]))}), wrong),
            "file": st.one_of(obj(optional={"file_data": maybe(urls), "file_id": maybe(texts), "filename": maybe(texts)}), wrong),
            "refusal": maybe(texts),
            "cache_control": st.one_of(st.just({"type": "ephemeral"}), wrong),
        },
    )


parts = st.lists(st.one_of(_part(), _part(), wrong), max_size=4)

tool_call = obj(
    {"id": maybe(texts), "type": maybe(st.just("function")),
     "function": st.one_of(obj({"name": maybe(texts), "arguments": st.one_of(json_strings, json_strings, wrong)}), wrong)},
)

openai_message = obj(
    {"role": st.one_of(st.sampled_from(["system", "developer", "user", "assistant", "tool", "function"]), wrong)},
    {
        "content": st.one_of(texts, parts, wrong),
        "name": maybe(texts),
        "tool_calls": st.one_of(st.lists(st.one_of(tool_call, wrong), max_size=3), wrong),
        "tool_call_id": maybe(texts),
        "function_call": st.one_of(obj({"name": maybe(texts), "arguments": maybe(json_strings)}), wrong),
        "refusal": maybe(texts),
        "audio": wrong,
        "reasoning_content": maybe(texts),
        "thinking_blocks": wrong,
    },
)

#: conversations that are valid in shape: tool calls followed by their results, so that the
#: translators' pairing logic (Anthropic tool_use/tool_result, Gemini functionCall/Response) runs
paired_conversation = st.builds(
    lambda cid, name, args, result: [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": cid, "type": "function",
                                                               "function": {"name": name, "arguments": args}}]},
        {"role": "tool", "tool_call_id": cid, "content": result},
    ],
    maybe(texts), maybe(texts), st.one_of(json_strings, wrong), st.one_of(texts, parts, wrong),
)

openai_tool = st.one_of(
    obj({"type": maybe(st.just("function")),
         "function": st.one_of(obj({"name": maybe(texts)},
                                   {"description": maybe(texts), "parameters": json_schemas, "strict": booleans}), wrong)}),
    obj({"type": st.sampled_from(["web_search", "code_interpreter", "file_search", "custom", "mcp", ""])}),
    wrong,
)

tool_choice = st.one_of(
    st.sampled_from(["auto", "none", "required", "any", ""]),
    obj({"type": maybe(st.sampled_from(["function", "auto", "none", "required", "allowed_tools"]))},
        {"function": st.one_of(obj({"name": maybe(texts)}), wrong)}),
    wrong,
)

response_format = st.one_of(
    obj({"type": maybe(st.sampled_from(["text", "json_object", "json_schema"]))},
        {"json_schema": st.one_of(obj({"name": maybe(texts)}, {"schema": json_schemas, "strict": booleans,
                                                               "description": maybe(texts)}), wrong)}),
    wrong,
)

stop = st.one_of(texts, st.lists(texts, max_size=6), wrong)
reasoning_effort = st.one_of(st.sampled_from(["minimal", "low", "medium", "high", "none", "xhigh", ""]), wrong)
stream_options = st.one_of(obj(optional={"include_usage": booleans, "include_obfuscation": booleans}), wrong)

_chat_optional: dict[str, st.SearchStrategy[Any]] = {
    "stream": booleans,
    "stream_options": stream_options,
    "n": counts,
    "temperature": temperature,
    "top_p": temperature,
    "max_tokens": counts,
    "max_completion_tokens": counts,
    "presence_penalty": temperature,
    "frequency_penalty": temperature,
    "seed": counts,
    "stop": stop,
    "tools": st.one_of(st.lists(openai_tool, max_size=3), wrong),
    "tool_choice": tool_choice,
    "parallel_tool_calls": booleans,
    "response_format": response_format,
    "reasoning_effort": reasoning_effort,
    "logprobs": booleans,
    "top_logprobs": counts,
    "logit_bias": st.one_of(st.dictionaries(st.text(max_size=6), edge_numbers, max_size=3), wrong),
    "user": maybe(texts),
    "metadata": st.one_of(st.dictionaries(st.text(max_size=6), maybe(texts), max_size=3), wrong),
    "modalities": wrong,
    "audio": wrong,
    "prediction": wrong,
    "web_search_options": wrong,
    "service_tier": maybe(texts),
    "store": booleans,
    "top_k": counts,
    "thinking": wrong,
    "extra_body": wrong,
    "functions": wrong,
    "function_call": wrong,
}

openai_chat_body = st.one_of(
    obj({"model": maybe(any_model), "messages": st.one_of(st.lists(st.one_of(openai_message, wrong), min_size=1, max_size=4),
                                                           paired_conversation)},
        _chat_optional),
    # the usual request with exactly one odd field: the most likely to get past validation
    st.builds(lambda m, k, v: {"model": m, "messages": [{"role": "user", "content": "hi"}], k: v},
              any_model, st.sampled_from(sorted(_chat_optional)), st.one_of(*_chat_optional.values())),
    obj(optional={"model": maybe(any_model), "messages": wrong}),
)

# ------------------------------------------------------------------------------- completions, embeddings

completions_body = obj(
    {"model": maybe(any_model),
     "prompt": st.one_of(texts, st.lists(texts, max_size=3), st.lists(counts, max_size=3),
                         st.lists(st.lists(st.integers(0, 100000), max_size=3), max_size=2), wrong)},
    {"stream": booleans, "stream_options": stream_options, "max_tokens": counts, "temperature": temperature,
     "n": counts, "best_of": counts, "echo": booleans, "suffix": maybe(texts), "logprobs": counts, "stop": stop,
     "seed": counts, "user": maybe(texts), "logit_bias": wrong, "top_p": temperature},
)

embeddings_input = st.one_of(
    texts,
    st.lists(texts, max_size=4),
    st.lists(st.integers(-5, 2**31), max_size=4),
    st.lists(st.lists(st.integers(-5, 2**31), max_size=4), max_size=3),
    st.just([]), st.just([""]), st.just([[]]), st.just([1, "a"]), st.just([[1], "a"]), st.just([True]),
    st.lists(st.one_of(texts, counts, wrong), max_size=3),
    wrong,
)

embeddings_body = obj(
    {"model": maybe(any_model), "input": embeddings_input},
    {"encoding_format": maybe(st.sampled_from(["float", "base64", "binary", ""])), "dimensions": counts,
     "user": maybe(texts), "input_type": wrong, "task_type": wrong},
)

# ------------------------------------------------------------------------------- Anthropic Messages

_cache_control = st.one_of(st.just({"type": "ephemeral"}), st.just({"type": "ephemeral", "ttl": "1h"}), wrong)
_image_source = st.one_of(
    obj({"type": st.just("base64"), "media_type": maybe(st.sampled_from(["image/png", "image/jpeg", "text/plain", ""])),
         "data": maybe(st.sampled_from(["iVBORw0KGgo=", "!!", ""]) | texts)}),
    obj({"type": st.just("url"), "url": maybe(urls)}),
    obj({"type": maybe(st.sampled_from(["file", "text", "content", ""]))},
        {"file_id": maybe(texts), "data": maybe(texts), "content": wrong}),
    wrong,
)


def _block(inner: st.SearchStrategy[JSON]) -> st.SearchStrategy[JSON]:
    return st.one_of(
        obj({"type": st.just("text"), "text": maybe(texts)}, {"cache_control": _cache_control, "citations": wrong}),
        obj({"type": st.just("image"), "source": _image_source}, {"cache_control": _cache_control}),
        obj({"type": st.just("document"), "source": _image_source}, {"title": maybe(texts), "context": wrong,
                                                                      "citations": wrong}),
        obj({"type": st.just("tool_use"), "id": maybe(texts), "name": maybe(texts), "input": st.one_of(any_json, deep_json)},
            {"cache_control": _cache_control}),
        obj({"type": st.just("tool_result"), "tool_use_id": maybe(texts)},
            {"content": st.one_of(texts, st.lists(inner, max_size=3), wrong), "is_error": booleans,
             "cache_control": _cache_control}),
        obj({"type": st.just("thinking"), "thinking": maybe(texts)}, {"signature": maybe(texts)}),
        obj({"type": st.just("redacted_thinking"), "data": maybe(texts)}),
        obj({"type": st.sampled_from(["server_tool_use", "web_search_tool_result", "search_result", "container_upload",
                                      "mcp_tool_use", "image_url", "", "TEXT"])},
            {"id": wrong, "content": wrong, "source": wrong, "text": wrong}),
        wrong,
    )


anthropic_block = st.recursive(st.just({"type": "text", "text": "hi"}), _block, max_leaves=5)

anthropic_message = obj(
    {"role": st.one_of(st.sampled_from(["user", "assistant", "system", "tool"]), wrong),
     "content": st.one_of(texts, st.lists(anthropic_block, max_size=4), wrong)},
)

#: a tool round trip in Anthropic's shape, so tool_use/tool_result pairing code runs
anthropic_paired = st.builds(
    lambda tid, name, inp, result: [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": tid, "name": name, "input": inp}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tid, "content": result}]},
    ],
    maybe(st.from_regex(r"toolu_[A-Za-z0-9]{1,10}", fullmatch=True)), maybe(texts), maybe(st.just({"city": "Paris"})),
    st.one_of(texts, st.lists(anthropic_block, max_size=2), wrong),
)

anthropic_tool = st.one_of(
    obj({"name": maybe(texts), "input_schema": json_schemas}, {"description": maybe(texts), "cache_control": _cache_control,
                                                               "type": maybe(st.just("custom"))}),
    obj({"type": st.sampled_from(["web_search_20250305", "bash_20250124", "text_editor_20250429", "computer_20250124"]),
         "name": maybe(texts)}, {"max_uses": counts}),
    wrong,
)

anthropic_tool_choice = st.one_of(
    obj({"type": maybe(st.sampled_from(["auto", "any", "tool", "none", "required"]))},
        {"name": maybe(texts), "disable_parallel_tool_use": booleans}),
    wrong,
)

anthropic_thinking = st.one_of(
    obj({"type": maybe(st.sampled_from(["enabled", "disabled", "adaptive"]))}, {"budget_tokens": counts}),
    wrong,
)

anthropic_system = st.one_of(
    texts,
    st.lists(st.one_of(obj({"type": maybe(st.just("text")), "text": maybe(texts)}, {"cache_control": _cache_control}), wrong),
             max_size=3),
    wrong,
)

_anthropic_optional: dict[str, st.SearchStrategy[Any]] = {
    "system": anthropic_system,
    "stream": booleans,
    "temperature": temperature,
    "top_p": temperature,
    "top_k": counts,
    "stop_sequences": st.one_of(st.lists(texts, max_size=5), wrong),
    "tools": st.one_of(st.lists(anthropic_tool, max_size=3), wrong),
    "tool_choice": anthropic_tool_choice,
    "thinking": anthropic_thinking,
    "metadata": st.one_of(obj(optional={"user_id": maybe(texts)}), wrong),
    "service_tier": maybe(texts),
    "output_config": wrong,
    "output_format": wrong,
    "container": wrong,
    "mcp_servers": wrong,
    "context_management": wrong,
    "cache_control": wrong,
}

anthropic_body = st.one_of(
    obj({"model": maybe(any_model), "max_tokens": st.one_of(st.integers(1, 4096), counts),
         "messages": st.one_of(st.lists(st.one_of(anthropic_message, wrong), min_size=1, max_size=4), anthropic_paired,
                               wrong)},
        _anthropic_optional),
    st.builds(lambda m, k, v: {"model": m, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}], k: v},
              any_model, st.sampled_from(sorted(_anthropic_optional)), st.one_of(*_anthropic_optional.values())),
    obj(optional={"model": maybe(any_model), "max_tokens": counts, "messages": wrong}),
)

#: count_tokens takes a Messages body without max_tokens (and refuses generation fields)
count_tokens_body = st.one_of(
    anthropic_body,
    anthropic_body.map(lambda b: {k: v for k, v in b.items() if k != "max_tokens"} if isinstance(b, dict) else b),
)

# ------------------------------------------------------------------------------- valid requests + mutations
#
# The "maybe wrong everywhere" bodies above are mostly refused by the first validation (one
# wrong field in ten is enough). To reach the translators, the request builders and the
# response paths, most examples are instead a *valid* request (rich: parts, tools, tool round
# trips, schemas, streaming) with 0-3 mutations at random places in its JSON tree.

PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
PDF_B64 = "JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PD4+CmVuZG9iagp0cmFpbGVyCjw8Pj4KJSVFT0YK"
good_models = st.one_of(st.sampled_from(GOOD_MODELS), st.sampled_from(GOOD_MODELS), st.sampled_from(FEATURE_MODELS))
names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,15}", fullmatch=True)
some_text = st.text(min_size=1, max_size=30)


def _valid_schema(inner: st.SearchStrategy[JSON]) -> st.SearchStrategy[JSON]:
    return st.one_of(
        st.builds(lambda props, req: {"type": "object", "properties": props,
                                      "required": [k for k in props if req], "additionalProperties": False},
                  st.dictionaries(names, inner, min_size=1, max_size=3), st.booleans()),
        st.builds(lambda it: {"type": "array", "items": it}, inner),
        st.builds(lambda alts: {"anyOf": alts}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda t: {"type": [t, "null"]}, st.sampled_from(["string", "integer", "number", "boolean"])),
        st.builds(lambda d: {"type": "string", "description": d}, some_text),
    )


valid_schema_leaf = st.one_of(
    st.sampled_from([{"type": "string"}, {"type": "integer"}, {"type": "number", "minimum": 0}, {"type": "boolean"},
                     {"type": "string", "enum": ["a", "b"]}, {"type": "string", "format": "date-time"}, {"type": "null"}]),
)
valid_object_schema = st.one_of(
    st.builds(lambda props: {"type": "object", "properties": props, "required": sorted(props)[:1]},
              st.dictionaries(names, st.recursive(valid_schema_leaf, _valid_schema, max_leaves=5), min_size=1, max_size=3)),
    st.just({"type": "object", "properties": {"where": {"$ref": "#/$defs/place"}}, "required": ["where"],
             "$defs": {"place": {"type": "object", "properties": {"lat": {"type": "number"}}}}}),
    st.just({"type": "object", "properties": {}}),
)

_b64_audio = st.sampled_from(["UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA=", "SUQz"])
valid_part = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, some_text),
    st.builds(lambda u, d: {"type": "image_url", "image_url": {"url": u, "detail": d}},
              st.sampled_from(["https://example.com/cat.png", "data:image/png;base64," + PNG_B64,
                               "https://example.com/photo.jpg?x=1", "gs://bucket/img.webp"]),
              st.sampled_from(["auto", "low", "high"])),
    st.builds(lambda d, f: {"type": "input_audio", "input_audio": {"data": d, "format": f}}, _b64_audio,
              st.sampled_from(["wav", "mp3"])),
    st.just({"type": "file", "file": {"file_data": "data:application/pdf;base64," + PDF_B64, "filename": "a.pdf"}}),
)
valid_tool_def = st.builds(
    lambda n, d, p, strict: {"type": "function", "function": {"name": n, "description": d, "parameters": p, "strict": strict}},
    names, some_text, valid_object_schema, st.booleans(),
)


@st.composite
def valid_chat_body(draw: Callable[[st.SearchStrategy[Any]], Any]) -> JSON:
    msgs: list[JSON] = []
    if draw(st.booleans()):
        msgs.append({"role": draw(st.sampled_from(["system", "developer"])),
                     "content": draw(st.one_of(some_text, st.lists(st.builds(lambda t: {"type": "text", "text": t}, some_text),
                                                                    min_size=1, max_size=2)))})
    for _ in range(draw(st.integers(0, 2))):  # earlier turns
        msgs.append({"role": "user", "content": draw(st.one_of(some_text, st.lists(valid_part, min_size=1, max_size=3)))})
        msgs.append({"role": "assistant", "content": draw(some_text)})
    tools = draw(st.lists(valid_tool_def, max_size=3, unique_by=lambda t: t["function"]["name"]))
    if tools and draw(st.booleans()):  # a tool round trip, possibly parallel calls
        calls = [{"id": f"call_{i}{draw(names)}", "type": "function",
                  "function": {"name": t["function"]["name"], "arguments": draw(st.builds(orjson.dumps, st.dictionaries(
                      names, scalars, max_size=3)).map(bytes.decode))}}
                 for i, t in enumerate(draw(st.lists(st.sampled_from(tools), min_size=1, max_size=3)))]
        msgs.append({"role": "user", "content": draw(some_text)})
        msgs.append({"role": "assistant", "content": draw(st.one_of(st.none(), some_text)), "tool_calls": calls})
        for c in calls:
            msgs.append({"role": "tool", "tool_call_id": c["id"],
                         "content": draw(st.one_of(some_text, st.lists(st.builds(lambda t: {"type": "text", "text": t}, some_text),
                                                                        min_size=1, max_size=2)))})
    else:
        msgs.append({"role": "user", "content": draw(st.one_of(some_text, st.lists(valid_part, min_size=1, max_size=3)))})
    body: JSON = {"model": draw(good_models), "messages": msgs}
    if tools:
        body["tools"] = tools
        body["tool_choice"] = draw(st.one_of(
            st.sampled_from(["auto", "none", "required"]),
            st.sampled_from(tools).map(lambda t: {"type": "function", "function": {"name": t["function"]["name"]}})))
        if draw(st.booleans()):
            body["parallel_tool_calls"] = draw(st.booleans())
    opt = draw(st.fixed_dictionaries({}, optional={
        "stream": st.booleans(),
        "stream_options": st.builds(lambda b: {"include_usage": b}, st.booleans()),
        "n": st.integers(1, 3),
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0, 1),
        "max_tokens": st.integers(1, 4096),
        "max_completion_tokens": st.integers(1, 4096),
        "presence_penalty": st.floats(-2, 2),
        "frequency_penalty": st.floats(-2, 2),
        "seed": st.integers(-(2**63), 2**63 - 1),
        "stop": st.one_of(some_text, st.lists(some_text, min_size=1, max_size=4)),
        "response_format": st.one_of(
            st.just({"type": "text"}), st.just({"type": "json_object"}),
            st.builds(lambda n, s, strict: {"type": "json_schema", "json_schema": {"name": n, "schema": s, "strict": strict}},
                      names, valid_object_schema, st.booleans())),
        "reasoning_effort": st.sampled_from(["minimal", "low", "medium", "high", "none"]),
        "logprobs": st.booleans(),
        "top_logprobs": st.integers(0, 20),
        "logit_bias": st.dictionaries(st.integers(0, 100000).map(str), st.integers(-100, 100), max_size=2),
        "user": some_text,
        "metadata": st.dictionaries(names, some_text, max_size=2),
        "store": st.booleans(),
        "service_tier": st.sampled_from(["auto", "default", "flex"]),
        "top_k": st.integers(1, 100),
    }))
    body.update(opt)
    return body


valid_completions_body = st.builds(
    lambda m, p, opt: {"model": m, "prompt": p, **opt},
    good_models,
    st.one_of(some_text, st.lists(some_text, min_size=1, max_size=3), st.lists(st.integers(0, 50000), min_size=1, max_size=4)),
    st.fixed_dictionaries({}, optional={"stream": st.booleans(), "stream_options": st.builds(lambda b: {"include_usage": b}, st.booleans()),
                                        "max_tokens": st.integers(1, 512), "temperature": st.floats(0, 2), "n": st.integers(1, 3),
                                        "echo": st.booleans(), "suffix": some_text, "logprobs": st.integers(0, 5),
                                        "stop": st.lists(some_text, min_size=1, max_size=4), "seed": st.integers(0, 2**31)}),
)

valid_embeddings_body = st.builds(
    lambda m, i, opt: {"model": m, "input": i, **opt},
    st.one_of(st.sampled_from(EMBEDDING_MODELS), st.sampled_from(EMBEDDING_MODELS), good_models),
    st.one_of(some_text, st.lists(some_text, min_size=1, max_size=4), st.lists(st.integers(0, 50000), min_size=1, max_size=4),
              st.lists(st.lists(st.integers(0, 50000), min_size=1, max_size=4), min_size=1, max_size=3)),
    st.fixed_dictionaries({}, optional={"encoding_format": st.sampled_from(["float", "base64"]), "dimensions": st.integers(1, 3072),
                                        "user": some_text}),
)

_a_text = st.builds(lambda t: {"type": "text", "text": t}, some_text)
_a_text_cc = st.builds(lambda t, cc: {"type": "text", "text": t, **({"cache_control": {"type": "ephemeral"}} if cc else {})},
                       some_text, st.booleans())
_a_user_block = st.one_of(
    _a_text_cc,
    st.just({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}}),
    st.just({"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}),
    st.just({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF_B64}}),
    st.just({"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain doc"}}),
)
valid_anthropic_tool = st.builds(lambda n, d, s: {"name": n, "description": d, "input_schema": s}, names, some_text,
                                 valid_object_schema)


@st.composite
def valid_anthropic_body(draw: Callable[[st.SearchStrategy[Any]], Any]) -> JSON:
    msgs: list[JSON] = []
    for _ in range(draw(st.integers(0, 2))):
        msgs.append({"role": "user", "content": draw(st.one_of(some_text, st.lists(_a_user_block, min_size=1, max_size=3)))})
        blocks = draw(st.lists(_a_text, min_size=1, max_size=2))
        if draw(st.booleans()):
            blocks.insert(0, {"type": "thinking", "thinking": draw(some_text), "signature": "sig"})
        msgs.append({"role": "assistant", "content": draw(st.one_of(some_text, st.just(blocks)))})
    tools = draw(st.lists(valid_anthropic_tool, max_size=3, unique_by=lambda t: t["name"]))
    if tools and draw(st.booleans()):
        uses = [{"type": "tool_use", "id": f"toolu_{i}{draw(names)}", "name": t["name"],
                 "input": draw(st.dictionaries(names, scalars, max_size=3))}
                for i, t in enumerate(draw(st.lists(st.sampled_from(tools), min_size=1, max_size=3)))]
        msgs.append({"role": "user", "content": draw(some_text)})
        msgs.append({"role": "assistant", "content": draw(st.lists(_a_text, max_size=1)) + uses})
        results = [{"type": "tool_result", "tool_use_id": u["id"],
                    "content": draw(st.one_of(some_text, st.lists(_a_text, min_size=1, max_size=2))),
                    **({"is_error": True} if draw(st.booleans()) else {})} for u in uses]
        msgs.append({"role": "user", "content": results + draw(st.lists(_a_text, max_size=1))})
    else:
        msgs.append({"role": "user", "content": draw(st.one_of(some_text, st.lists(_a_user_block, min_size=1, max_size=3)))})
    body: JSON = {"model": draw(good_models), "max_tokens": draw(st.integers(1, 8192)), "messages": msgs}
    if tools:
        body["tools"] = tools
        if draw(st.booleans()):
            body["tool_choice"] = draw(st.one_of(
                st.builds(lambda t, d: {"type": t, "disable_parallel_tool_use": d}, st.sampled_from(["auto", "any", "none"]),
                          st.booleans()),
                st.sampled_from(tools).map(lambda t: {"type": "tool", "name": t["name"]})))
    opt = draw(st.fixed_dictionaries({}, optional={
        "system": st.one_of(some_text, st.lists(_a_text_cc, min_size=1, max_size=2)),
        "stream": st.booleans(),
        "temperature": st.floats(0, 1),
        "top_p": st.floats(0, 1),
        "top_k": st.integers(1, 100),
        "stop_sequences": st.lists(some_text, max_size=3),
        "thinking": st.one_of(st.builds(lambda b: {"type": "enabled", "budget_tokens": b}, st.integers(1024, 32000)),
                              st.just({"type": "disabled"})),
        "metadata": st.builds(lambda u: {"user_id": u}, some_text),
        "service_tier": st.sampled_from(["auto", "standard_only"]),
    }))
    body.update(opt)
    return body


def _tree_paths(v: JSON, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(v, dict):
        for k, x in v.items():
            out += _tree_paths(x, (*prefix, k))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            out += _tree_paths(x, (*prefix, i))
    return out


def _replace(v: JSON, path: tuple[Any, ...], new: Callable[[JSON], JSON | None]) -> JSON:
    """`v` with the node at `path` replaced by new(old) (None from new() deletes it)."""
    if not path:
        return new(v)
    head, rest = path[0], path[1:]
    if isinstance(v, dict):
        out = dict(v)
        r = _replace(v[head], rest, new)
        if r is None and not rest:
            out.pop(head)
        else:
            out[head] = r
        return out
    out_l = list(v)
    r = _replace(v[head], rest, new)
    if r is None and not rest:
        out_l.pop(head)
    else:
        out_l[head] = r
    return out_l


def _set_to(value: JSON) -> Callable[[JSON], JSON]:
    return lambda _old: value


def _add_key(key: str, value: JSON) -> Callable[[JSON], JSON]:
    return lambda old: {**old, key: value} if isinstance(old, dict) else old


@st.composite
def mutated(draw: Callable[[st.SearchStrategy[Any]], Any], base: st.SearchStrategy[JSON]) -> JSON:
    """A valid body from `base` with 0-3 mutations: a node replaced by a value of another
    type (or an edge value), deleted, emptied, wrapped in a list, or given an extra key."""
    body = draw(base)
    for _ in range(draw(st.integers(0, 3))):
        paths = _tree_paths(body)[1:]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["wrong", "wrong", "edge", "delete", "empty", "wrap", "extra", "deep"]))
        if op == "wrong":
            value = draw(wrong)
            body = _replace(body, path, _set_to(value))
        elif op == "edge":
            value = draw(st.one_of(edge_numbers, texts))
            body = _replace(body, path, _set_to(value))
        elif op == "delete":
            body = _replace(body, path, lambda _old: None) if len(path) else body
        elif op == "empty":
            body = _replace(body, path, lambda old: type(old)() if isinstance(old, (dict, list, str)) else None)
        elif op == "wrap":
            body = _replace(body, path, lambda old: [old])
        elif op == "deep":
            value = draw(deep_json)
            body = _replace(body, path, _set_to(value))
        else:
            key, value = draw(st.text(max_size=12)), draw(any_json)
            body = _replace(body, path, _add_key(key, value))
    return body

# ------------------------------------------------------------------------------- per-endpoint table

def _mix(valid: st.SearchStrategy[JSON], loose: st.SearchStrategy[JSON]) -> st.SearchStrategy[JSON]:
    # two parts mutated valid requests, one part "wrong types anywhere"
    return st.one_of(mutated(valid), mutated(valid), loose)


_count_valid = valid_anthropic_body().map(lambda b: {k: v for k, v in b.items() if k not in ("max_tokens", "stream")})

BODIES: dict[str, st.SearchStrategy[JSON]] = {
    "/v1/chat/completions": _mix(valid_chat_body(), openai_chat_body),
    "/chat/completions": _mix(valid_chat_body(), openai_chat_body),
    "/v1/completions": _mix(valid_completions_body, completions_body),
    "/v1/embeddings": _mix(valid_embeddings_body, embeddings_body),
    "/embeddings": _mix(valid_embeddings_body, embeddings_body),
    "/v1/messages": _mix(valid_anthropic_body(), anthropic_body),
    "/v1/messages/count_tokens": _mix(_count_valid, count_tokens_body),
}
POST_PATHS: list[str] = sorted(BODIES)
ANTHROPIC_PATHS: frozenset[str] = frozenset({"/v1/messages", "/v1/messages/count_tokens"})


def path_and_body(paths: list[str] | frozenset[str] = POST_PATHS) -> st.SearchStrategy[tuple[str, JSON]]:
    """(endpoint, a body for it)."""
    return st.sampled_from(sorted(paths)).flatmap(lambda p: st.tuples(st.just(p), BODIES[p]))


def endpoint_and_body() -> st.SearchStrategy[tuple[str, JSON]]:
    return path_and_body(POST_PATHS)


# ------------------------------------------------------------------------------- raw bodies

RAW_TOKENS: list[bytes] = [
    b"1e400", b"-1e400", b"1E999", b"1e309", b"123456789012345678901234567890", b"-123456789012345678901234567890",
    b"18446744073709551616", b"NaN", b"Infinity", b"-Infinity", b"nan", b"0x10", b"01", b"1.", b".5", b"+1", b"1e",
    b"-", b"--1", b"1_000", b"true1", b"nul", b"\"\\ud800\"", b"\"\\udc00\"", b"\"\\u0000\"", b"\"\\uZZZZ\"",
    b"\"\xff\xfe\"", b"\"\xed\xa0\x80\"", b"\"\xc0\xaf\"", b"\"\x00\"", b"\"\t\"", b"undefined", b"'single'",
    b"[1,]", b"{\"a\":1,}", b"[", b"{", b"]", b"\"unterminated",
]
#: (field, template) pairs: a raw token is spliced in where __RAW__ stands, so the rest of the
#: request is well formed and routes to a real upstream
RAW_TEMPLATES: list[bytes] = [
    b'{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"temperature":__RAW__}',
    b'{"model":"anthropic/claude-3-5-haiku-latest","messages":[{"role":"user","content":"hi"}],"max_tokens":__RAW__}',
    b'{"model":"gemini/gemini-2.0-flash","messages":[{"role":"user","content":"hi"}],"n":__RAW__}',
    b'{"model":"gemini/gemini-2.0-flash","messages":[{"role":"user","content":__RAW__}]}',
    b'{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"seed":__RAW__}',
    b'{"model":__RAW__,"messages":[{"role":"user","content":"hi"}]}',
    b'{"model":"anthropic/claude-3-5-haiku-latest","max_tokens":__RAW__,"messages":[{"role":"user","content":"hi"}]}',
    b'{"model":"gemini/gemini-2.0-flash","max_tokens":16,"messages":[{"role":"user","content":"hi"}],"top_k":__RAW__}',
    b'{"model":"openai/gpt-4o-mini","input":[__RAW__]}',
    b'{"model":"gemini/gemini-2.0-flash","input":__RAW__}',
    b'{"model":"openai/gpt-4o-mini","prompt":__RAW__,"max_tokens":__RAW__}',
]
#: where a deep structure is put: forwarded fields (metadata, tool schemas, arguments) and
#: fields a translator walks (content, schema)
DEEP_TEMPLATES: list[bytes] = [
    b"__RAW__",
    b'{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"metadata":{"k":__RAW__}}',
    b'{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"extra":__RAW__}',
    b'{"model":"gemini/gemini-2.0-flash","messages":[{"role":"user","content":__RAW__}]}',
    (b'{"model":"anthropic/claude-3-5-haiku-latest","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function",'
     b'"function":{"name":"f","parameters":{"type":"object","properties":{"x":__RAW__}}}}]}'),
    (b'{"model":"gemini/gemini-2.0-flash","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_schema",'
     b'"json_schema":{"name":"s","schema":{"type":"array","items":__RAW__}}}}'),
    (b'{"model":"anthropic/claude-3-5-haiku-latest","max_tokens":16,"messages":[{"role":"assistant","content":[{"type":'
     b'"tool_use","id":"toolu_1","name":"f","input":{"a":__RAW__}}]},{"role":"user","content":"hi"}]}'),
    b'{"model":"openai/gpt-4o-mini","input":__RAW__}',
]


def _deep_raw(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    if kind == "object":
        return b'{"a":' * depth + b"{}" + b"}" * depth
    if kind == "schema":  # a JSON Schema nested through "items"
        return b'{"type":"array","items":' * depth + b'{"type":"string"}' + b"}" * depth
    return b"[" * depth  # never closed


deep_raw = st.builds(
    lambda tmpl, d, kind: tmpl.replace(b"__RAW__", _deep_raw(d, kind)),
    st.sampled_from(DEEP_TEMPLATES),
    st.one_of(st.integers(200, 1100), st.sampled_from([64, 65, 200, 254, 255, 256, 1023, 1024, 1025, 1100, 5000])),
    st.sampled_from(["array", "object", "schema", "unclosed"]),
)

spliced_raw = st.builds(lambda tmpl, tok: tmpl.replace(b"__RAW__", tok), st.sampled_from(RAW_TEMPLATES),
                        st.sampled_from(RAW_TOKENS))


def dump_json(v: JSON) -> bytes:
    """The JSON text of `v`. orjson writes at most 255 levels; deeper structures (which the
    gateway must still cope with: orjson *reads* 1024) go through the standard library."""
    try:
        return orjson.dumps(v)
    except TypeError:
        return json.dumps(v, ensure_ascii=False, allow_nan=False).encode()


_serialize = dump_json


truncated_json = st.builds(lambda b, cut: b[: max(0, min(len(b) - 1, int(len(b) * cut)))],
                           endpoint_and_body().map(lambda pb: _serialize(pb[1])), st.floats(0, 1))

invalid_utf8 = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda b: b'{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"' + b + b'"}]}',
              st.sampled_from([b"\xff", b"\xfe\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80abc", b"\xc0\xaf"])),
    st.builds(lambda b: b'{"model":"gemini/' + b + b'","messages":[{"role":"user","content":"hi"}]}',
              st.sampled_from([b"\xff", b"\xc3(", b"\x00", b"\xe2\x82"])),
    st.builds(lambda b: b"\xef\xbb\xbf" + b, st.just(b'{"model":"openai/gpt-4o-mini","messages":[]}')),  # a BOM
    st.builds(lambda s: s.encode("utf-16"), st.just('{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}')),
)

#: well-formed JSON documents in odd spellings: duplicate keys, whitespace, a second document
odd_json = st.sampled_from([
    b'{"model":"openai/gpt-4o-mini","model":5,"messages":[{"role":"user","content":"hi"}]}',
    b'{"model":5,"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}',
    b'{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]} {"x":1}',
    b'  \n\t{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}\n\n  ',
    b'{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}\x00',
    b"null", b"[]", b"{}", b"0", b'""', b"true", b" ", b"\x00", b"\n",
    b'{"model":"anthropic/claude-3-5-haiku-latest","max_tokens":16,"messages":[{"role":"user","content":"\\u0000"}]}',
    b'{"model":"gemini/gemini-2.0-flash","messages":[{"role":"user","content":"' + b"\\u00e9" * 2000 + b'"}]}',
])

raw_bodies: st.SearchStrategy[bytes] = st.one_of(deep_raw, spliced_raw, truncated_json, invalid_utf8, odd_json,
                                                 any_json.map(_serialize))

# ------------------------------------------------------------------------------- Content-Encoding


def _bomb(n: int) -> bytes:
    return gzip.compress(b'{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"' + b"a" * n + b'"}]}')


#: (Content-Encoding header or None, how the body is transformed)
ENCODINGS: list[tuple[str | None, Callable[[bytes], bytes]]] = [
    (None, lambda b: b),
    ("gzip", gzip.compress),
    ("gzip", lambda b: b),  # claims gzip, is not
    ("gzip", lambda b: gzip.compress(b)[: max(1, len(gzip.compress(b)) // 2)]),  # truncated gzip stream
    ("gzip", lambda b: gzip.compress(b) + b"trailing junk"),
    ("gzip", lambda b: _bomb(4 * 1024 * 1024)),  # 4 MiB once inflated: over the test's body limit
    ("gzip", lambda b: gzip.compress(gzip.compress(b))),  # gzip twice, declared once
    ("deflate", zlib.compress),
    ("deflate", lambda b: b),
    ("GZIP", gzip.compress),
    ("gzip, gzip", lambda b: gzip.compress(gzip.compress(b))),
    ("gzip, identity", gzip.compress),
    ("identity", lambda b: b),
    ("br", lambda b: b),
    ("zstd", lambda b: b),
    ("compress", lambda b: b),
    ("x-junk", lambda b: b),
    ("", lambda b: b),
]
encodings = st.sampled_from(range(len(ENCODINGS)))

# ------------------------------------------------------------------------------- headers

#: characters aiohttp's client refuses in a header (RFC 9110 forbids them): they are sent by
#: the raw-socket client instead
_FORBIDDEN = {chr(c) for c in [*range(0x09), *range(0x0A, 0x20), 0x7F]}
header_text = st.text(st.characters(exclude_characters=sorted(_FORBIDDEN), exclude_categories=["Cs"]), max_size=40)


def authorization(master: str) -> st.SearchStrategy[list[tuple[str, str]]]:
    """Every way of presenting (or failing to present) the master key."""
    long_junk = st.sampled_from([100, 8000, 16000, 17000, 40000]).map(lambda n: "x" * n)
    single = st.one_of(
        st.just(("Authorization", f"Bearer {master}")),
        st.just(("authorization", f"bearer {master}")),
        st.just(("Authorization", f"Bearer  {master} ")),
        st.just(("x-api-key", master)),
        st.just(("api-key", master)),
        st.builds(lambda j: ("Authorization", f"Bearer {master}{j}"), header_text),
        st.builds(lambda j: ("Authorization", f"Bearer {master} {j}"), header_text),
        st.builds(lambda j: ("Authorization", f"Bearer {j}"), header_text),
        st.builds(lambda s: ("Authorization", f"{s} {master}"),
                  st.sampled_from(["Basic", "Token", "Bearer:", "Bearer\t", "", "BEARER", "Digest", "Bearer Bearer"])),
        st.builds(lambda j: ("Authorization", f"Bearer {master}{j}"), long_junk),  # a very long header line
        st.builds(lambda j: ("x-api-key", f"{master}{j}"), long_junk),
        st.builds(lambda j: ("Authorization", j), header_text),
        st.builds(lambda j: ("x-api-key", j), header_text),
        st.just(("Authorization", "Bearer sk-mäster-ünïcode-€")),
        st.just(("Authorization", "Bearer " + master.upper())),
        st.just(("Authorization", "Bearer")),
        st.just(("Authorization", "")),
    )
    return st.lists(single, max_size=3)  # none (missing), one, or several (duplicates, conflicts)


#: headers aiohttp's client writes itself (framing): the raw-socket test sends odd ones
_CLIENT_OWNED = frozenset({"host", "content-length", "transfer-encoding", "connection", "content-encoding"})

junk_headers: st.SearchStrategy[list[tuple[str, str]]] = st.lists(
    st.one_of(
        st.tuples(st.just("anthropic-version"), st.one_of(st.sampled_from(["2023-06-01", "1999-01-01", "", "latest"]), header_text)),
        st.tuples(st.just("anthropic-beta"), st.one_of(st.sampled_from(["prompt-caching-2024-07-31", "a,b,,c", ","]), header_text)),
        st.tuples(st.just("x-request-id"), st.one_of(st.sampled_from(["a" * 200, "../../x", "<script>", "req_1", ""]), header_text)),
        st.tuples(st.just("Content-Type"), st.one_of(
            st.sampled_from(["application/json", "application/json; charset=latin-1", "text/plain", "multipart/form-data",
                             "multipart/form-data; boundary=x", "application/x-www-form-urlencoded", "application/json;;;",
                             "", "*/*", "application/json; charset=utf-16"]),
            header_text)),
        st.tuples(st.sampled_from(["Accept", "Accept-Encoding", "x-stainless-retry-count", "OpenAI-Organization",
                                   "x-goog-api-key", "Expect", "Origin", "X-Forwarded-For", "User-Agent"]), header_text),
        st.tuples(st.from_regex(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,20}", fullmatch=True), header_text),
    ).filter(lambda kv: kv[0].lower() not in _CLIENT_OWNED),
    max_size=4,
)

# ------------------------------------------------------------------------------- raw header lines

#: bytes RFC 9110 forbids in a field value (HTAB is allowed): a server must refuse the request
_CTL_BYTES: list[bytes] = [bytes([c]) for c in [*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F]]


def malformed_header_lines(master: str, marker: str) -> st.SearchStrategy[tuple[str, bytes, bool]]:
    """(kind, one raw header line without its CRLF, whether the server must answer 400).

    Every line carries a credential or a marker, so the test can check that the answer does
    not quote the line back (aiohttp's own 400 page quotes the offending line)."""
    key = master.encode()
    mark = marker.encode()
    name = st.sampled_from([b"Authorization", b"x-api-key", b"X-Custom", b"anthropic-version", b"x-request-id",
                            b"Content-Type"])

    def value(secret: bytes) -> bytes:
        return b"Bearer " + secret if secret == key else secret

    must_reject = st.one_of(
        # a control character inside the value (NUL, ESC, DEL, a bare CR, ...)
        st.builds(lambda n, s, c, pos: ("ctl-in-value", n + b": " + value(s)[:pos] + c + value(s)[pos:], True),
                  name, st.sampled_from([key, mark]), st.sampled_from([*_CTL_BYTES, b"\r"]), st.integers(0, 60)),
        # a bare LF followed by a line without a colon: refused as a bare LF or as a line without a colon
        st.builds(lambda n, s: ("bare-lf", n + b": Bearer\n" + s, True), name, st.sampled_from([key, mark])),
        # a bad field name: whitespace before the colon, a separator or control character in the name, no name
        st.builds(lambda n, s, bad: ("bad-name", n[:2] + bad + n[2:] + b": " + value(s), True),
                  name, st.sampled_from([key, mark]), st.sampled_from([b" ", b"\x00", b"(", b"\"", b"@", b"\x7f", b"\t", b"/"])),
        st.builds(lambda n, s: ("space-before-colon", n + b" : " + value(s), True), name, st.sampled_from([key, mark])),
        st.builds(lambda s: ("empty-name", b": " + value(s), True), st.sampled_from([key, mark])),
        st.builds(lambda s: ("no-colon", b"Authorization " + value(s), True), st.sampled_from([key, mark])),
        # a header line longer than the server's limit (the gateway sets max_field_size 16384)
        st.builds(lambda n, s, k: ("too-long", n + b": " + value(s) + b"x" * k, True),
                  name, st.sampled_from([key, mark]), st.sampled_from([16400, 20000, 70000])),
        st.builds(lambda s, k: ("long-name", b"X" * k + b": " + value(s), True), st.sampled_from([key, mark]),
                  st.sampled_from([16400, 20000])),
        # framing the server cannot trust: a bad or doubled Content-Length, with the secret next to it
        st.builds(lambda s, cl: ("bad-content-length", b"Content-Length: " + cl + b"\r\nX-Secret: " + value(s), True),
                  st.sampled_from([key, mark]), st.sampled_from([b"abc", b"-1", b"1 2", b"0x10", b"+5", b"99999999999999999999",
                                                                 b"1e3", b""])),
    )
    tolerated = st.one_of(
        # obs-text (bytes 0x80-0xFF) is legal in a value; invalid UTF-8 too, as far as HTTP goes
        st.builds(lambda n, s, b: ("obs-text", n + b": " + value(s) + b, False), name, st.sampled_from([key, mark]),
                  st.binary(min_size=1, max_size=20).map(lambda b: bytes(x | 0x80 for x in b))),
        st.builds(lambda s, b: ("latin-1-key", b"Authorization: Bearer " + b + s, False), st.sampled_from([key, mark]),
                  st.sampled_from(["é".encode("latin-1"), "ü€".encode(), b"\xff\xfe", b"\xc3(", b"\xed\xa0\x80"])),
        # obs-fold: RFC 9112 lets a server refuse it or unfold it
        st.builds(lambda n, s: ("obs-fold", n + b": a\r\n " + value(s), False), name, st.sampled_from([key, mark])),
        st.builds(lambda s: ("tab-value", b"Authorization:\tBearer\t" + s, False), st.sampled_from([key, mark])),
    )
    return st.one_of(must_reject, tolerated)
