"""The openai SDK's `client.responses` against the gateway's Responses surface (`POST
/v1/responses`), in front of an OpenAI-compatible upstream (xAI's preset on the OpenAI fake:
translated to Chat Completions and back), the Anthropic fake, the Gemini fake, and an `openai`
preset upstream, which has the Responses API itself (the body passes through untouched)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import orjson
import pytest
import pytest_asyncio

from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.gemini import API_KEY as GEMINI_KEY
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI

MASTER = "sk-master-test"
COMPAT = "xai/grok-fake"  # an OpenAI-compatible preset: no Responses API upstream
HAIKU = "anthropic/claude-3-5-haiku-latest"
FLASH = "gemini/gemini-2.0-flash"
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                          "additionalProperties": False},
           "strict": True}
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "temp_c": {"type": "integer"}},
          "required": ["city", "temp_c"], "additionalProperties": False}


@pytest_asyncio.fixture
async def ant_fake() -> AsyncIterator[FakeAnthropic]:
    f = FakeAnthropic()
    await f.start()
    yield f
    await f.stop()
    assert not f.violations, f"the gateway sent requests the Anthropic API would refuse: {f.violations}"


@pytest_asyncio.fixture
async def gem_fake() -> AsyncIterator[FakeGemini]:
    f = FakeGemini()
    await f.start()
    yield f
    await f.stop()


def upstream_env(openai_fake: FakeOpenAI, ant: FakeAnthropic, gem: FakeGemini) -> dict[str, str]:
    return {"OPENAI_API_KEY": "sk-upstream-test", "OPENAI_BASE_URL": openai_fake.url + "/v1",
            "XAI_API_KEY": "xai-upstream-test", "XAI_BASE_URL": openai_fake.url + "/v1",
            "ANTHROPIC_API_KEY": ant.api_key, "ANTHROPIC_BASE_URL": ant.url,
            "GEMINI_API_KEY": GEMINI_KEY, "GEMINI_BASE_URL": gem.url}


@pytest_asyncio.fixture
async def gw(start_gateway: GatewayFactory, openai_fake: FakeOpenAI, ant_fake: FakeAnthropic,
             gem_fake: FakeGemini) -> RunningGateway:
    return await start_gateway(env={**upstream_env(openai_fake, ant_fake, gem_fake), "UNIGATE_MASTER_KEY": MASTER})


def client(gw: RunningGateway, key: str = MASTER) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)


async def events_of(stream: Any) -> list[Any]:
    return [e async for e in stream]


def assert_sequence(events: list[Any]) -> None:
    """sequence_number counts 0, 1, 2, ... and the stream is framed by created/in_progress and a
    terminal event."""
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert [e.type for e in events[:2]] == ["response.created", "response.in_progress"]
    assert events[-1].type in ("response.completed", "response.incomplete", "response.failed")


# ---------------------------------------------------------------------------------- translated


async def test_create_translates_to_chat(gw: RunningGateway, openai_fake: FakeOpenAI) -> None:
    raw = await client(gw).responses.with_raw_response.create(
        model=COMPAT, input="Say hello", instructions="Be brief.", max_output_tokens=50, temperature=0.3,
        top_p=0.9, user="u-1", metadata={"ticket": "T-1"})
    r = raw.parse()
    assert r.id.startswith("resp_") and r.object == "response" and r.status == "completed"
    assert r.output_text == "Hello from grok-fake!"
    assert [o.type for o in r.output] == ["message"]
    msg = r.output[0]
    assert msg.type == "message" and msg.role == "assistant" and msg.status == "completed"
    assert msg.id.startswith("msg_") and msg.content[0].type == "output_text"
    assert r.usage is not None
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens) == (12, 5, 17)
    assert r.usage.input_tokens_details.cached_tokens == 0 and r.usage.output_tokens_details.reasoning_tokens == 0
    # the request's settings, echoed
    assert r.instructions == "Be brief." and r.max_output_tokens == 50 and r.metadata == {"ticket": "T-1"}
    assert r.temperature == 0.3 and r.top_p == 0.9 and r.tool_choice == "auto" and r.tools == []
    assert r.parallel_tool_calls is True and r.incomplete_details is None and r.error is None
    assert r.text is not None and r.text.format.type == "text"
    assert r.store is True  # the state layer is open (a master key): kept
    assert raw.headers["x-request-id"] and raw.headers["x-unigate-model"] == COMPAT

    sent = openai_fake.last
    assert sent.path == "/v1/chat/completions" and sent.headers["Authorization"] == "Bearer xai-upstream-test"
    assert sent.json == {"model": "grok-fake", "max_completion_tokens": 50, "temperature": 0.3, "top_p": 0.9,
                         "user": "u-1",
                         "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]}

    await gw.gateway.ledger.flush()
    rec = gw.gateway.ledger.recent[-1]
    assert rec.usage_known and (rec.prompt_tokens, rec.completion_tokens) == (12, 5) and rec.model == COMPAT


async def test_items_input_images_and_history(gw: RunningGateway, openai_fake: FakeOpenAI) -> None:
    png = "data:image/png;base64,iVBORw0KGgo="
    await client(gw).responses.create(model=COMPAT, input=[
        {"role": "developer", "content": "Answer in French."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "What is this?"},
                                                        {"type": "input_image", "image_url": png, "detail": "low"}]},
        {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
         "content": [{"type": "output_text", "text": "A dot.", "annotations": []}]},
        {"role": "user", "content": "Sure?"},
    ])
    assert openai_fake.last.json["messages"] == [
        {"role": "developer", "content": "Answer in French."},
        {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                     {"type": "image_url", "image_url": {"url": png, "detail": "low"}}]},
        {"role": "assistant", "content": "A dot."},
        {"role": "user", "content": "Sure?"},
    ]


async def test_function_tool_round_trip(gw: RunningGateway, openai_fake: FakeOpenAI) -> None:
    c = client(gw)
    model = "xai/tool-loop"
    r = await c.responses.create(model=model, input="Weather in Paris?", tools=[WEATHER],  # type: ignore[list-item]
                                 tool_choice="required", parallel_tool_calls=False, store=False)
    assert r.status == "completed" and r.output_text == "" and r.store is False
    [call] = r.output
    assert call.type == "function_call" and call.name == "get_weather" and call.call_id == "call_abc123"
    assert json.loads(call.arguments) == {"city": "Paris"} and call.id.startswith("fc_")
    sent = openai_fake.last.json
    assert sent["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city", "parameters": WEATHER["parameters"], "strict": True}}]
    assert sent["tool_choice"] == "required" and sent["parallel_tool_calls"] is False
    assert r.tools[0].type == "function" and r.tools[0].name == "get_weather"  # echoed in the Responses shape

    # the client runs the tool and sends the call and its output back (no state: the whole input)
    r2 = await c.responses.create(model=model, tools=[WEATHER], store=False, input=[  # type: ignore[list-item]
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": '{"temp_c": 21}'},
    ])
    assert r2.output_text == 'The tool said: {"temp_c": 21}'
    assert openai_fake.last.json["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_abc123", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_abc123", "content": '{"temp_c": 21}'},
    ]


async def test_json_schema_text_format(gw: RunningGateway, openai_fake: FakeOpenAI) -> None:
    fmt = {"type": "json_schema", "name": "weather", "schema": SCHEMA, "strict": True}
    r = await client(gw).responses.create(model=COMPAT, input="Weather?", text={"format": fmt})  # type: ignore[typeddict-item]
    assert openai_fake.last.json["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "weather", "schema": SCHEMA, "strict": True}}
    assert r.text is not None and r.text.format.type == "json_schema"
    raw = await client(gw).responses.with_raw_response.create(
        model=COMPAT, input="JSON", text={"format": {"type": "json_object"}, "verbosity": "low"},
        reasoning={"effort": "low", "summary": "auto"}, include=["reasoning.encrypted_content"])
    assert openai_fake.last.json["response_format"] == {"type": "json_object"}
    assert openai_fake.last.json["reasoning_effort"] == "low"
    # what the chat form cannot carry is named
    assert raw.headers["x-unigate-dropped-params"].split(",") == [
        "reasoning.summary", "text.verbosity", "include.reasoning.encrypted_content"]
    assert "verbosity" not in openai_fake.last.json and "include" not in openai_fake.last.json


async def test_stream_event_order(gw: RunningGateway) -> None:
    stream = await client(gw).responses.create(model=COMPAT, input="Say hello", stream=True)
    events = await events_of(stream)
    assert_sequence(events)
    assert [e.type for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        *["response.output_text.delta"] * 4, "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.completed"]
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "Hello from grok-fake!"
    created, done = events[0].response, events[-1].response
    assert created.status == "in_progress" and created.output == [] and created.id == done.id
    assert done.status == "completed" and done.output_text == "Hello from grok-fake!"
    assert done.usage is not None and (done.usage.input_tokens, done.usage.output_tokens) == (12, 5)
    item_id = events[2].item.id
    assert all(e.item_id == item_id for e in events[3:10])
    assert events[8].text == "Hello from grok-fake!" and events[10].item.status == "completed"


async def test_stream_function_call(gw: RunningGateway) -> None:
    stream = await client(gw).responses.create(model="xai/tools", input="Weather?", tools=[WEATHER],  # type: ignore[list-item]
                                               stream=True)
    events = await events_of(stream)
    assert_sequence(events)
    kinds = [e.type for e in events]
    assert kinds == ["response.created", "response.in_progress", "response.output_item.added",
                     *["response.function_call_arguments.delta"] * 4, "response.function_call_arguments.done",
                     "response.output_item.done", "response.completed"]
    assert events[2].item.type == "function_call" and events[2].item.call_id == "call_abc123"
    assert events[-3].arguments == '{"city": "Paris"}' and events[-3].name == "get_weather"
    [item] = events[-1].response.output
    assert item.type == "function_call" and item.arguments == '{"city": "Paris"}' and item.status == "completed"


async def test_sdk_stream_helper(gw: RunningGateway) -> None:
    """The SDK's `responses.stream()` accumulates the events itself: it checks their shapes."""
    async with client(gw).responses.stream(model=COMPAT, input="Say hello") as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_response()
    assert final.output_text == "Hello from grok-fake!"


