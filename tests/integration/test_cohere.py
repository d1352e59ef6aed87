"""The official openai SDK through the gateway against a fake Cohere v2 upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest
import pytest_asyncio

from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.cohere import FakeCohere

MSGS = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


@pytest_asyncio.fixture
async def cohere_fake() -> AsyncIterator[FakeCohere]:
    fake = FakeCohere(api_key="co-test-key")
    await fake.start()
    yield fake
    await fake.stop()
    assert not fake.problems, f"the gateway sent bodies Cohere would refuse: {fake.problems}"


@pytest_asyncio.fixture
async def gw(start_gateway: GatewayFactory, cohere_fake: FakeCohere) -> RunningGateway:
    return await start_gateway(env={"COHERE_API_KEY": "co-test-key", "COHERE_BASE_URL": cohere_fake.url,
                                    "UNIGATE_MASTER_KEY": "sk-master-test"})


def client(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="sk-master-test", max_retries=0)


def err_message(e: openai.APIStatusError) -> str:
    """The gateway's own error message (the SDK prefixes `.message` with the status)."""
    assert isinstance(e.body, dict)
    return str(e.body["message"])


async def test_chat_translates_request_and_response(gw: RunningGateway, cohere_fake: FakeCohere) -> None:
    r = await client(gw).chat.completions.create(
        model="cohere/command-r", messages=MSGS, temperature=0.3, top_p=0.9, max_completion_tokens=50,
        stop="\n\n", seed=7, frequency_penalty=0.1, presence_penalty=0.2,
    )
    assert r.choices[0].message.content == "Hello from command-r!"
    assert r.choices[0].finish_reason == "stop"
    assert r.model == "command-r"
    assert r.usage is not None and (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (61, 4, 65)
    assert r.usage.prompt_tokens_details is not None and r.usage.prompt_tokens_details.cached_tokens == 8
    sent = cohere_fake.last
    assert sent.path == "/v2/chat"
    assert sent.headers["Authorization"] == "Bearer co-test-key"
    assert sent.json == {
        "model": "command-r", "messages": MSGS, "max_tokens": 50, "temperature": 0.3, "p": 0.9, "seed": 7,
        "frequency_penalty": 0.1, "presence_penalty": 0.2, "stop_sequences": ["\n\n"],
    }
    await gw.gateway.ledger.flush()
    rec = gw.gateway.ledger.recent[-1]
    assert rec.provider == "cohere" and rec.prompt_tokens == 61 and rec.completion_tokens == 4 and rec.cached_tokens == 8


async def test_stream_split_reads(gw: RunningGateway, cohere_fake: FakeCohere) -> None:
    stream = await client(gw).chat.completions.create(model="cohere/command-r", messages=MSGS, stream=True)
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello from command-r!"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.choices for c in chunks), "usage-only chunk leaked to a client that did not ask"
    assert len({c.id for c in chunks}) == 1
    assert cohere_fake.last.json["stream"] is True and "stream_options" not in cohere_fake.last.json
    await gw.gateway.ledger.flush()
    rec = gw.gateway.ledger.recent[-1]
    assert rec.stream and rec.usage_known and rec.prompt_tokens == 61


async def test_stream_with_usage_chunk(gw: RunningGateway) -> None:
    stream = await client(gw).chat.completions.create(
        model="cohere/command-r", messages=MSGS, stream=True, stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 65


async def test_tools_round_trip(gw: RunningGateway, cohere_fake: FakeCohere) -> None:
    history = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "Let me check.",
         "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
        {"role": "user", "content": "And again?"},
    ]
    r = await client(gw).chat.completions.create(model="cohere/tools", messages=history,  # type: ignore[arg-type]
                                                 tools=[WEATHER], tool_choice="required")  # type: ignore[list-item]
    msg = r.choices[0].message
    assert r.choices[0].finish_reason == "tool_calls"
    assert msg.tool_calls is not None and len(msg.tool_calls) == 1
    tc = msg.tool_calls[0]
    assert (tc.id, tc.function.name, tc.function.arguments) == ("get_weather_k88p0m8504w5", "get_weather", '{"city": "Paris"}')
    assert msg.content == "I will look up the weather in Paris."  # Cohere's tool_plan
    sent = cohere_fake.last.json
    assert sent["tool_choice"] == "REQUIRED"
    assert sent["tools"] == [WEATHER]
    assert sent["messages"][1] == {"role": "assistant", "tool_plan": "Let me check.",
                                   "tool_calls": history[1]["tool_calls"]}  # type: ignore[index]
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'}


async def test_named_tool_choice_and_none(gw: RunningGateway, cohere_fake: FakeCohere) -> None:
    await client(gw).chat.completions.create(model="cohere/tools", messages=MSGS, tools=[WEATHER, TIME],  # type: ignore[list-item]
                                             tool_choice={"type": "function", "function": {"name": "get_time"}})
    assert cohere_fake.last.json["tool_choice"] == "REQUIRED"
    assert [t["function"]["name"] for t in cohere_fake.last.json["tools"]] == ["get_time"]
    await client(gw).chat.completions.create(model="cohere/command-r", messages=MSGS, tools=[WEATHER], tool_choice="none")  # type: ignore[list-item]
    assert cohere_fake.last.json["tool_choice"] == "NONE"
    await client(gw).chat.completions.create(model="cohere/command-r", messages=MSGS, tools=[WEATHER], tool_choice="auto")  # type: ignore[list-item]
    assert "tool_choice" not in cohere_fake.last.json


async def test_stream_tool_calls_in_fragments(gw: RunningGateway) -> None:
    stream = await client(gw).chat.completions.create(model="cohere/tools2", messages=MSGS, tools=[WEATHER, TIME],  # type: ignore[list-item]
                                                      stream=True)
    calls: dict[int, dict[str, str]] = {}
    text = ""
    finish = None
    async for c in stream:
        d = c.choices[0].delta
        text += d.content or ""
        for tc in d.tool_calls or ():
            slot = calls.setdefault(tc.index, {"id": "", "name": "", "args": ""})
            slot["id"] += tc.id or ""
            slot["name"] += (tc.function.name or "") if tc.function else ""
            slot["args"] += (tc.function.arguments or "") if tc.function else ""
        finish = c.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert text == "I will look up the weather in Paris."
    assert calls == {0: {"id": "get_weather_k88p0m8504w5", "name": "get_weather", "args": '{"city": "Paris"}'},
                     1: {"id": "get_time_q1w2e3r4t5y6", "name": "get_time", "args": '{"city": "Paris"}'}}


async def test_vision(gw: RunningGateway, cohere_fake: FakeCohere) -> None:
    content = [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    r = await client(gw).chat.completions.create(model="cohere/vision", messages=[{"role": "user", "content": content}])  # type: ignore[list-item, misc]
    assert r.choices[0].message.content == "I see 2 image(s)"
    assert cohere_fake.last.json["messages"][0]["content"] == content


async def test_unsupported_content_part_is_400(gw: RunningGateway, cohere_fake: FakeCohere) -> None:
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    with pytest.raises(openai.BadRequestError) as ei:
        await client(gw).chat.completions.create(model="cohere/command-r", messages=[{"role": "user", "content": [audio]}])  # type: ignore[list-item, misc]
    assert ei.value.code == "unsupported_feature" and "input_audio" in ei.value.message
    assert cohere_fake.requests == []


async def test_json_schema_and_json_object(gw: RunningGateway, cohere_fake: FakeCohere) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    r = await client(gw).chat.completions.create(
        model="cohere/json", messages=MSGS,
        response_format={"type": "json_schema", "json_schema": {"name": "place", "schema": schema, "strict": True}})
    assert r.choices[0].message.content == '{"city": "Paris"}'
    assert cohere_fake.last.json["response_format"] == {"type": "json_object", "json_schema": schema}
    await client(gw).chat.completions.create(model="cohere/json", messages=MSGS, response_format={"type": "json_object"})
    assert cohere_fake.last.json["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize("model,finish", [("max", "length"), ("stopseq", "stop"), ("command-r", "stop"), ("tools", "tool_calls")])
async def test_stop_reasons(gw: RunningGateway, model: str, finish: str) -> None:
    r = await client(gw).chat.completions.create(model=f"cohere/{model}", messages=MSGS)
    assert r.choices[0].finish_reason == finish
    stream = await client(gw).chat.completions.create(model=f"cohere/{model}", messages=MSGS, stream=True)
    finishes = [c.choices[0].finish_reason async for c in stream if c.choices]
    assert finishes[-1] == finish and all(f is None for f in finishes[:-1])


async def test_n_greater_than_one_is_unsupported(gw: RunningGateway, cohere_fake: FakeCohere) -> None:
    with pytest.raises(openai.BadRequestError) as ei:
        await client(gw).chat.completions.create(model="cohere/command-r", messages=MSGS, n=2)
    assert ei.value.code == "unsupported_feature" and ei.value.param == "n"
    assert cohere_fake.requests == []


async def test_dropped_params_are_reported(gw: RunningGateway, cohere_fake: FakeCohere) -> None:
    raw = await client(gw).chat.completions.with_raw_response.create(
        model="cohere/command-r", messages=MSGS, logit_bias={"1": 5}, user="u-1", parallel_tool_calls=True)
    assert raw.headers["x-unigate-dropped-params"] == "logit_bias,user"
    assert raw.parse().choices[0].message.content == "Hello from command-r!"


@pytest.mark.parametrize("status,exc,code", [
    (422, openai.BadRequestError, 400), (400, openai.BadRequestError, 400), (401, openai.AuthenticationError, 401),
    (498, openai.AuthenticationError, 401), (429, openai.RateLimitError, 429), (500, openai.InternalServerError, 502),
    (503, openai.InternalServerError, 503),
])
async def test_errors(gw: RunningGateway, status: int, exc: type[openai.APIStatusError], code: int) -> None:
    with pytest.raises(exc) as ei:
        await client(gw).chat.completions.create(model=f"cohere/error-{status}", messages=MSGS)
    assert ei.value.status_code == code
    assert err_message(ei.value).startswith("cohere: fake cohere error")
    if status == 429:
        assert ei.value.response.headers["retry-after"] == "7"


async def test_wrong_key_is_upstream_auth_error(start_gateway: GatewayFactory, cohere_fake: FakeCohere) -> None:
    gw = await start_gateway(env={"COHERE_API_KEY": "wrong", "COHERE_BASE_URL": cohere_fake.url})
    with pytest.raises(openai.AuthenticationError) as ei:
        await openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0).chat.completions.create(
            model="cohere/command-r", messages=MSGS)
    assert err_message(ei.value) == "cohere: invalid api token"


async def test_co_api_key_env_also_works(start_gateway: GatewayFactory, cohere_fake: FakeCohere) -> None:
    gw = await start_gateway(env={"CO_API_KEY": "co-test-key", "COHERE_BASE_URL": cohere_fake.url})
    r = await openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0).chat.completions.create(
        model="cohere/command-a", messages=MSGS)
    assert r.choices[0].message.content == "Hello from command-a!"


async def test_generation_error(gw: RunningGateway) -> None:
    with pytest.raises(openai.InternalServerError) as ei:
        await client(gw).chat.completions.create(model="cohere/gen-error", messages=MSGS)
    assert ei.value.status_code == 502 and "ERROR" in ei.value.message
    stream = await client(gw).chat.completions.create(model="cohere/gen-error", messages=MSGS, stream=True)
    with pytest.raises(openai.APIError) as si:
        async for _ in stream:
            pass
    assert "internal model failure" in si.value.message


async def test_truncated_stream_is_an_error_event(gw: RunningGateway) -> None:
    stream = await client(gw).chat.completions.create(model="cohere/truncated", messages=MSGS, stream=True)
    text = ""
    with pytest.raises(openai.APIError) as ei:
        async for c in stream:
            text += c.choices[0].delta.content or ""
    assert text == "Hello from truncated!" and "message-end" in ei.value.message


async def test_thinking_becomes_reasoning_content(gw: RunningGateway, cohere_fake: FakeCohere) -> None:
    r = await client(gw).chat.completions.create(model="cohere/thinking", messages=MSGS, reasoning_effort="high")
    assert r.choices[0].message.content == "Hello!"
    assert r.choices[0].message.model_extra is not None
    assert r.choices[0].message.model_extra["reasoning_content"] == "The user greets me."
    assert cohere_fake.last.json["thinking"] == {"type": "enabled"}
    stream = await client(gw).chat.completions.create(model="cohere/thinking", messages=MSGS, stream=True)
    reasoning = text = ""
    async for c in stream:
        extra = c.choices[0].delta.model_extra or {}
        reasoning += extra.get("reasoning_content") or ""
        text += c.choices[0].delta.content or ""
    assert (reasoning, text) == ("The user greets me.", "Hello!")
