"""The official `openai` SDK: Chat Completions (a tool round trip, JSON and streamed) and the
Responses API (a function-tool round trip, JSON and streamed), against the scripted upstream;
and one chat with the embedded model. Plain chat, streams with usage, embeddings and legacy
completions against a fixed-answer upstream are in tests/integration/test_openai_sdk.py."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from tests.clients.conftest import MASTER, MODEL
from tests.clients.upstream import ANSWER, ScriptedOpenAI
from tests.conftest import GatewayFactory, RunningGateway, require_local_model

WEATHER_CHAT: Any = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
WEATHER_RESPONSES: Any = {"type": "function", "name": "get_weather", "description": "Weather for a city",
                          "parameters": WEATHER_CHAT["function"]["parameters"], "strict": False}


def client(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0)


async def test_chat_tool_round_trip(gw: RunningGateway, scripted: ScriptedOpenAI) -> None:
    c = client(gw)
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = await c.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_CHAT])
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"}]
    second = await c.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_CHAT])
    assert second.choices[0].message.content == f"{ANSWER} (tool said: sunny, 21 C)"
    sent = scripted.chats[-1]["messages"]
    assert sent[-2]["tool_calls"][0]["id"] == call.id and sent[-1]["tool_call_id"] == call.id
    assert scripted.chats[-1]["model"] == "scripted-model"


async def test_chat_stream_text_and_tool_call(gw: RunningGateway) -> None:
    c = client(gw)
    stream = await c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True,
                                             stream_options={"include_usage": True})
    chunks = [ch async for ch in stream]
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == ANSWER
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 18
    stream = await c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Paris?"}],
                                             tools=[WEATHER_CHAT], stream=True)
    args = "".join([tc.function.arguments or "" async for ch in stream if ch.choices
                    for tc in ch.choices[0].delta.tool_calls or [] if tc.function])
    assert json.loads(args) == {"city": "Paris"}


async def test_responses_function_tool_round_trip(gw: RunningGateway, scripted: ScriptedOpenAI) -> None:
    c = client(gw)
    first = await c.responses.create(model=MODEL, instructions="Be brief.", input="Weather in Paris?",
                                     tools=[WEATHER_RESPONSES])
    assert first.status == "completed"
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather" and json.loads(calls[0].arguments) == {"city": "Paris"}
    assert scripted.chats[-1]["messages"][0] == {"role": "system", "content": "Be brief."}
    follow: Any = [{"role": "user", "content": "Weather in Paris?"}, calls[0].model_dump(exclude_none=True),
                   {"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny, 21 C"}]
    second = await c.responses.create(model=MODEL, input=follow, tools=[WEATHER_RESPONSES])
    assert second.output_text == f"{ANSWER} (tool said: sunny, 21 C)"
    assert second.usage is not None and second.usage.total_tokens == 18
    sent = scripted.chats[-1]["messages"]
    assert sent[-1] == {"role": "tool", "tool_call_id": calls[0].call_id, "content": "sunny, 21 C"}


async def test_responses_stream_text_and_function_call(gw: RunningGateway) -> None:
    c = client(gw)
    events = [e async for e in await c.responses.create(model=MODEL, input="hi", stream=True)]
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == ANSWER
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final: Any = events[-1]
    assert final.response.output_text == ANSWER
    events = [e async for e in await c.responses.create(model=MODEL, input="Paris?", tools=[WEATHER_RESPONSES],
                                                         stream=True)]
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert len(done) == 1 and json.loads(done[0].arguments) == {"city": "Paris"}
    final = events[-1]
    assert final.type == "response.completed" and final.response.output[-1].type == "function_call"


async def test_stream_helper_of_the_responses_api(gw: RunningGateway) -> None:
    """`responses.stream(...)`, the SDK's accumulating helper, rebuilds the final response."""
    async with client(gw).responses.stream(model=MODEL, input="hi") as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_response()
    assert final.output_text == ANSWER


class Person(BaseModel):
    name: str
    age: int


async def test_responses_parse_with_a_pydantic_model(gw: RunningGateway, scripted: ScriptedOpenAI) -> None:
    """`responses.parse(text_format=...)`: text.format json_schema in, the parsed model out."""
    scripted.structured = {"name": "Ada", "age": 36}
    parsed = await client(gw).responses.parse(model=MODEL, input="Ada is 36.", text_format=Person)
    assert parsed.output_parsed == Person(name="Ada", age=36)
    fmt = scripted.chats[-1]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "Person"
    assert set(fmt["json_schema"]["schema"]["properties"]) == {"name", "age"}


async def test_bad_input_is_an_openai_error(gw: RunningGateway) -> None:
    with pytest.raises(openai.NotFoundError) as e:
        await client(gw).chat.completions.create(model="nosuch/model", messages=[{"role": "user", "content": "x"}])
    assert e.value.code == "model_not_found"


@pytest.mark.local_model
async def test_local_model_chat_and_responses(start_gateway: GatewayFactory) -> None:
    require_local_model()
    gw = await start_gateway(env={"UNIGATE_LOCAL": "on", "UNIGATE_MASTER_KEY": MASTER})
    c = client(gw)
    chat = await c.chat.completions.create(model="local/smollm2", max_tokens=8, temperature=0,
                                           messages=[{"role": "user", "content": "Say hi"}])
    assert chat.choices[0].message.content and chat.usage is not None and chat.usage.completion_tokens > 0
    resp = await c.responses.create(model="local/smollm2", input="Say hi", max_output_tokens=8, temperature=0)
    assert resp.output_text and resp.status in ("completed", "incomplete")
