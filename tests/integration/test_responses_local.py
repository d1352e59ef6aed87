"""The Responses surface in front of the embedded model (SmolLM2 in process): JSON and stream,
json_schema output, previous_response_id, and its refusal of tools (the model has no tool
calling: a clear 400, not a silent answer). Prompts are tiny and outputs short."""

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


async def test_function_tools_are_a_clear_400(start_gateway: GatewayFactory, tmp_path: Any) -> None:
    gw = await local_gateway(start_gateway, tmp_path)
    tool: Any = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}
    with pytest.raises(openai.BadRequestError) as ei:
        await client(gw).responses.create(model=MODEL, input="Weather?", tools=[tool], max_output_tokens=4)
    assert ei.value.param == "tools" and "tool" in ei.value.message