async def test_max_output_tokens_gives_incomplete(gw: RunningGateway, gem_fake: FakeGemini) -> None:
    r = await client(gw).responses.create(model="gemini/length", input="Long story", max_output_tokens=1)
    assert r.status == "incomplete" and r.incomplete_details is not None
    assert r.incomplete_details.reason == "max_output_tokens"
    assert r.output[0].type == "message" and r.output[0].status == "incomplete"
    events = await events_of(await client(gw).responses.create(model="gemini/length", input="Long story",
                                                               max_output_tokens=1, stream=True))
    assert_sequence(events)
    assert events[-1].type == "response.incomplete" and events[-1].response.incomplete_details.reason == "max_output_tokens"


async def test_midstream_failure_is_error_then_failed(gw: RunningGateway) -> None:
    events = await events_of(await client(gw).responses.create(model="xai/drop", input="hi", stream=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-2].type == "error" and events[-2].message
    assert events[-1].type == "response.failed" and events[-1].response.status == "failed"
    assert events[-1].response.error is not None and events[-1].response.error.message == events[-2].message


# ---------------------------------------------------------------------------------- other dialects


async def test_anthropic_upstream(gw: RunningGateway, ant_fake: FakeAnthropic) -> None:
    c = client(gw)
    r = await c.responses.create(model=HAIKU, input="Say hello", instructions="Be brief.", max_output_tokens=64)
    assert r.output_text == "Hello from claude-3-5-haiku-latest!" and r.status == "completed"
    body = ant_fake.last.json
    assert body["system"] == "Be brief." and body["max_tokens"] == 64
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}]

    # a function-tool round trip: the call, then its output
    r = await c.responses.create(model="anthropic/tools", input="Weather in Paris?", tools=[WEATHER])  # type: ignore[list-item]
    assert [o.type for o in r.output] == ["message", "function_call"] and r.output_text == "Let me check."
    call = r.output[1]
    assert call.type == "function_call" and call.call_id == "toolu_01Fake" and json.loads(call.arguments) == {"city": "Paris"}
    assert ant_fake.last.json["tools"][0]["name"] == "get_weather"
    r2 = await c.responses.create(model=HAIKU, tools=[WEATHER], input=[  # type: ignore[list-item]
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me check."}]},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "21 C"},
    ])
    assert r2.output_text == "Hello from claude-3-5-haiku-latest!"
    msgs = ant_fake.last.json["messages"]
    assert msgs[1]["role"] == "assistant" and msgs[1]["content"][0] == {"type": "text", "text": "Let me check."}
    assert msgs[1]["content"][1]["type"] == "tool_use" and msgs[1]["content"][1]["input"] == {"city": "Paris"}
    assert msgs[2]["role"] == "user" and msgs[2]["content"][0]["type"] == "tool_result"
    assert msgs[2]["content"][0]["tool_use_id"] == "toolu_01Fake"

    events = await events_of(await c.responses.create(model="anthropic/thinking", input="6*7?", stream=True,
                                                      reasoning={"effort": "low"}))
    assert_sequence(events)
    done = events[-1].response
    assert [o.type for o in done.output] == ["reasoning", "message"] and done.output_text == "42"
    assert done.output[0].content[0].text == "Let me think."
    assert "response.reasoning_text.delta" in [e.type for e in events]


