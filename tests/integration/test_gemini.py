"""The official openai SDK through the gateway against a fake Gemini Developer API upstream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
import pytest_asyncio

from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.gemini import API_KEY, FakeGemini
from tests.streams import collect, text_of

MSGS: list[Any] = [{"role": "user", "content": "Say hello"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "strict": True,
        "parameters": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": ["string", "null"], "enum": ["c", "f", None]},
                "where": {"$ref": "#/$defs/place"},
            },
            "required": ["city", "unit", "where"],
            "additionalProperties": False,
            "$defs": {"place": {"type": "object", "properties": {"lat": {"type": "number"}},
                                "required": ["lat"], "additionalProperties": False}},
        },
    },
}
TIME_TOOL = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


@pytest_asyncio.fixture
async def gemini_fake() -> AsyncIterator[FakeGemini]:
    fake = FakeGemini()
    await fake.start()
    yield fake
    await fake.stop()


def env(fake: FakeGemini, key: str = API_KEY) -> dict[str, str]:
    return {"GEMINI_API_KEY": key, "GEMINI_BASE_URL": fake.url, "UNIGATE_MASTER_KEY": "sk-master-test"}


@pytest_asyncio.fixture
async def gw(start_gateway: GatewayFactory, gemini_fake: FakeGemini) -> RunningGateway:
    return await start_gateway(env=env(gemini_fake))


def client(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="sk-master-test", max_retries=0)


# ------------------------------------------------------------------ chat


async def test_chat_maps_roles_config_and_usage(gw: RunningGateway, gemini_fake: FakeGemini) -> None:
    msgs = [
        {"role": "system", "content": "You are terse."},
        {"role": "developer", "content": [{"type": "text", "text": "No emoji."}]},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Say hello"},
    ]
    r = await client(gw).chat.completions.create(
        model="gemini/gemini-2.5-flash", messages=msgs, temperature=0.3, top_p=0.9, max_tokens=64,
        stop=["END"], seed=7, presence_penalty=0.5, frequency_penalty=0.25,
    )
    assert r.choices[0].message.content == "Hello from gemini-2.5-flash!"
    assert r.choices[0].finish_reason == "stop" and r.model == "gemini-2.5-flash"
    assert r.usage is not None and (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (12, 5, 17)
    sent = gemini_fake.last
    assert sent.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent.headers["x-goog-api-key"] == API_KEY and "Authorization" not in sent.headers
    body = sent.json
    assert body["systemInstruction"] == {"parts": [{"text": "You are terse."}, {"text": "No emoji."}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["contents"][1]["parts"] == [{"text": "Hello."}]
    assert body["generationConfig"] == {"temperature": 0.3, "topP": 0.9, "maxOutputTokens": 64, "stopSequences": ["END"],
                                        "seed": 7, "presencePenalty": 0.5, "frequencyPenalty": 0.25}
    await gw.gateway.ledger.flush()
    rec = gw.gateway.ledger.recent[-1]
    assert rec.provider == "gemini" and rec.usage_known and rec.prompt_tokens == 12 and rec.completion_tokens == 5


async def test_api_version_is_configurable(start_gateway: GatewayFactory, gemini_fake: FakeGemini) -> None:
    gw = await start_gateway({"providers": {"gemini": {"options": {"api_version": "v1"}}}}, env=env(gemini_fake))
    r = await client(gw).chat.completions.create(model="gemini/gemini-2.5-flash", messages=MSGS,
                                                 max_completion_tokens=10)
    assert r.choices[0].message.content == "Hello from gemini-2.5-flash!"
    assert gemini_fake.last.path == "/v1/models/gemini-2.5-flash:generateContent"
    assert gemini_fake.last.json["generationConfig"] == {"maxOutputTokens": 10}


async def test_google_api_key_env_also_works(start_gateway: GatewayFactory, gemini_fake: FakeGemini) -> None:
    gw = await start_gateway(env={"GOOGLE_API_KEY": API_KEY, "GEMINI_BASE_URL": gemini_fake.url + "/"})
    c = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)
    r = await c.chat.completions.create(model="gemini/gemini-2.0-flash", messages=MSGS)
    assert r.choices[0].message.content == "Hello from gemini-2.0-flash!"
    assert gemini_fake.last.path == "/v1beta/models/gemini-2.0-flash:generateContent"
    assert gemini_fake.last.headers["x-goog-api-key"] == API_KEY


async def test_n_becomes_candidate_count(gw: RunningGateway, gemini_fake: FakeGemini) -> None:
    r = await client(gw).chat.completions.create(model="gemini/gemini-2.5-flash", messages=MSGS, n=2)
    assert [c.index for c in r.choices] == [0, 1]
    assert gemini_fake.last.json["generationConfig"]["candidateCount"] == 2


async def test_dropped_params_are_reported(gw: RunningGateway) -> None:
    raw = await client(gw).chat.completions.with_raw_response.create(
        model="gemini/gemini-2.5-flash", messages=MSGS, logit_bias={"42": 1}, user="u-1")
    assert raw.headers["x-unigate-dropped-params"] == "logit_bias,user"
    assert raw.parse().choices[0].message.content == "Hello from gemini-2.5-flash!"


# ------------------------------------------------------------------ streaming


async def test_stream_text_and_usage(gw: RunningGateway, gemini_fake: FakeGemini) -> None:
    stream = await client(gw).chat.completions.create(
        model="gemini/gemini-2.5-flash", messages=MSGS, stream=True, stream_options={"include_usage": True})
    chunks = await collect(stream)
    assert text_of(chunks) == "Hello from gemini-2.5-flash!"
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 17
    sent = gemini_fake.last
    assert sent.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent" and sent.query == {"alt": "sse"}
    assert sent.headers["x-goog-api-key"] == API_KEY


async def test_stream_without_usage_hides_usage_but_records_it(gw: RunningGateway) -> None:
    chunks = await collect(await client(gw).chat.completions.create(
        model="gemini/gemini-2.5-flash", messages=MSGS, stream=True))
    assert all(c.choices for c in chunks)
    await gw.gateway.ledger.flush()
    rec = gw.gateway.ledger.recent[-1]
    assert rec.usage_known and rec.prompt_tokens == 12 and rec.completion_tokens == 5


async def test_stream_split_across_reads_with_crlf_and_comments(gw: RunningGateway) -> None:
    chunks = await collect(await client(gw).chat.completions.create(
        model="gemini/ragged", messages=MSGS, stream=True))
    assert text_of(chunks) == "Hello from ragged!"
    assert chunks[-1].choices[0].finish_reason == "stop"


# ------------------------------------------------------------------ tools


async def test_tools_translate_schema_and_tool_choice(gw: RunningGateway, gemini_fake: FakeGemini) -> None:
    r = await client(gw).chat.completions.create(
        model="gemini/tools", messages=MSGS, tools=[WEATHER_TOOL, TIME_TOOL], tool_choice="required")  # type: ignore[list-item]
    msg = r.choices[0].message
    assert r.choices[0].finish_reason == "tool_calls" and msg.content is None
    assert msg.tool_calls is not None and len(msg.tool_calls) == 1
    tc = msg.tool_calls[0]
    assert tc.type == "function" and tc.function.name == "get_weather"
    assert json.loads(tc.function.arguments) == {"city": "Paris"}
    assert tc.id.startswith("call_") and len(tc.id) == 29
    assert (tc.model_extra or {})["extra_content"] == {"google": {"thought_signature": "c2lnLWFiYw=="}}
    body = gemini_fake.last.json
    decls = body["tools"][0]["functionDeclarations"]
    assert decls[0] == {"name": "get_weather", "description": "Weather for a city", "parameters": {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name"},
            "unit": {"type": "string", "nullable": True, "enum": ["c", "f"]},
            "where": {"type": "object", "properties": {"lat": {"type": "number"}}, "required": ["lat"]},
        },
        "required": ["city", "unit", "where"],
    }}
    assert decls[1] == {"name": "get_time"}  # an empty OBJECT is refused by Gemini: no parameters at all
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    # the same answer twice gets the same synthesised id
    r2 = await client(gw).chat.completions.create(model="gemini/tools", messages=MSGS, tools=[WEATHER_TOOL])  # type: ignore[list-item]
    assert r2.choices[0].message.tool_calls[0].id == tc.id  # type: ignore[index]
    assert "toolConfig" not in gemini_fake.last.json


async def test_named_tool_choice(gw: RunningGateway, gemini_fake: FakeGemini) -> None:
    await client(gw).chat.completions.create(
        model="gemini/tools", messages=MSGS, tools=[WEATHER_TOOL, TIME_TOOL],  # type: ignore[list-item]
        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    assert gemini_fake.last.json["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}
    await client(gw).chat.completions.create(model="gemini/gemini-2.5-flash", messages=MSGS,
                                             tools=[WEATHER_TOOL], tool_choice="none")  # type: ignore[list-item]
    assert gemini_fake.last.json["toolConfig"] == {"functionCallingConfig": {"mode": "NONE"}}


async def test_stream_function_call_then_stop_in_separate_chunk(gw: RunningGateway) -> None:
    chunks = await collect(await client(gw).chat.completions.create(
        model="gemini/tools", messages=MSGS, tools=[WEATHER_TOOL], stream=True))  # type: ignore[list-item]
    deltas = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ()]
    assert len(deltas) == 1  # the whole call in one delta
    d = deltas[0]
    assert d.index == 0 and d.id and d.id.startswith("call_") and d.type == "function"
    assert d.function.name == "get_weather" and json.loads(d.function.arguments) == {"city": "Paris"}
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["tool_calls"]  # STOP came in a later chunk than the call


async def test_stream_parallel_calls(gw: RunningGateway) -> None:
    chunks = await collect(await client(gw).chat.completions.create(
        model="gemini/parallel", messages=MSGS, tools=[WEATHER_TOOL, TIME_TOOL], stream=True))  # type: ignore[list-item]
    deltas = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ()]
    assert [(d.index, d.function.name) for d in deltas] == [(0, "get_weather"), (1, "get_time")]
    assert deltas[0].id != deltas[1].id
    assert json.loads(deltas[1].function.arguments) == {"city": "Paris", "utc": True}


async def test_tool_results_round_trip(gw: RunningGateway, gemini_fake: FakeGemini) -> None:
    c = client(gw)
    first = await c.chat.completions.create(model="gemini/parallel", messages=MSGS, tools=[WEATHER_TOOL, TIME_TOOL])  # type: ignore[list-item]
    calls = first.choices[0].message.tool_calls
    assert calls is not None and len(calls) == 2
    history: list[Any] = [*MSGS, first.choices[0].message.model_dump(exclude_none=True),
                          {"role": "tool", "tool_call_id": calls[0].id, "content": '{"temp_c": 21}'},
                          {"role": "tool", "tool_call_id": calls[1].id, "content": "10:00"}]
    r = await c.chat.completions.create(model="gemini/parallel", messages=history, tools=[WEATHER_TOOL, TIME_TOOL])  # type: ignore[list-item]
    assert r.choices[0].message.content == 'get_weather said {"temp_c":21}; get_time said {"result":"10:00"}'
    contents = gemini_fake.last.json["contents"]
    assert [t["role"] for t in contents] == ["user", "model", "user"]
    assert contents[1]["parts"] == [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2lnLWFiYw=="},
        {"functionCall": {"name": "get_time", "args": {"city": "Paris", "utc": True}}},
    ]
    assert contents[2]["parts"] == [  # both results in one user turn, names found from the call ids
        {"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}},
        {"functionResponse": {"name": "get_time", "response": {"result": "10:00"}}},
    ]


async def test_tool_result_for_unknown_call_is_a_clear_400(gw: RunningGateway, gemini_fake: FakeGemini) -> None:
    n = len(gemini_fake.requests)
    with pytest.raises(openai.BadRequestError) as ei:
        await client(gw).chat.completions.create(model="gemini/gemini-2.5-flash", messages=[
            *MSGS, {"role": "tool", "tool_call_id": "call_nope", "content": "x"}])
    assert "call_nope" in ei.value.message and ei.value.param == "messages[1].tool_call_id"
    assert len(gemini_fake.requests) == n  # refused before reaching the upstream


# ------------------------------------------------------------------ vision, JSON, thinking


async def test_vision_data_url_and_http_url(gw: RunningGateway, gemini_fake: FakeGemini) -> None:
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    await client(gw).chat.completions.create(model="gemini/gemini-2.5-flash", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.PNG?size=large", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/photo"}},
    ]}])
    assert gemini_fake.last.json["contents"][0]["parts"] == [
        {"text": "What is in these?"},
        {"inlineData": {"mimeType": "image/png", "data": png}},
        {"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/cat.PNG?size=large"}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/photo"}},
    ]


async def test_json_schema_output(gw: RunningGateway, gemini_fake: FakeGemini) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "temp_c": {"type": "integer"}},
              "required": ["city", "temp_c"], "additionalProperties": False}
    r = await client(gw).chat.completions.create(model="gemini/gemini-2.5-flash", messages=MSGS, response_format={
        "type": "json_schema", "json_schema": {"name": "weather", "schema": schema, "strict": True}})
    assert json.loads(r.choices[0].message.content or "") == {"city": "Paris", "temp_c": 21}
    gen = gemini_fake.last.json["generationConfig"]
    assert gen == {"responseMimeType": "application/json", "responseSchema": {
        "type": "object", "properties": {"city": {"type": "string"}, "temp_c": {"type": "integer"}},
        "required": ["city", "temp_c"], "propertyOrdering": ["city", "temp_c"]}}
    await client(gw).chat.completions.create(model="gemini/gemini-2.5-flash", messages=MSGS,
                                             response_format={"type": "json_object"})
    assert gemini_fake.last.json["generationConfig"] == {"responseMimeType": "application/json"}


async def test_json_schema_mode_sends_json_schema(start_gateway: GatewayFactory, gemini_fake: FakeGemini) -> None:
    gw = await start_gateway({"providers": {"gemini": {"options": {"schema_mode": "json"}}}}, env=env(gemini_fake))
    schema = {"$schema": "x", "type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False}
    await client(gw).chat.completions.create(model="gemini/tools", messages=MSGS, tools=[WEATHER_TOOL], response_format={  # type: ignore[list-item]
        "type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    body = gemini_fake.last.json
    assert body["generationConfig"]["responseJsonSchema"] == {
        "type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False}
    params = body["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"]
    assert "$schema" not in params and params["additionalProperties"] is False and params["properties"]["where"] == {"$ref": "#/$defs/place"}


async def test_reasoning_effort_and_thoughts(gw: RunningGateway, gemini_fake: FakeGemini) -> None:
    r = await client(gw).chat.completions.create(model="gemini/thinking", messages=MSGS, reasoning_effort="low")
    msg = r.choices[0].message
    assert msg.content == "42" and (msg.model_extra or {})["reasoning_content"] == "Let me think."
    assert r.usage is not None and r.usage.completion_tokens == 11
    assert r.usage.completion_tokens_details is not None and r.usage.completion_tokens_details.reasoning_tokens == 10
    assert gemini_fake.last.json["generationConfig"] == {"thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True}}
    chunks = await collect(await client(gw).chat.completions.create(
        model="gemini/thinking", messages=MSGS, stream=True, stream_options={"include_usage": True}))
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content", "") for c in chunks if c.choices)
    assert reasoning == "Let me think." and text_of(chunks) == "42"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 11


# ------------------------------------------------------------------ stop reasons


@pytest.mark.parametrize("model,finish", [("length", "length"), ("safety", "content_filter"), ("blocked", "content_filter")])
async def test_stop_reasons(gw: RunningGateway, model: str, finish: str) -> None:
    r = await client(gw).chat.completions.create(model=f"gemini/{model}", messages=MSGS)
    assert r.choices[0].finish_reason == finish
    if model == "blocked":
        assert r.choices[0].message.refusal == "The prompt was blocked by Gemini (SAFETY)."
    chunks = await collect(await client(gw).chat.completions.create(model=f"gemini/{model}", messages=MSGS, stream=True))
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == [finish]


# ------------------------------------------------------------------ errors


def _body_message(e: openai.APIStatusError) -> str:
    assert isinstance(e.body, dict)
    return str(e.body["message"])


async def test_bad_key_400_becomes_401(start_gateway: GatewayFactory, gemini_fake: FakeGemini) -> None:
    gw = await start_gateway(env=env(gemini_fake, key="wrong-key"))
    with pytest.raises(openai.AuthenticationError) as ei:
        await client(gw).chat.completions.create(model="gemini/gemini-2.5-flash", messages=MSGS)
    assert ei.value.status_code == 401 and ei.value.code == "invalid_api_key"
    assert _body_message(ei.value).startswith("gemini: API key not valid")
    assert gemini_fake.last.headers["x-goog-api-key"] == "wrong-key"


async def test_rate_limit_keeps_retry_delay(gw: RunningGateway) -> None:
    with pytest.raises(openai.RateLimitError) as ei:
        await client(gw).chat.completions.create(model="gemini/error-429", messages=MSGS)
    assert ei.value.status_code == 429 and ei.value.response.headers["retry-after"] == "7"
    assert "exceeded your current quota" in ei.value.message


@pytest.mark.parametrize("status,expected,cls", [
    (503, 503, openai.InternalServerError), (500, 502, openai.InternalServerError),
    (504, 504, openai.InternalServerError), (403, 403, openai.PermissionDeniedError),
    (404, 404, openai.NotFoundError),
])
async def test_error_statuses(gw: RunningGateway, status: int, expected: int, cls: type[openai.APIStatusError]) -> None:
    with pytest.raises(cls) as ei:
        await client(gw).chat.completions.create(model=f"gemini/error-{status}", messages=MSGS)
    assert ei.value.status_code == expected and _body_message(ei.value).startswith("gemini: ")
    if status == 404:
        assert ei.value.code == "model_not_found"


async def test_stream_open_error_is_mapped(gw: RunningGateway) -> None:
    with pytest.raises(openai.InternalServerError) as ei:
        await client(gw).chat.completions.create(model="gemini/error-503", messages=MSGS, stream=True)
    assert ei.value.status_code == 503


@pytest.mark.parametrize("model,needle", [("midstream-error", "overloaded"), ("midstream-data-error", "quota"),
                                          ("truncated", "without a finish reason")])
async def test_midstream_errors(gw: RunningGateway, model: str, needle: str) -> None:
    stream = await client(gw).chat.completions.create(model=f"gemini/{model}", messages=MSGS, stream=True)
    got: list[str] = []
    with pytest.raises(openai.APIError) as ei:
        async for c in stream:
            got.append(c.choices[0].delta.content or "")
    assert "".join(got) == "Partial"
    assert needle in ei.value.message and ei.value.message.startswith("gemini: ")


# ------------------------------------------------------------------ embeddings


async def test_embeddings(gw: RunningGateway, gemini_fake: FakeGemini) -> None:
    r = await client(gw).embeddings.create(model="gemini/gemini-embedding-001", input=["a", "b"], dimensions=4)
    # the SDK asks for base64 by default: the gateway encodes the floats as float32, as OpenAI does
    assert [d.index for d in r.data] == [0, 1] and r.data[1].embedding == pytest.approx([0.2, 0.5, 0.5, 0.5])
    f = await client(gw).embeddings.create(model="gemini/gemini-embedding-001", input=["a", "b"], dimensions=4,
                                           encoding_format="float")
    assert f.data[1].embedding == [0.2, 0.5, 0.5, 0.5]
    sent = gemini_fake.last
    assert sent.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert sent.json == {"requests": [
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": t}]}, "outputDimensionality": 4}
        for t in ("a", "b")]}


def test_fake_refuses_what_gemini_refuses() -> None:
    """The fake's strictness is what makes the tests above meaningful."""
    from tests.fakes.gemini import check_request

    user = {"role": "user", "parts": [{"text": "hi"}]}
    params = {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False}
    tools = [{"functionDeclarations": [{"name": "f", "parameters": params}]}]
    assert "additionalProperties" in (check_request({"contents": [user], "tools": tools}) or "")
    assert "role" in (check_request({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}) or "")
    assert "function response" in (check_request({"contents": [
        user, {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]}) or "")
    assert "temperature_x" in (check_request({"contents": [user], "generationConfig": {"temperature_x": 1}}) or "")
    assert check_request({"contents": [user]}) is None


# ------------------------------------------------------------------ count_tokens (Anthropic surface)


async def test_count_tokens_is_geminis_own_count(gw: RunningGateway, gemini_fake: FakeGemini) -> None:
    """`/v1/messages/count_tokens` on a Gemini model asks Gemini (`models.countTokens`, free) for
    the count of the translated request: the prompt, system and tools, not generation settings."""
    import anthropic

    c = anthropic.AsyncAnthropic(base_url=gw.url, api_key="sk-master-test", max_retries=0)
    tool: Any = {"name": "get_time", "description": "Now", "input_schema": {"type": "object", "properties": {}}}
    raw = await c.messages.with_raw_response.count_tokens(
        model="gemini/gemini-2.5-flash", system="Be very brief.", tools=[tool],
        messages=[{"role": "user", "content": "What time is it in Oslo?"}])
    assert raw.headers["x-unigate-token-count"] == "exact"
    assert (await raw.parse()).input_tokens == 3 + 6 + 10  # the fake: a token per word, 10 per function
    sent = gemini_fake.last
    assert sent.path == "/v1beta/models/gemini-2.5-flash:countTokens"
    assert sent.headers["x-goog-api-key"] == API_KEY
    inner = sent.json["generateContentRequest"]
    assert set(sent.json) == {"generateContentRequest"} and inner["model"] == "models/gemini-2.5-flash"
    assert inner["systemInstruction"] == {"parts": [{"text": "Be very brief."}]}
    assert inner["contents"] == [{"role": "user", "parts": [{"text": "What time is it in Oslo?"}]}]
    assert inner["tools"][0]["functionDeclarations"][0]["name"] == "get_time" and "generationConfig" not in inner
    # an error from the count is the client's as any upstream error, in Anthropic's envelope
    with pytest.raises(anthropic.APIStatusError) as ei:
        await c.messages.count_tokens(model="gemini/error-400", messages=[{"role": "user", "content": "hi"}])
    assert ei.value.status_code == 400 and ei.value.body["type"] == "error"  # type: ignore[index]
