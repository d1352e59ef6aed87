"""The Responses surface in front of the embedded model (SmolLM2 in process): JSON and stream,
json_schema output, previous_response_id, and a function-tool round trip (the model calls under
a grammar: providers/local/tools.py). Prompts are tiny and outputs short."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.conftest import GatewayFactory, RunningGateway, require_local_model

pytestmark = pytest.mark.local_model

MODEL = "local/smollm2"
MASTER = "sk-master-test"


@pytest.fixture(autouse=True)
def _needs_the_model() -> None:
    require_local_model()


async def local_gateway(start_gateway: GatewayFactory, tmp_path: Any) -> RunningGateway:
    return await start_gateway(env={"UNIGATE_LOCAL": "on", "UNIGATE_MASTER_KEY": MASTER,
                                    "UNIGATE_DATA_DIR": str(tmp_path)})


def client(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0)


async def test_create_stream_and_chain(start_gateway: GatewayFactory, tmp_path: Any) -> None:
    gw = await local_gateway(start_gateway, tmp_path)
    c = client(gw)
    r = await c.responses.create(model=MODEL, input="Say hi.", max_output_tokens=8, temperature=0)
    assert r.status in ("completed", "incomplete") and r.output_text
    assert r.usage is not None and r.usage.input_tokens > 0 and 0 < r.usage.output_tokens <= 8
    if r.status == "incomplete":
        assert r.incomplete_details is not None and r.incomplete_details.reason == "max_output_tokens"

    events = [e async for e in await c.responses.create(model=MODEL, input="Say hi.", max_output_tokens=8,
                                                        temperature=0, stream=True)]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].type == "response.created" and events[-1].type in ("response.completed", "response.incomplete")
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text and text == events[-1].response.output_text
    assert text == r.output_text  # temperature 0: the same answer both ways

    r2 = await c.responses.create(model=MODEL, input="Again.", previous_response_id=r.id, max_output_tokens=4)
    assert r2.previous_response_id == r.id and r2.usage is not None
    assert r2.usage.input_tokens > r.usage.input_tokens  # the first turn went in again


async def test_json_schema_output(start_gateway: GatewayFactory, tmp_path: Any) -> None:
    gw = await local_gateway(start_gateway, tmp_path)
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12}},
              "required": ["name"], "additionalProperties": False}
    r = await client(gw).responses.create(
        model=MODEL, input="A name in JSON.", max_output_tokens=30, temperature=0,
        text={"format": {"type": "json_schema", "name": "person", "schema": schema, "strict": True}})
    assert r.status == "completed"
    obj = json.loads(r.output_text)
    assert set(obj) == {"name"} and isinstance(obj["name"], str)


WEATHER: Any = {"type": "function", "name": "get_weather", "description": "Get the weather in a city.",
               "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
                              "required": ["city"], "additionalProperties": False}}


async def test_function_tool_round_trip(start_gateway: GatewayFactory, tmp_path: Any) -> None:
    """The SDK's agent loop: a function_call item, the caller runs it, its function_call_output
    goes back (by previous_response_id, or with the call in the input), and the answer is text."""
    gw = await local_gateway(start_gateway, tmp_path)
    c = client(gw)
    r = await c.responses.create(model=MODEL, input="What is the weather in Paris?", tools=[WEATHER],
                                 max_output_tokens=40, temperature=0)
    assert r.status == "completed"
    [call] = r.output
    assert call.type == "function_call" and call.name == "get_weather" and call.call_id.startswith("call_")
    args = json.loads(call.arguments)
    assert set(args) == {"city"} and isinstance(args["city"], str)
    output: Any = {"type": "function_call_output", "call_id": call.call_id, "output": '{"sky": "sunny"}'}
    r2 = await c.responses.create(model=MODEL, previous_response_id=r.id, input=[output], tools=[WEATHER],
                                  max_output_tokens=12, temperature=0)
    assert [item.type for item in r2.output] == ["message"] and r2.output_text
    assert r2.usage is not None and r2.usage.input_tokens > 0

    # streamed: the same call, argument deltas as they are generated, then the text turn
    events = [e async for e in await c.responses.create(
        model=MODEL, input="What is the weather in Paris?", tools=[WEATHER], max_output_tokens=40,
        temperature=0, stream=True)]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    added = [e for e in events if e.type == "response.output_item.added"]
    assert [e.item.type for e in added] == ["function_call"] and added[0].item.name == "get_weather"
    deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    [done] = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert deltas == done.arguments == call.arguments  # temperature 0: the same call both ways
    scall = events[-1].response.output[0]
    assert scall.type == "function_call"
    items: Any = [{"role": "user", "content": "What is the weather in Paris?"},
                  scall.model_dump(exclude_none=True), {**output, "call_id": scall.call_id}]
    events2 = [e async for e in await c.responses.create(model=MODEL, input=items, tools=[WEATHER],
                                                         max_output_tokens=12, temperature=0, stream=True)]
    text = "".join(e.delta for e in events2 if e.type == "response.output_text.delta")
    assert text and text == events2[-1].response.output_text
    assert events2[-1].type in ("response.completed", "response.incomplete")
