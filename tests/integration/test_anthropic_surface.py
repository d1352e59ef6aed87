"""The official `anthropic` SDK against the gateway's Anthropic-compatible surface
(`POST /v1/messages`), with a fake OpenAI upstream (translated both ways through the canonical
form) and a fake Anthropic upstream (Anthropic in, canonical in the middle, Anthropic out)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import orjson
import pytest
import pytest_asyncio
from aiohttp import web

from tests.conftest import GatewayFactory, RunningGateway, require_local_model
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.openai import FakeOpenAI

MASTER = "sk-master-test"
USER = [{"role": "user", "content": "Say hello"}]
WEATHER = {"name": "get_weather", "description": "Weather for a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
HAIKU = "anthropic/claude-3-5-haiku-latest"


class CountingFakeAnthropic(FakeAnthropic):
    """The fake Anthropic upstream with a fixed count on `POST /v1/messages/count_tokens`."""

    async def count_tokens(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        if request.headers.get("x-api-key") != self.api_key or not request.headers.get("anthropic-version"):
            return web.json_response({"type": "error", "error": {"type": "authentication_error", "message": "bad"}},
                                     status=401)
        if "max_tokens" in body or "stream" in body:
            self.violations.append("count_tokens: extra inputs are not permitted")
            return web.json_response({"type": "error", "error": {"type": "invalid_request_error", "message": "extra"}},
                                     status=400)
        return web.json_response({"input_tokens": 21})


@pytest_asyncio.fixture
async def ant_fake() -> AsyncIterator[CountingFakeAnthropic]:
    f = CountingFakeAnthropic()
    await f.start()
    yield f
    await f.stop()
    assert not f.violations, f"the gateway sent requests the Anthropic API would refuse: {f.violations}"


@pytest_asyncio.fixture
async def gw(start_gateway: GatewayFactory, openai_fake: FakeOpenAI, ant_fake: CountingFakeAnthropic) -> RunningGateway:
    return await start_gateway(env={"OPENAI_API_KEY": "sk-upstream-test", "OPENAI_BASE_URL": openai_fake.url + "/v1",
                                    "ANTHROPIC_API_KEY": ant_fake.api_key, "ANTHROPIC_BASE_URL": ant_fake.url,
                                    "UNIGATE_MASTER_KEY": MASTER})


def client(gw: RunningGateway, key: str = MASTER, **kw: Any) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gw.url, api_key=key, max_retries=0, **kw)


async def events_of(stream: Any) -> list[Any]:
    return [e async for e in stream]


def text_of(events: list[Any]) -> str:
    return "".join(e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta")


# ---------------------------------------------------------------------------------- plain


async def test_create_against_openai_upstream(gw: RunningGateway, openai_fake: FakeOpenAI) -> None:
    raw = await client(gw).messages.with_raw_response.create(
        model="openai/gpt-4o-mini", max_tokens=50, system="Be brief.", messages=USER,  # type: ignore[arg-type]
        stop_sequences=["END"], metadata={"user_id": "u-1"},
        # this SDK version no longer lists the sampling knobs; the API still takes them
        extra_body={"temperature": 0.3, "top_p": 0.9, "top_k": 40},
    )
    m = await raw.parse()
    assert m.id.startswith("msg_") and m.type == "message" and m.role == "assistant"
    assert m.model == "gpt-4o-mini"  # the model that served, as the upstream names it
    assert [b.type for b in m.content] == ["text"] and m.content[0].text == "Hello from gpt-4o-mini!"  # type: ignore[union-attr]
    assert m.stop_reason == "end_turn" and m.stop_sequence is None
    assert (m.usage.input_tokens, m.usage.output_tokens) == (12, 5)
    assert (m.usage.cache_read_input_tokens, m.usage.cache_creation_input_tokens) == (0, 0)
    assert raw.headers["x-request-id"]

    sent = openai_fake.last
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["Authorization"] == "Bearer sk-upstream-test"
    assert sent.json == {"model": "gpt-4o-mini", "max_completion_tokens": 50,
                         "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}],
                         "temperature": 0.3, "top_p": 0.9, "stop": ["END"], "user": "u-1"}  # top_k: OpenAI has none

    await gw.gateway.ledger.flush()
    rec = gw.gateway.ledger.recent[-1]
    assert rec.usage_known and (rec.prompt_tokens, rec.completion_tokens) == (12, 5) and rec.model == "openai/gpt-4o-mini"


async def test_create_against_anthropic_upstream(gw: RunningGateway, ant_fake: CountingFakeAnthropic) -> None:
    m = await client(gw).messages.create(
        model=HAIKU, max_tokens=300, messages=USER, extra_body={"temperature": 0.5, "top_k": 40},
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Be kind."}],
    )
    assert m.content[0].text == "Hello from claude-3-5-haiku-latest!"  # type: ignore[union-attr]
    assert m.model == "claude-3-5-haiku-latest" and m.stop_reason == "end_turn"
    assert (m.usage.input_tokens, m.usage.output_tokens) == (12, 5)
    body = ant_fake.last.json
    assert ant_fake.last.headers["x-api-key"] == ant_fake.api_key  # the upstream key, not the client's
    assert body["model"] == "claude-3-5-haiku-latest" and body["max_tokens"] == 300
    # Anthropic to Anthropic: the client's body itself, the model aside
    assert body["system"] == [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
                              {"type": "text", "text": "Be kind."}]
    assert body["messages"] == USER
    assert body["temperature"] == 0.5 and body["top_k"] == 40 and "stream" not in body


async def test_bearer_auth_and_beta_headers(gw: RunningGateway) -> None:
    c = anthropic.AsyncAnthropic(base_url=gw.url, auth_token=MASTER, max_retries=0,
                                 default_headers={"anthropic-beta": "prompt-caching-2024-07-31,some-future-beta"})
    m = await c.messages.create(model="openai/gpt-4o-mini", max_tokens=10, messages=USER)
    assert m.content[0].text == "Hello from gpt-4o-mini!"  # type: ignore[union-attr]


async def test_alias_with_fallback_across_dialects(start_gateway: GatewayFactory, openai_fake: FakeOpenAI,
                                                  ant_fake: CountingFakeAnthropic) -> None:
    gw = await start_gateway({"aliases": {"claude-fast": ["openai/error-503", HAIKU]}},
                             env={"OPENAI_API_KEY": "sk-upstream-test", "OPENAI_BASE_URL": openai_fake.url + "/v1",
                                  "ANTHROPIC_API_KEY": ant_fake.api_key, "ANTHROPIC_BASE_URL": ant_fake.url})
    m = await client(gw).messages.create(model="claude-fast", max_tokens=20, messages=USER,
                                         system=[{"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}}])
    assert m.model == "claude-3-5-haiku-latest" and m.content[0].text == "Hello from claude-3-5-haiku-latest!"  # type: ignore[union-attr]
    assert openai_fake.last.json["model"] == "error-503"  # tried first
    # a mixed group: Anthropic-only fields are not sent where an OpenAI upstream would refuse them;
    # the Anthropic one still gets the client's body as it came
    assert openai_fake.last.json["messages"][0] == {"role": "system", "content": "Hi"}
    assert ant_fake.last.json["system"] == [{"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}}]


# ---------------------------------------------------------------------------------- streams


@pytest.mark.parametrize("model,answer", [("openai/gpt-4o-mini", "Hello from gpt-4o-mini!"),
                                          (HAIKU, "Hello from claude-3-5-haiku-latest!"),
                                          ("anthropic/ragged", "Hello from ragged!")])
async def test_stream_helper(gw: RunningGateway, openai_fake: FakeOpenAI, model: str, answer: str) -> None:
    async with client(gw).messages.stream(model=model, max_tokens=50, messages=USER) as s:
        text = "".join([t async for t in s.text_stream])
        final = await s.get_final_message()
    assert text == answer
    assert final.content[0].text == answer  # type: ignore[union-attr]
    assert final.model == model.partition("/")[2] and final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (12, 5)
    if model.startswith("openai/"):
        assert openai_fake.last.json["stream"] is True
        assert openai_fake.last.json["stream_options"] == {"include_usage": True}


async def test_raw_stream_event_sequence(gw: RunningGateway, ant_fake: CountingFakeAnthropic) -> None:
    stream = await client(gw).messages.create(model=HAIKU, max_tokens=50, messages=USER, stream=True)
    evs = await events_of(stream)
    kinds = [e.type for e in evs]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds[1] == "content_block_start" and kinds[-3] == "content_block_stop"
    assert set(kinds[2:-3]) == {"content_block_delta"}
    assert evs[0].message.content == [] and evs[0].message.model == "claude-3-5-haiku-latest"
    assert text_of(evs) == "Hello from claude-3-5-haiku-latest!"
    md = evs[-2]
    assert md.delta.stop_reason == "end_turn"
    # relayed as the upstream sent them: the input count comes in message_start
    assert evs[0].message.usage.input_tokens == 12 and md.usage.output_tokens == 5
    assert ant_fake.last.json["stream"] is True


# ---------------------------------------------------------------------------------- tools


async def test_tool_use_round_trip_openai_upstream(gw: RunningGateway, openai_fake: FakeOpenAI) -> None:
    c = client(gw)
    m = await c.messages.create(model="openai/tools", max_tokens=100, messages=USER, tools=[WEATHER],  # type: ignore[list-item]
                                tool_choice={"type": "any", "disable_parallel_tool_use": True})
    assert m.stop_reason == "tool_use"
    [tu] = m.content
    assert tu.type == "tool_use" and tu.id == "call_abc123" and tu.name == "get_weather" and tu.input == {"city": "Paris"}
    sent = openai_fake.last.json
    assert sent["tools"] == [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                                               "parameters": WEATHER["input_schema"]}}]
    assert sent["tool_choice"] == "required" and sent["parallel_tool_calls"] is False

    await c.messages.create(model="openai/gpt-4o-mini", max_tokens=100, tools=[WEATHER], messages=[  # type: ignore[list-item]
        *USER,
        {"role": "assistant", "content": m.content},  # type: ignore[typeddict-item]
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": tu.id, "content": [{"type": "text", "text": "18C, sunny"}]},
            {"type": "text", "text": "Thanks!"}]},
    ])
    assert openai_fake.last.json["messages"] == [
        {"role": "user", "content": "Say hello"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_abc123", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_abc123", "content": "18C, sunny"},
        {"role": "user", "content": "Thanks!"},
    ]


async def test_tool_use_stream_openai_upstream(gw: RunningGateway) -> None:
    async with client(gw).messages.stream(model="openai/tools", max_tokens=100, messages=USER, tools=[WEATHER]) as s:  # type: ignore[list-item]
        evs = await events_of(s)
        final = await s.get_final_message()
    fragments = [e.delta.partial_json for e in evs if e.type == "content_block_delta" and e.delta.type == "input_json_delta"]
    assert fragments == ['{"ci', 'ty": ', '"Par', 'is"}']  # relayed as they came, not buffered
    starts = [e.content_block for e in evs if e.type == "content_block_start"]
    assert [(b.type, b.id, b.name) for b in starts] == [("tool_use", "call_abc123", "get_weather")]  # type: ignore[union-attr]
    assert final.stop_reason == "tool_use"
    assert final.content[0].input == {"city": "Paris"}  # type: ignore[union-attr]


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_use_round_trip_anthropic_upstream(gw: RunningGateway, ant_fake: CountingFakeAnthropic, stream: bool) -> None:
    c = client(gw)
    if stream:
        async with c.messages.stream(model="anthropic/tools", max_tokens=100, messages=USER, tools=[WEATHER]) as s:  # type: ignore[list-item]
            m = await s.get_final_message()
    else:
        m = await c.messages.create(model="anthropic/tools", max_tokens=100, messages=USER, tools=[WEATHER])  # type: ignore[list-item]
    assert [b.type for b in m.content] == ["text", "tool_use"]
    assert m.content[0].text == "Let me check."  # type: ignore[union-attr]
    tu = m.content[1]
    assert (tu.id, tu.name, tu.input) == ("toolu_01Fake", "get_weather", {"city": "Paris"})  # type: ignore[union-attr]
    assert m.stop_reason == "tool_use"

    m2 = await c.messages.create(model=HAIKU, max_tokens=100, tools=[WEATHER], messages=[  # type: ignore[list-item]
        *USER, {"role": "assistant", "content": m.content},  # type: ignore[typeddict-item]
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01Fake", "content": "18C",
                                      "is_error": False, "cache_control": {"type": "ephemeral"}},
                                     {"type": "text", "text": "And tomorrow?"}]},
    ])
    assert m2.stop_reason == "end_turn"
    msgs = ant_fake.last.json["messages"]
    assert msgs[1] == {"role": "assistant", "content": [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_01Fake", "name": "get_weather", "input": {"city": "Paris"}}]}
    # the tool_result as Claude Code sent it: is_error and the cache breakpoint where they were
    assert msgs[2] == {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01Fake", "content": "18C",
                                                    "is_error": False, "cache_control": {"type": "ephemeral"}},
                                                   {"type": "text", "text": "And tomorrow?"}]}


# ---------------------------------------------------------------------------------- content


async def test_images_reach_both_upstreams(gw: RunningGateway, openai_fake: FakeOpenAI, ant_fake: CountingFakeAnthropic) -> None:
    content: Any = [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                    {"type": "text", "text": "What is this?"}]
    c = client(gw)
    await c.messages.create(model="openai/gpt-4o-mini", max_tokens=20, messages=[{"role": "user", "content": content}])
    assert openai_fake.last.json["messages"] == [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": "What is this?"}]}]
    await c.messages.create(model=HAIKU, max_tokens=20, messages=[{"role": "user", "content": content}])
    assert ant_fake.last.json["messages"] == [{"role": "user", "content": content}]  # the same blocks, round trip


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("upstream_reason,expected", [("end_turn", "end_turn"), ("max_tokens", "max_tokens"),
                                                      ("refusal", "refusal"), ("tool_use", "tool_use"),
                                                      ("model_context_window_exceeded", "model_context_window_exceeded")])
async def test_stop_reasons(gw: RunningGateway, upstream_reason: str, expected: str, stream: bool) -> None:
    # Anthropic to Anthropic: the upstream's stop_reason as it is (the canonical form would have
    # read a tool_use with no tool call as the response_format tool's end_turn)
    c = client(gw)
    kw: Any = {"model": f"anthropic/stop-{upstream_reason}", "max_tokens": 20, "messages": USER}
    if stream:
        async with c.messages.stream(**kw) as s:
            m = await s.get_final_message()
    else:
        m = await c.messages.create(**kw)
    assert m.stop_reason == expected
    assert m.content[0].text == "Hi"  # type: ignore[union-attr]


@pytest.mark.parametrize("stream", [False, True])
async def test_thinking_and_cache_usage(gw: RunningGateway, ant_fake: CountingFakeAnthropic, stream: bool) -> None:
    c = client(gw)
    kw: Any = {"model": "anthropic/thinking", "max_tokens": 4096, "messages": USER,
               "thinking": {"type": "enabled", "budget_tokens": 2048}}
    if stream:
        async with c.messages.stream(**kw) as s:
            m = await s.get_final_message()
    else:
        m = await c.messages.create(**kw)
    assert [b.type for b in m.content] == ["thinking", "text"]
    assert m.content[0].thinking == "Let me think." and m.content[1].text == "42"  # type: ignore[union-attr]
    assert ant_fake.last.json["thinking"] == {"type": "enabled", "budget_tokens": 2048}  # passed natively
    assert m.usage.output_tokens_details is not None and m.usage.output_tokens_details.thinking_tokens == 3

    kw = {"model": "anthropic/cache", "max_tokens": 20, "messages": USER}
    if stream:
        async with c.messages.stream(**kw) as s:
            m = await s.get_final_message()
    else:
        m = await c.messages.create(**kw)
    u = m.usage
    assert (u.input_tokens, u.cache_creation_input_tokens, u.cache_read_input_tokens, u.output_tokens) == (10, 100, 200, 7)


async def test_thinking_to_openai_models(gw: RunningGateway, openai_fake: FakeOpenAI) -> None:
    c = client(gw)
    thinking: Any = {"type": "enabled", "budget_tokens": 2048}
    await c.messages.create(model="openai/o3-mini", max_tokens=4096, messages=USER, thinking=thinking)
    assert openai_fake.last.json["reasoning_effort"] == "low" and "thinking" not in openai_fake.last.json
    # the catalog knows gpt-4o-mini does not reason: the knob is dropped, not sent to fail there
    await c.messages.create(model="openai/gpt-4o-mini", max_tokens=4096, messages=USER, thinking=thinking)
    assert "reasoning_effort" not in openai_fake.last.json and "thinking" not in openai_fake.last.json


# ---------------------------------------------------------------------------------- errors


async def test_wrong_key_is_401(gw: RunningGateway) -> None:
    with pytest.raises(anthropic.AuthenticationError) as ei:
        await client(gw, key="sk-wrong").messages.create(model="openai/gpt-4o-mini", max_tokens=10, messages=USER)
    assert ei.value.status_code == 401
    assert ei.value.body["type"] == "error" and ei.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]


async def test_unknown_model_is_404(gw: RunningGateway) -> None:
    with pytest.raises(anthropic.NotFoundError) as ei:
        await client(gw).messages.create(model="nope/nothing", max_tokens=10, messages=USER)
    err = ei.value.body["error"]  # type: ignore[index]
    assert err["type"] == "not_found_error" and "nope/nothing" in err["message"]


async def test_missing_max_tokens_is_400(gw: RunningGateway) -> None:
    with pytest.raises(anthropic.BadRequestError) as ei:
        await client(gw).post("/v1/messages", cast_to=anthropic.types.Message,
                              body={"model": "openai/gpt-4o-mini", "messages": USER})
    err = ei.value.body["error"]  # type: ignore[index]
    assert err["type"] == "invalid_request_error" and "max_tokens" in err["message"]


async def test_bad_fields_are_400_naming_them(gw: RunningGateway) -> None:
    c = client(gw)
    with pytest.raises(anthropic.BadRequestError) as ei:
        await c.messages.create(model="openai/gpt-4o-mini", max_tokens=10, messages=USER, extra_body={"temperature": 1.5})
    assert "temperature" in ei.value.body["error"]["message"]  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as ei:
        await c.messages.create(model="openai/gpt-4o-mini", max_tokens=10,
                                messages=[{"role": "user", "content": [{"type": "image", "source": {"type": "base64"}}]}])  # type: ignore[typeddict-item]
    assert "messages.0.content.0.source.media_type" in ei.value.body["error"]["message"]  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as ei:
        await c.post("/v1/messages", cast_to=anthropic.types.Message, content=b"{not json")
    assert ei.value.body["type"] == "error"  # type: ignore[index]


@pytest.mark.parametrize("model", ["openai/error-429", "anthropic/error-429"])
async def test_rate_limit_is_429_with_retry_after(gw: RunningGateway, model: str) -> None:
    with pytest.raises(anthropic.RateLimitError) as ei:
        await client(gw).messages.create(model=model, max_tokens=10, messages=USER)
    assert ei.value.response.headers["retry-after"] == "7"
    assert ei.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


async def test_overloaded_upstream_is_503_overloaded(gw: RunningGateway) -> None:
    with pytest.raises(anthropic.APIStatusError) as ei:
        await client(gw).messages.create(model="anthropic/error-529", max_tokens=10, messages=USER)
    assert ei.value.status_code == 503
    assert ei.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


@pytest.mark.parametrize("model,etype", [("anthropic/midstream-error", "overloaded_error"),
                                         ("anthropic/truncated", "api_error"), ("openai/drop", "api_error")])
async def test_mid_stream_failure_is_an_error_event(gw: RunningGateway, model: str, etype: str) -> None:
    stream = await client(gw).messages.create(model=model, max_tokens=50, messages=USER, stream=True)
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as ei:
        async for e in stream:
            seen.append(e.type)
    assert seen and seen[0] == "message_start"  # the client had the 200 and the start already
    assert ei.value.body["type"] == "error" and ei.value.body["error"]["type"] == etype  # type: ignore[index]


# ---------------------------------------------------------------------------------- count_tokens


async def test_count_tokens(gw: RunningGateway, ant_fake: CountingFakeAnthropic) -> None:
    c = client(gw)
    r = await c.messages.count_tokens(model=HAIKU, messages=USER, system="Be brief.", tools=[WEATHER])  # type: ignore[list-item]
    assert r.input_tokens == 21
    sent = ant_fake.last
    assert sent.path == "/v1/messages/count_tokens"
    assert sent.json == {"model": "claude-3-5-haiku-latest", "messages": USER, "system": "Be brief.", "tools": [WEATHER]}
    raw = await c.messages.with_raw_response.count_tokens(model=HAIKU, messages=USER)
    assert raw.headers["x-unigate-token-count"] == "exact"
    # a model whose provider cannot count: an estimate, said to be one, and no upstream call
    calls = len(ant_fake.requests)
    raw = await c.messages.with_raw_response.count_tokens(model="openai/gpt-4o-mini", messages=USER)
    assert raw.headers["x-unigate-token-count"] == "estimate" and (await raw.parse()).input_tokens >= 1
    assert len(ant_fake.requests) == calls


# ---------------------------------------------------------------------------------- local model


@pytest.mark.local_model
async def test_local_model_through_the_anthropic_surface(start_gateway: GatewayFactory) -> None:
    """The embedded model answers in-process: the same egress, without an HTTP upstream."""
    require_local_model()
    gw = await start_gateway(env={"UNIGATE_LOCAL": "on"})
    c = client(gw)
    q: Any = [{"role": "user", "content": "Name three colors."}]
    m = await c.messages.create(model="local/smollm2", max_tokens=8, messages=q, extra_body={"temperature": 0})
    assert m.model == "smollm2" and m.content and m.content[0].type == "text"
    assert m.stop_reason in ("end_turn", "max_tokens") and 1 <= m.usage.output_tokens <= 8 and m.usage.input_tokens > 5
    async with c.messages.stream(model="local/smollm2", max_tokens=8, messages=q, extra_body={"temperature": 0}) as s:
        text = "".join([t async for t in s.text_stream])
        final = await s.get_final_message()
    assert text == m.content[0].text  # type: ignore[union-attr]
    assert final.usage.output_tokens == m.usage.output_tokens and final.usage.input_tokens == m.usage.input_tokens
