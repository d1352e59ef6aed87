"""Agent and extraction frameworks on the OpenAI surface, against the scripted upstream:
pydantic-ai (an agent with one tool), instructor (a pydantic model extracted), the OpenAI
Agents SDK (an agent with a function tool, over the Responses API and over Chat Completions)
and simonw's `llm` (its CLI, through an OpenAI-compatible model entry)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import openai
import pytest
from pydantic import BaseModel

from tests.clients.conftest import MASTER, MODEL
from tests.clients.upstream import ANSWER, ScriptedOpenAI
from tests.conftest import RunningGateway


class Person(BaseModel):
    name: str
    age: int


def openai_client(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0)


def assert_tool_round_trip(scripted: ScriptedOpenAI, result_text: str) -> None:
    """The upstream was asked twice: with the tool offered, then with the tool's result."""
    first, last = scripted.chats[0], scripted.chats[-1]
    assert [t["function"]["name"] for t in first["tools"]] == ["get_weather"]
    assert last["messages"][-1]["role"] == "tool" and result_text in str(last["messages"][-1]["content"])


async def test_pydantic_ai_agent_with_a_tool(gw: RunningGateway, scripted: ScriptedOpenAI) -> None:
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    model = OpenAIChatModel(MODEL, provider=OpenAIProvider(base_url=gw.url + "/v1", api_key=MASTER))
    agent = Agent(model, instructions="Use the tool.")
    seen: list[str] = []

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """Weather for a city."""
        seen.append(city)
        return f"sunny in {city}"

    result = await agent.run("Weather in Paris?")
    assert seen == ["Paris"]
    assert result.output == f"{ANSWER} (tool said: sunny in Paris)"
    assert_tool_round_trip(scripted, "sunny in Paris")
    assert result.usage().total_tokens == 36  # two calls of 18 tokens each, as the gateway reported them


async def test_pydantic_ai_structured_output(gw: RunningGateway, scripted: ScriptedOpenAI) -> None:
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    scripted.structured = {"name": "Ada", "age": 36}
    scripted.tool_args = scripted.structured  # pydantic-ai asks for the output with a tool of its own
    model = OpenAIChatModel(MODEL, provider=OpenAIProvider(base_url=gw.url + "/v1", api_key=MASTER))
    result = await Agent(model, output_type=Person).run("Ada is 36.")
    assert result.output == Person(name="Ada", age=36)


async def test_instructor_extracts_a_model(gw: RunningGateway, scripted: ScriptedOpenAI) -> None:
    import instructor

    scripted.structured = {"name": "Ada", "age": 36}
    client = instructor.from_openai(openai_client(gw))
    person = await client.chat.completions.create(model=MODEL, response_model=Person, max_retries=0,
                                                  messages=[{"role": "user", "content": "Ada is 36."}])
    # instructor answers with its own subclass of the model: compare the fields
    assert isinstance(person, Person) and person.model_dump() == {"name": "Ada", "age": 36}
    sent = scripted.chats[-1]
    assert sent["tool_choice"]["function"]["name"] == "Person"
    assert set(sent["tools"][0]["function"]["parameters"]["properties"]) == {"name", "age"}


async def _agents_sdk_round_trip(gw: RunningGateway, api: str, streamed: bool = False) -> tuple[str, list[str]]:
    from agents import (
        Agent,
        OpenAIChatCompletionsModel,
        OpenAIResponsesModel,
        Runner,
        function_tool,
        set_tracing_disabled,
    )

    set_tracing_disabled(True)  # the SDK would otherwise upload traces to OpenAI
    seen: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """Weather for a city."""
        seen.append(city)
        return f"sunny in {city}"

    client = openai_client(gw)
    model = (OpenAIResponsesModel(model=MODEL, openai_client=client) if api == "responses"
             else OpenAIChatCompletionsModel(model=MODEL, openai_client=client))
    agent = Agent(name="weather", instructions="Use the tool.", model=model, tools=[get_weather])
    if not streamed:
        result = await Runner.run(agent, "Weather in Paris?", max_turns=3)
        return str(result.final_output), seen
    run = Runner.run_streamed(agent, "Weather in Paris?", max_turns=3)
    kinds = {ev.type async for ev in run.stream_events()}
    assert "raw_response_event" in kinds  # the Responses event stream reached the SDK as events
    return str(run.final_output), seen


@pytest.mark.parametrize("streamed", [False, True], ids=["run", "run_streamed"])
async def test_openai_agents_sdk_over_responses(streamed: bool, gw: RunningGateway, scripted: ScriptedOpenAI) -> None:
    output, seen = await _agents_sdk_round_trip(gw, "responses", streamed)
    assert [bool(c.get("stream")) for c in scripted.chats] == [streamed, streamed]
    assert seen == ["Paris"]
    assert output == f"{ANSWER} (tool said: sunny in Paris)"
    assert_tool_round_trip(scripted, "sunny in Paris")
    assert scripted.chats[0]["messages"][0] == {"role": "system", "content": "Use the tool."}


async def test_openai_agents_sdk_over_chat_completions(gw: RunningGateway, scripted: ScriptedOpenAI) -> None:
    output, seen = await _agents_sdk_round_trip(gw, "chat")
    assert seen == ["Paris"]
    assert output == f"{ANSWER} (tool said: sunny in Paris)"
    assert_tool_round_trip(scripted, "sunny in Paris")


def llm_user_dir(root: Path, gw: RunningGateway) -> Path:
    """An LLM_USER_PATH with one OpenAI-compatible model entry for the gateway and its key."""
    d = root / "llm"
    d.mkdir()
    (d / "extra-openai-models.yaml").write_text(
        f"- model_id: unigate\n  model_name: {MODEL}\n  api_base: {gw.url}/v1\n  api_key_name: unigate\n")
    (d / "keys.json").write_text(json.dumps({"unigate": MASTER}))
    return d


async def test_llm_cli_prompt(gw: RunningGateway, scripted: ScriptedOpenAI, tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "LLM_USER_PATH": str(llm_user_dir(tmp_path, gw)),
           "LLM_LOAD_PLUGINS": ""}  # no plugins: the embedded-model plugin in this venv is not what is tested
    # the CLI as a subprocess, waited on without blocking the loop the gateway serves from
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "llm", "-m", "unigate", "--no-log",
                                                "What colour is the sky?", env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert out.decode().strip() == ANSWER
    sent = scripted.chats[-1]
    assert sent["model"] == "scripted-model" and sent["stream"] is True
    assert sent["messages"][-1]["content"] == "What colour is the sky?"
    assert scripted.last.headers["Authorization"] == "Bearer sk-upstream-test"  # the gateway's key upstream, not the client's