async def test_anthropic_json_schema(gw: RunningGateway, ant_fake: FakeAnthropic) -> None:
    fmt = {"type": "json_schema", "name": "answer", "schema": SCHEMA, "strict": True}
    r = await client(gw).responses.create(model="anthropic/json", input="Weather?", text={"format": fmt})  # type: ignore[typeddict-item]
    assert json.loads(r.output_text) == {"answer": 42, "unit": "C"}
    assert r.output[0].type == "message"


async def test_gemini_upstream(gw: RunningGateway, gem_fake: FakeGemini) -> None:
    c = client(gw)
    r = await c.responses.create(model=FLASH, input="Say hello")
    assert r.output_text == "Hello from gemini-2.0-flash!"
    events = await events_of(await c.responses.create(model=FLASH, input="Say hello", stream=True))
    assert_sequence(events)
    assert events[-1].response.output_text == "Hello from gemini-2.0-flash!"

    r = await c.responses.create(model="gemini/tools", input="Weather in Paris?", tools=[WEATHER])  # type: ignore[list-item]
    [call] = r.output
    assert call.type == "function_call" and call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    r2 = await c.responses.create(model="gemini/tools", tools=[WEATHER], input=[  # type: ignore[list-item]
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": '{"temp_c": 21}'},
    ])
    assert r2.output_text == 'get_weather said {"temp_c":21}' or r2.output_text.startswith("get_weather said")

    fmt = {"type": "json_schema", "name": "weather", "schema": SCHEMA, "strict": True}
    r3 = await c.responses.create(model=FLASH, input="Weather?", text={"format": fmt})  # type: ignore[typeddict-item]
    assert json.loads(r3.output_text) == {"city": "Paris", "temp_c": 21}
    assert (orjson.loads(gem_fake.last.body)["generationConfig"]["responseMimeType"]) == "application/json"


