"""Function calling on the embedded model, for real: SmolLM2-135M writes the call under a grammar
built from the tools' schemas, driven with the official openai SDK. Prompts are tiny, outputs
short, temperature 0 (each generation takes seconds on a small machine, so there are few)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import openai
import pytest

from tests.conftest import GatewayFactory, RunningGateway, require_local_model

pytestmark = pytest.mark.local_model

MODEL = "local/smollm2"
ON = {"UNIGATE_LOCAL": "on"}
WEATHER: dict[str, Any] = {
    "type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
    "required": ["city"], "additionalProperties": False,
}
ADD: dict[str, Any] = {
    "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"], "additionalProperties": False,
}
SCHEMAS = {"get_weather": WEATHER, "add": ADD}
TOOLS: Any = [
    {"type": "function", "function": {"name": "get_weather", "description": "Get the weather in a city.",
                                      "parameters": WEATHER}},
    {"type": "function", "function": {"name": "add", "description": "Add two integers.", "parameters": ADD}},
]
ASK: Any = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(autouse=True)
def _needs_the_model() -> None:
    require_local_model()


def client(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)


def check_arguments(name: str, arguments: str) -> dict[str, Any]:
    args: dict[str, Any] = json.loads(arguments)
    jsonschema.validate(args, SCHEMAS[name])
    return args


async def test_call_then_result_then_text(start_gateway: GatewayFactory) -> None:
    c = client(await start_gateway(env=ON))
    r = await c.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, max_tokens=40, temperature=0)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    call: Any = calls[0]
    assert call.type == "function" and call.id.startswith("call_") and call.function.name in SCHEMAS
    check_arguments(call.function.name, call.function.arguments)
    assert r.usage is not None and r.usage.completion_tokens > 0

    # the round trip: the call and its result go back, and the answer is text
    history: Any = [*ASK, choice.message.model_dump(exclude_none=True),
                    {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny", "celsius": 21}'}]
    r2 = await c.chat.completions.create(model=MODEL, messages=history, tools=TOOLS, max_tokens=16, temperature=0)
    assert r2.choices[0].finish_reason in ("stop", "length")
    assert r2.choices[0].message.tool_calls is None and r2.choices[0].message.content


async def test_streamed_call_matches_the_json_one(start_gateway: GatewayFactory) -> None:
    c = client(await start_gateway(env=ON))
    named: Any = {"type": "function", "function": {"name": "add"}}
    ask: Any = [{"role": "user", "content": "What is 2 plus 3?"}]
    r = await c.chat.completions.create(model=MODEL, messages=ask, tools=TOOLS, tool_choice=named,
                                        max_tokens=40, temperature=0)
    assert r.choices[0].finish_reason == "tool_calls"
    [call] = r.choices[0].message.tool_calls or []
    assert call.function.name == "add"  # tool_choice named it
    args = check_arguments("add", call.function.arguments)
    assert set(args) == {"a", "b"}

    stream = await c.chat.completions.create(model=MODEL, messages=ask, tools=TOOLS, tool_choice=named,
                                             max_tokens=40, temperature=0, stream=True,
                                             stream_options={"include_usage": True})
    chunks = [ch async for ch in stream]
    deltas = [ch.choices[0].delta for ch in chunks if ch.choices]
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices]
    assert deltas[0].role == "assistant" and deltas[0].content is None
    head = deltas[1].tool_calls
    assert head is not None and head[0].index == 0 and head[0].id is not None and head[0].id.startswith("call_")
    assert head[0].function is not None and head[0].function.name == "add"
    pieces = [d.tool_calls[0].function.arguments for d in deltas[2:] if d.tool_calls and d.tool_calls[0].function]
    assert len(pieces) > 1  # the arguments came token by token
    assert "".join(p or "" for p in pieces) == call.function.arguments  # temperature 0: the same call
    assert finishes[-1] == "tool_calls" and set(finishes[:-1]) == {None}
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


async def test_bad_tools_schema_is_a_clear_400(start_gateway: GatewayFactory) -> None:
    c = client(await start_gateway(env=ON))
    bad: Any = [TOOLS[0], {"type": "function", "function": {"name": "f", "parameters": {"type": "nonsense"}}}]
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as ei:
            await c.chat.completions.create(model=MODEL, messages=ASK, tools=bad, max_tokens=8, stream=stream)
        err: Any = ei.value.body
        assert err["param"] == "tools[1].function.parameters", err
        assert "tools[1] (f)" in err["message"] and "grammar" in err["message"], err
    unknown: Any = {"type": "function", "function": {"name": "nope"}}
    with pytest.raises(openai.BadRequestError) as ei:
        await c.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, tool_choice=unknown, max_tokens=8)
    assert ei.value.param == "tool_choice.function.name"
