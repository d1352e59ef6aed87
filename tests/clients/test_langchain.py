"""LangChain's `ChatOpenAI` (the OpenAI surface) and `ChatAnthropic` (the Anthropic surface):
invoke, stream, `bind_tools` (the tool call comes back parsed, and its result goes back in) and
`with_structured_output` with a pydantic model, each against the scripted upstream."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from tests.clients.conftest import MASTER, MODEL
from tests.clients.upstream import ANSWER, ScriptedOpenAI
from tests.conftest import GatewayFactory, RunningGateway, require_local_model
from tests.fakes.anthropic import FakeAnthropic

CLAUDE = "claude-sonnet-4-5-20250929"  # a bare vendor name, routed to the mock by the gateway's config


class Person(BaseModel):
    name: str
    age: int


@tool
def get_weather(city: str) -> str:
    """Weather for a city."""
    return f"sunny in {city}"


def chat_model(kind: str, gw: RunningGateway) -> BaseChatModel:
    if kind == "openai":
        return ChatOpenAI(model=MODEL, base_url=gw.url + "/v1", api_key=MASTER, max_retries=0)  # type: ignore[arg-type]
    return ChatAnthropic(model_name=CLAUDE, base_url=gw.url, api_key=MASTER, max_retries=0,  # type: ignore[arg-type]
                         max_tokens_to_sample=256, timeout=30, stop=None)


KINDS = pytest.mark.parametrize("kind", ["openai", "anthropic"])


@KINDS
async def test_invoke(kind: str, gw: RunningGateway, scripted: ScriptedOpenAI) -> None:
    msg = await chat_model(kind, gw).ainvoke("What colour is the sky?")
    assert msg.content == ANSWER or msg.content == [{"type": "text", "text": ANSWER}]
    assert isinstance(msg, AIMessage) and msg.usage_metadata is not None and msg.usage_metadata["total_tokens"] == 18
    assert scripted.chats[-1]["messages"][-1]["content"] in ("What colour is the sky?",
                                                              [{"type": "text", "text": "What colour is the sky?"}])


@KINDS
async def test_stream(kind: str, gw: RunningGateway) -> None:
    chunks = [c async for c in chat_model(kind, gw).astream("hi")]
    assert len(chunks) > 1
    text = "".join(c.content if isinstance(c.content, str) else
                   "".join(p.get("text", "") for p in c.content if isinstance(p, dict)) for c in chunks)
    assert text == ANSWER


@KINDS
async def test_bind_tools_round_trip(kind: str, gw: RunningGateway, scripted: ScriptedOpenAI) -> None:
    model = chat_model(kind, gw).bind_tools([get_weather])
    question = HumanMessage("Weather in Paris?")
    ai = await model.ainvoke([question])
    assert isinstance(ai, AIMessage) and len(ai.tool_calls) == 1
    call = ai.tool_calls[0]
    assert call["name"] == "get_weather" and call["args"] == {"city": "Paris"} and call["id"]
    result = await get_weather.ainvoke(call)  # a ToolMessage carrying the call's id
    assert isinstance(result, ToolMessage)
    final = await model.ainvoke([question, ai, result])
    assert ANSWER in final.text and "sunny in Paris" in final.text
    assert scripted.chats[-1]["messages"][-1]["role"] == "tool"


@KINDS
async def test_with_structured_output(kind: str, gw: RunningGateway, scripted: ScriptedOpenAI) -> None:
    scripted.structured = {"name": "Ada", "age": 36}
    person: Any = await chat_model(kind, gw).with_structured_output(Person).ainvoke("Ada is 36.")
    assert person == Person(name="Ada", age=36)
    sent = scripted.chats[-1]
    # each integration asks in its own way (a json_schema response format or a forced tool); both reach the upstream
    asked = sent.get("response_format", {}).get("json_schema", {}).get("name") or sent["tool_choice"]["function"]["name"]
    assert asked == "Person"


async def test_chat_anthropic_against_an_anthropic_upstream(start_gateway: GatewayFactory) -> None:
    """ChatAnthropic with an Anthropic model behind the gateway: the request passes through."""
    fake = FakeAnthropic()
    await fake.start()
    try:
        gw = await start_gateway(env={"ANTHROPIC_API_KEY": fake.api_key, "ANTHROPIC_BASE_URL": fake.url,
                                      "UNIGATE_MASTER_KEY": MASTER})

        def model(name: str) -> ChatAnthropic:
            return ChatAnthropic(model_name=name, base_url=gw.url, api_key=MASTER, max_retries=0,  # type: ignore[arg-type]
                                 max_tokens_to_sample=64, timeout=30, stop=None)

        msg = await model("anthropic/claude-haiku-4-5").ainvoke("hi")
        assert msg.text == "Hello from claude-haiku-4-5!"
        ai = await model("anthropic/tools").bind_tools([get_weather]).ainvoke("Weather in Paris?")
        assert isinstance(ai, AIMessage) and [(c["name"], c["args"]) for c in ai.tool_calls] == [
            ("get_weather", {"city": "Paris"})]
        assert not fake.violations, fake.violations
    finally:
        await fake.stop()


@pytest.mark.local_model
async def test_both_chat_models_on_the_local_model(start_gateway: GatewayFactory) -> None:
    require_local_model()
    gw = await start_gateway(env={"UNIGATE_LOCAL": "on", "UNIGATE_MASTER_KEY": MASTER})
    gpt = ChatOpenAI(model="local/smollm2", base_url=gw.url + "/v1", api_key=MASTER, max_retries=0,  # type: ignore[arg-type]
                     max_completion_tokens=8, temperature=0)
    claude = ChatAnthropic(model_name="local/smollm2", base_url=gw.url, api_key=MASTER, max_retries=0,  # type: ignore[arg-type]
                           max_tokens_to_sample=8, temperature=0, timeout=60, stop=None)
    for model in (gpt, claude):
        msg = await model.ainvoke("Say hi")
        assert msg.text.strip()
        assert isinstance(msg, AIMessage) and msg.usage_metadata is not None and msg.usage_metadata["output_tokens"] > 0