# ---------------------------------------------------------------------------------- pass-through


async def test_openai_preset_passes_through(gw: RunningGateway, openai_fake: FakeOpenAI) -> None:
    body = {"model": "openai/gpt-4o-mini", "input": "Say hello", "store": False,
            "tools": [{"type": "web_search"}], "include": ["reasoning.encrypted_content"]}
    raw = await client(gw).responses.with_raw_response.create(**body)  # type: ignore[arg-type]
    r = raw.parse()
    assert r.id == "resp_fake1" and r.output_text == "Hello from gpt-4o-mini!"  # the upstream's own answer
    sent = openai_fake.last
    assert sent.path == "/v1/responses" and sent.headers["Authorization"] == "Bearer sk-upstream-test"
    assert sent.json == {**body, "model": "gpt-4o-mini"}  # untouched (the model aside): built-in tools too
    assert "x-unigate-dropped-params" not in raw.headers
    await gw.gateway.ledger.flush()
    rec = gw.gateway.ledger.recent[-1]
    assert rec.usage_known and (rec.prompt_tokens, rec.completion_tokens) == (11, 6)

    events = await events_of(await client(gw).responses.create(model="openai/gpt-4o-mini", input="hi", stream=True))
    assert_sequence(events)
    assert events[-1].response.id == "resp_fake1" and events[-1].response.output_text == "Hello from gpt-4o-mini!"
    await gw.gateway.ledger.flush()
    rec = gw.gateway.ledger.recent[-1]
    assert rec.stream and rec.usage_known and (rec.prompt_tokens, rec.completion_tokens) == (11, 6)


async def test_pass_through_errors(gw: RunningGateway) -> None:
    with pytest.raises(openai.RateLimitError) as ei:
        await client(gw).responses.create(model="openai/error-429", input="hi")
    assert "fake upstream error 429" in ei.value.message
    events = await events_of(await client(gw).responses.create(model="openai/stream-error", input="hi", stream=True))
    # the upstream's events as they came, then one error event numbered after them (no second
    # response.created: the response is the upstream's)
    assert [e.type for e in events].count("response.created") == 1 and events[0].response.id == "resp_fake1"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].type == "error" and "fake failure mid-stream" in events[-1].message
