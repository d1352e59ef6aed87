"""The official openai SDK through the gateway against a fake Anthropic Messages upstream: the
gateway translates OpenAI chat requests to /v1/messages and the answers (JSON and SSE) back."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
import pytest_asyncio

from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.anthropic import FakeAnthropic
from tests.streams import collect, text_of

MSGS: list[Any] = [{"role": "user", "content": "Say hello"}]
WEATHER = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                             "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                            "required": ["city"]}}}]
TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    f = FakeAnthropic()
    await f.start()
    yield f
    await f.stop()
    assert not f.violations, f"the gateway sent requests the Anthropic API would refuse: {f.violations}"


@pytest_asyncio.fixture
async def gw(start_gateway: GatewayFactory, fake: FakeAnthropic) -> RunningGateway:
    return await start_gateway(env={"ANTHROPIC_API_KEY": fake.api_key, "ANTHROPIC_BASE_URL": fake.url})


def client(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)


# ---------------------------------------------------------------------------------- chat


async def test_chat_translates_request_and_answer(gw: RunningGateway, fake: FakeAnthropic) -> None:
    raw = await client(gw).chat.completions.with_raw_response.create(
        model="anthropic/claude-3-5-haiku-latest",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "developer", "content": "Be kind."}, *MSGS],
        temperature=0.3, top_p=0.9, stop=["\n\n"], user="u-1", seed=7,
    )
    r = raw.parse()
    assert r.choices[0].message.content == "Hello from claude-3-5-haiku-latest!"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None and (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (12, 5, 17)
    assert raw.headers["x-unigate-dropped-params"] == "seed"

    sent = fake.last
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == fake.api_key
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in sent.headers
    body = sent.json
    assert body["model"] == "claude-3-5-haiku-latest"
    assert body["system"] == "Be brief.\n\nBe kind."
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}]
    assert body["max_tokens"] == 4096  # Anthropic requires it; the client sent none
    assert body["temperature"] == 0.3 and body["top_p"] == 0.9
    assert body["stop_sequences"] == ["\n\n"]
    assert body["metadata"] == {"user_id": "u-1"}
    assert "seed" not in body and "stream" not in body


async def test_max_completion_tokens_is_passed(gw: RunningGateway, fake: FakeAnthropic) -> None:
    await client(gw).chat.completions.create(model="anthropic/claude-3-5-haiku-latest", messages=MSGS, max_completion_tokens=77)
    assert fake.last.json["max_tokens"] == 77
    await client(gw).chat.completions.create(model="anthropic/claude-3-5-haiku-latest", messages=MSGS, max_tokens=55)
    assert fake.last.json["max_tokens"] == 55


async def test_stream_text_and_usage(gw: RunningGateway, fake: FakeAnthropic) -> None:
    stream = await client(gw).chat.completions.create(
        model="anthropic/claude-3-5-haiku-latest", messages=MSGS, stream=True, stream_options={"include_usage": True})
    chunks = await collect(stream)
    assert fake.last.json["stream"] is True
    assert chunks[0].choices[0].delta.role == "assistant"
    assert text_of(chunks) == "Hello from claude-3-5-haiku-latest!"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (12, 5)
    assert len({c.id for c in chunks}) == 1


async def test_stream_without_usage_hides_usage_but_records_it(gw: RunningGateway) -> None:
    chunks = await collect(await client(gw).chat.completions.create(
        model="anthropic/claude-3-5-haiku-latest", messages=MSGS, stream=True))
    assert all(c.choices for c in chunks)
    await gw.gateway.ledger.flush()
    rec = gw.gateway.ledger.recent[-1]
    assert rec.usage_known and rec.prompt_tokens == 12 and rec.completion_tokens == 5


async def test_ragged_sse_crlf_comments_split_reads(gw: RunningGateway) -> None:
    chunks = await collect(await client(gw).chat.completions.create(model="anthropic/ragged", messages=MSGS, stream=True))
    assert text_of(chunks) == "Hello from ragged!"
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_cache_usage(gw: RunningGateway) -> None:
    r = await client(gw).chat.completions.create(model="anthropic/cache", messages=MSGS)
    u = r.usage
    assert u is not None and u.prompt_tokens == 310 and u.completion_tokens == 7 and u.total_tokens == 317
    assert u.prompt_tokens_details is not None and u.prompt_tokens_details.cached_tokens == 200
    assert u.prompt_tokens_details.cache_write_tokens == 100
    chunks = await collect(await client(gw).chat.completions.create(
        model="anthropic/cache", messages=MSGS, stream=True, stream_options={"include_usage": True}))
    su = chunks[-1].usage
    assert su is not None and su.prompt_tokens == 310 and su.completion_tokens == 7


async def test_reasoning(gw: RunningGateway, fake: FakeAnthropic) -> None:
    r = await client(gw).chat.completions.create(model="anthropic/thinking", messages=MSGS, reasoning_effort="low")
    assert fake.last.json["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert fake.last.json["max_tokens"] > 2048
    msg = r.choices[0].message
    assert msg.content == "42" and (msg.model_extra or {}).get("reasoning_content") == "Let me think."
    assert r.usage is not None and r.usage.completion_tokens_details is not None
    assert r.usage.completion_tokens_details.reasoning_tokens == 3
    chunks = await collect(await client(gw).chat.completions.create(model="anthropic/thinking", messages=MSGS, stream=True))
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks if c.choices)
    assert reasoning == "Let me think." and text_of(chunks) == "42"


# ---------------------------------------------------------------------------------- tools


async def test_tools(gw: RunningGateway, fake: FakeAnthropic) -> None:
    r = await client(gw).chat.completions.create(model="anthropic/tools", messages=MSGS, tools=WEATHER,  # type: ignore[arg-type]
                                                 tool_choice="required", parallel_tool_calls=False)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    tc = choice.message.tool_calls
    assert tc is not None and len(tc) == 1
    assert tc[0].id == "toolu_01Fake" and tc[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert tc[0].function.arguments == '{"city":"Paris"}'  # type: ignore[union-attr]
    body = fake.last.json
    assert body["tools"] == [{"name": "get_weather", "description": "Weather for a city",
                              "input_schema": WEATHER[0]["function"]["parameters"]}]
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


@pytest.mark.parametrize("choice,expected", [
    ("auto", {"type": "auto"}),
    ("none", {"type": "none"}),
    ({"type": "function", "function": {"name": "get_weather"}}, {"type": "tool", "name": "get_weather"}),
])
async def test_tool_choice(gw: RunningGateway, fake: FakeAnthropic, choice: Any, expected: Any) -> None:
    await client(gw).chat.completions.create(model="anthropic/tools", messages=MSGS, tools=WEATHER, tool_choice=choice)  # type: ignore[arg-type]
    assert fake.last.json["tool_choice"] == expected


async def test_stream_tool_argument_fragments(gw: RunningGateway) -> None:
    chunks = await collect(await client(gw).chat.completions.create(
        model="anthropic/tools", messages=MSGS, tools=WEATHER, stream=True))  # type: ignore[arg-type]
    calls: dict[int, dict[str, Any]] = {}
    fragments = 0
    for c in chunks:
        for tc in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            slot = calls.setdefault(tc.index, {"id": None, "name": None, "args": ""})
            if tc.id:
                slot["id"], slot["name"] = tc.id, tc.function.name  # type: ignore[union-attr]
                assert tc.function.arguments == ""  # type: ignore[union-attr]
            elif tc.function and tc.function.arguments:
                fragments += 1
                slot["args"] += tc.function.arguments
    # the text block is Anthropic block 0 and the tool block 1, but OpenAI counts tool calls only
    assert calls == {0: {"id": "toolu_01Fake", "name": "get_weather", "args": '{"city": "Paris"}'}}
    assert fragments == 4
    assert text_of(chunks) == "Let me check."
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_tool_loop_history(gw: RunningGateway, fake: FakeAnthropic) -> None:
    """Foreign tool ids are rewritten stably; consecutive tool results share one user turn."""
    odd1, odd2 = "call:abc.1|x", "functions.get_weather:2"
    history = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": odd1, "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"id": odd2, "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}]},
        {"role": "tool", "tool_call_id": odd1, "content": "18C"},
        {"role": "tool", "tool_call_id": odd2, "content": [{"type": "text", "text": "21C"}]},
        {"role": "user", "content": "Thanks. Which is warmer?"},
    ]
    r = await client(gw).chat.completions.create(model="anthropic/claude-3-5-haiku-latest", messages=history, tools=WEATHER)  # type: ignore[arg-type]
    assert r.choices[0].message.content == "Hello from claude-3-5-haiku-latest!"
    msgs = fake.last.json["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
    uses = msgs[1]["content"]
    assert [b["type"] for b in uses] == ["tool_use", "tool_use"]
    assert uses[0]["input"] == {"city": "Paris"} and uses[1]["input"] == {"city": "Rome"}
    assert all(TOOL_ID.match(b["id"]) for b in uses)
    results = msgs[2]["content"]
    assert [b["type"] for b in results] == ["tool_result", "tool_result", "text"]
    assert [b["tool_use_id"] for b in results[:2]] == [uses[0]["id"], uses[1]["id"]]
    assert results[0]["content"] == "18C" and results[1]["content"] == [{"type": "text", "text": "21C"}]
    first_ids = [b["id"] for b in uses]
    await client(gw).chat.completions.create(model="anthropic/claude-3-5-haiku-latest", messages=history, tools=WEATHER)  # type: ignore[arg-type]
    assert [b["id"] for b in fake.last.json["messages"][1]["content"]] == first_ids  # stable mapping


async def test_invalid_tool_arguments_is_400_naming_the_message(gw: RunningGateway, fake: FakeAnthropic) -> None:
    history = [*MSGS, {"role": "assistant", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": '}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "x"}]
    with pytest.raises(openai.BadRequestError) as ei:
        await client(gw).chat.completions.create(model="anthropic/claude-3-5-haiku-latest", messages=history, tools=WEATHER)  # type: ignore[arg-type]
    assert "messages[1].tool_calls[0].function.arguments" in ei.value.message
    assert not fake.requests


# ---------------------------------------------------------------------------------- vision + JSON


async def test_vision_url_and_base64(gw: RunningGateway, fake: FakeAnthropic) -> None:
    content = [{"type": "text", "text": "What is in these images?"},
               {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}},
               {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}}]
    r = await client(gw).chat.completions.create(model="anthropic/claude-3-5-haiku-latest",
                                                 messages=[{"role": "user", "content": content}])  # type: ignore[list-item]
    assert r.choices[0].message.content
    blocks = fake.last.json["messages"][0]["content"]
    assert blocks == [
        {"type": "text", "text": "What is in these images?"},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
    ]


SCHEMA = {"type": "object", "properties": {"answer": {"type": "integer"}, "unit": {"type": "string"}},
          "required": ["answer", "unit"]}


async def test_json_schema_output(gw: RunningGateway, fake: FakeAnthropic) -> None:
    rf = {"type": "json_schema", "json_schema": {"name": "reply", "schema": SCHEMA, "strict": True}}
    r = await client(gw).chat.completions.create(model="anthropic/json", messages=MSGS, response_format=rf)  # type: ignore[arg-type]
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.tool_calls is None
    assert r.choices[0].message.content == '{"answer":42,"unit":"C"}'
    body = fake.last.json
    assert len(body["tools"]) == 1 and body["tools"][0]["input_schema"] == SCHEMA
    assert body["tool_choice"] == {"type": "tool", "name": body["tools"][0]["name"], "disable_parallel_tool_use": True}

    chunks = await collect(await client(gw).chat.completions.create(
        model="anthropic/json", messages=MSGS, response_format=rf, stream=True))  # type: ignore[arg-type]
    assert text_of(chunks) == '{"answer":42,"unit":"C"}'
    assert not any(c.choices[0].delta.tool_calls for c in chunks if c.choices)
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_json_object_output(gw: RunningGateway, fake: FakeAnthropic) -> None:
    r = await client(gw).chat.completions.create(model="anthropic/json", messages=MSGS, response_format={"type": "json_object"})
    assert r.choices[0].message.content == '{"answer":42,"unit":"C"}'
    assert fake.last.json["tools"][0]["input_schema"] == {"type": "object"}


# ---------------------------------------------------------------------------------- stop reasons

STOPS = [("end_turn", "stop"), ("stop_sequence", "stop"), ("pause_turn", "stop"), ("max_tokens", "length"),
         ("model_context_window_exceeded", "length"), ("refusal", "content_filter")]


@pytest.mark.parametrize("native,expected", STOPS)
async def test_stop_reasons(gw: RunningGateway, native: str, expected: str) -> None:
    r = await client(gw).chat.completions.create(model=f"anthropic/stop-{native}", messages=MSGS)
    assert r.choices[0].finish_reason == expected
    chunks = await collect(await client(gw).chat.completions.create(model=f"anthropic/stop-{native}", messages=MSGS, stream=True))
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [expected]


# ---------------------------------------------------------------------------------- errors


async def test_error_401(gw: RunningGateway) -> None:
    with pytest.raises(openai.AuthenticationError) as ei:
        await client(gw).chat.completions.create(model="anthropic/error-401", messages=MSGS)
    assert ei.value.body["message"] == "anthropic: fake upstream error 401"  # type: ignore[index]


async def test_error_429_keeps_retry_after(gw: RunningGateway) -> None:
    for stream in (False, True):
        with pytest.raises(openai.RateLimitError) as ei:
            await client(gw).chat.completions.create(model="anthropic/error-429", messages=MSGS, stream=stream)
        assert ei.value.response.headers["retry-after"] == "7"
        assert ei.value.body["message"].startswith("anthropic:")  # type: ignore[index]


async def test_error_529_overloaded_is_503(gw: RunningGateway) -> None:
    with pytest.raises(openai.InternalServerError) as ei:
        await client(gw).chat.completions.create(model="anthropic/error-529", messages=MSGS)
    assert ei.value.status_code == 503 and ei.value.code == "overloaded"


@pytest.mark.parametrize("status,cls", [(400, openai.BadRequestError), (403, openai.PermissionDeniedError),
                                        (404, openai.NotFoundError), (413, openai.APIStatusError)])
async def test_error_4xx(gw: RunningGateway, status: int, cls: type[Exception]) -> None:
    with pytest.raises(cls) as ei:
        await client(gw).chat.completions.create(model=f"anthropic/error-{status}", messages=MSGS)
    assert ei.value.status_code == status  # type: ignore[attr-defined]


async def test_bad_upstream_key_is_401(start_gateway: GatewayFactory, fake: FakeAnthropic) -> None:
    gw = await start_gateway(env={"ANTHROPIC_API_KEY": "sk-wrong", "ANTHROPIC_BASE_URL": fake.url})
    with pytest.raises(openai.AuthenticationError):
        await client(gw).chat.completions.create(model="anthropic/claude-3-5-haiku-latest", messages=MSGS)
    fake.violations.clear()  # the fake recorded the wrong key on purpose


async def test_mid_stream_error(gw: RunningGateway) -> None:
    stream = await client(gw).chat.completions.create(model="anthropic/midstream-error", messages=MSGS, stream=True)
    got: list[Any] = []
    with pytest.raises(openai.APIError) as ei:
        async for c in stream:
            got.append(c)
    assert text_of(got) == "Hello from midstream-error!"
    assert "Overloaded" in ei.value.message and ei.value.message.startswith("anthropic:")
    await gw.gateway.ledger.flush()
    assert gw.gateway.ledger.recent[-1].status == 503


async def test_truncated_stream_is_an_error(gw: RunningGateway) -> None:
    stream = await client(gw).chat.completions.create(model="anthropic/truncated", messages=MSGS, stream=True)
    with pytest.raises(openai.APIError) as ei:
        await collect(stream)
    assert "message_stop" in ei.value.message


@pytest.mark.parametrize("kwargs,param", [({"n": 2}, "n"), ({"temperature": 1.5}, "temperature"),
                                          ({"logprobs": True}, "logprobs")])
async def test_unsupported_requests_are_400(gw: RunningGateway, fake: FakeAnthropic, kwargs: Any, param: str) -> None:
    with pytest.raises(openai.BadRequestError) as ei:
        await client(gw).chat.completions.create(model="anthropic/claude-3-5-haiku-latest", messages=MSGS, **kwargs)
    assert ei.value.param == param and ei.value.code == "unsupported_feature"
    assert not fake.requests
