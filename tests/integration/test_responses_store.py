"""Stored responses: `store` and `previous_response_id` chaining turns through the state layer,
`GET` / `DELETE /v1/responses/{id}` and `input_items`, ownership by key, the gateway without a
state layer, and the Responses surface's 400s."""

from __future__ import annotations

from typing import Any

import aiohttp
import openai
import orjson
import pytest

from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.openai import FakeOpenAI
from unigate.state.db import Sql

MASTER = "sk-master-test"
COMPAT = "xai/grok-fake"


def env(openai_fake: FakeOpenAI, **extra: str) -> dict[str, str]:
    return {"XAI_API_KEY": "xai-upstream-test", "XAI_BASE_URL": openai_fake.url + "/v1",
            "OPENAI_API_KEY": "sk-upstream-test", "OPENAI_BASE_URL": openai_fake.url + "/v1", **extra}


async def stateful(start_gateway: GatewayFactory, openai_fake: FakeOpenAI, tmp_path: Any) -> RunningGateway:
    return await start_gateway(env=env(openai_fake, UNIGATE_MASTER_KEY=MASTER, UNIGATE_DATA_DIR=str(tmp_path)))


def client(gw: RunningGateway, key: str = MASTER) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)


async def new_key(gw: RunningGateway, name: str) -> str:
    async with aiohttp.ClientSession() as s, s.post(gw.url + "/admin/keys", headers={"Authorization": f"Bearer {MASTER}"},
                                                    data=orjson.dumps({"name": name})) as r:
        assert r.status in (200, 201)
        return str((await r.json())["key"])


async def test_previous_response_id_chains_turns(start_gateway: GatewayFactory, openai_fake: FakeOpenAI,
                                                 tmp_path: Any) -> None:
    gw = await stateful(start_gateway, openai_fake, tmp_path)
    c = client(gw)
    first = await c.responses.create(model=COMPAT, input="My name is Ada.", instructions="Be brief.")
    assert first.store is True
    second = await c.responses.create(model=COMPAT, input="What is my name?", previous_response_id=first.id,
                                      instructions="Be kind.")
    assert second.previous_response_id == first.id and second.output_text == "Hello from grok-fake!"
    # the upstream saw the first turn (its input and its answer); instructions are not carried over
    assert openai_fake.last.json["messages"] == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Hello from grok-fake!"},
        {"role": "user", "content": "What is my name?"},
    ]
    # a third turn, streamed, then chained at once: the whole conversation again
    stream = await c.responses.create(model=COMPAT, input="Again?", previous_response_id=second.id, stream=True)
    third = [e async for e in stream][-1].response
    assert third.status == "completed"
    await c.responses.create(model=COMPAT, input="Last.", previous_response_id=third.id)
    assert [m["content"] for m in openai_fake.last.json["messages"]] == [
        "My name is Ada.", "Hello from grok-fake!", "What is my name?", "Hello from grok-fake!", "Again?",
        "Hello from grok-fake!", "Last."]

    # the ledger row of a Responses call, persisted
    await gw.gateway.ledger.flush()
    await gw.gateway.ledger.stop()
    rows = await gw.gateway.state.db.fetch(Sql(
        "SELECT endpoint, requested_model, input_tokens, output_tokens, status FROM usage ORDER BY time"))
    assert len(rows) == 4 and all(tuple(r) == ("chat", COMPAT, 12, 5, 200) for r in rows), rows


async def test_a_stored_turn_continues_on_openai_by_translation(start_gateway: GatewayFactory,
                                                                 openai_fake: FakeOpenAI, tmp_path: Any) -> None:
    """A conversation the gateway stored, continued on a model with the Responses API upstream:
    OpenAI does not know the id, so that turn is translated (to its chat API) with the history."""
    gw = await stateful(start_gateway, openai_fake, tmp_path)
    c = client(gw)
    first = await c.responses.create(model=COMPAT, input="Hi, I am Ada.")
    second = await c.responses.create(model="openai/gpt-4o-mini", input="Who am I?", previous_response_id=first.id)
    assert second.id.startswith("resp_") and second.id != "resp_fake1" and second.previous_response_id == first.id
    assert openai_fake.last.path == "/v1/chat/completions"
    assert [m["content"] for m in openai_fake.last.json["messages"]] == [
        "Hi, I am Ada.", "Hello from grok-fake!", "Who am I?"]


async def test_tool_round_trip_over_previous_response_id(start_gateway: GatewayFactory, openai_fake: FakeOpenAI,
                                                         tmp_path: Any) -> None:
    gw = await stateful(start_gateway, openai_fake, tmp_path)
    c = client(gw)
    tool = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}
    r = await c.responses.create(model="xai/tool-loop", input="Weather?", tools=[tool])  # type: ignore[list-item]
    call = r.output[0]
    assert call.type == "function_call"
    r2 = await c.responses.create(model="xai/tool-loop", previous_response_id=r.id, tools=[tool],  # type: ignore[list-item]
                                  input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}])
    assert r2.output_text == "The tool said: sunny"
    msgs = openai_fake.last.json["messages"]
    assert msgs[1]["tool_calls"][0]["id"] == call.call_id and msgs[2] == {
        "role": "tool", "tool_call_id": call.call_id, "content": "sunny"}


async def test_get_delete_and_input_items(start_gateway: GatewayFactory, openai_fake: FakeOpenAI,
                                          tmp_path: Any) -> None:
    gw = await stateful(start_gateway, openai_fake, tmp_path)
    c = client(gw)
    r = await c.responses.create(model=COMPAT, input=[{"role": "user", "content": "one"},
                                                      {"role": "user", "content": "two"}], metadata={"k": "v"})
    got = await c.responses.retrieve(r.id)
    assert got.model_dump() == r.model_dump()
    with pytest.raises(openai.BadRequestError) as si:
        await c.responses.retrieve(r.id, stream=True)
    assert si.value.param == "stream"
    items = await c.responses.input_items.list(r.id, order="asc")
    assert [(i.type, i.role, i.content[0].type, i.content[0].text) for i in items.data] == [  # type: ignore[union-attr]
        ("message", "user", "input_text", "one"), ("message", "user", "input_text", "two")]
    assert all(i.id for i in items.data) and items.has_more is False
    desc = await c.responses.input_items.list(r.id)
    assert [i.id for i in desc.data] == [i.id for i in reversed(items.data)]

    unstored = await c.responses.create(model=COMPAT, input="x", store=False)
    assert unstored.store is False
    with pytest.raises(openai.NotFoundError):
        await c.responses.retrieve(unstored.id)

    await c.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError) as ei:
        await c.responses.retrieve(r.id)
    assert r.id in ei.value.message
    with pytest.raises(openai.NotFoundError):
        await c.responses.delete(r.id)
    with pytest.raises(openai.BadRequestError) as bi:
        await c.responses.create(model=COMPAT, input="x", previous_response_id=r.id)
    assert bi.value.code == "previous_response_not_found" and bi.value.param == "previous_response_id"


async def test_stored_responses_belong_to_their_key(start_gateway: GatewayFactory, openai_fake: FakeOpenAI,
                                                    tmp_path: Any) -> None:
    gw = await stateful(start_gateway, openai_fake, tmp_path)
    alice, bob = client(gw, await new_key(gw, "alice")), client(gw, await new_key(gw, "bob"))
    r = await alice.responses.create(model=COMPAT, input="secret plans")
    assert (await alice.responses.retrieve(r.id)).id == r.id
    for attempt in (bob.responses.retrieve(r.id), bob.responses.delete(r.id), client(gw).responses.retrieve(r.id)):
        with pytest.raises(openai.NotFoundError):
            await attempt
    with pytest.raises(openai.BadRequestError) as ei:
        await bob.responses.create(model=COMPAT, input="and?", previous_response_id=r.id)
    assert ei.value.code == "previous_response_not_found"
    assert (await alice.responses.retrieve(r.id)).id == r.id  # still there


async def test_without_state_layer(start_gateway: GatewayFactory, openai_fake: FakeOpenAI) -> None:
    gw = await start_gateway(env=env(openai_fake))  # no master key: loopback, no state layer
    c = client(gw, "unused")
    r = await c.responses.create(model=COMPAT, input="hi")  # store defaults to true: accepted, not kept
    assert r.store is False and r.output_text == "Hello from grok-fake!"
    with pytest.raises(openai.BadRequestError) as ei:
        await c.responses.create(model=COMPAT, input="hi", previous_response_id=r.id)
    assert ei.value.param == "previous_response_id" and "state layer" in ei.value.message
    with pytest.raises(openai.NotFoundError) as ni:
        await c.responses.retrieve(r.id)
    assert "state layer" in ni.value.message
    # a model on OpenAI itself: its own stored responses, so the id goes upstream untouched
    r2 = await c.responses.create(model="openai/gpt-4o-mini", input="and?", previous_response_id="resp_at_openai")
    assert r2.previous_response_id == "resp_at_openai"
    assert openai_fake.last.path == "/v1/responses" and openai_fake.last.json["previous_response_id"] == "resp_at_openai"


BAD: list[tuple[dict[str, Any], str, str]] = [
    ({"tools": [{"type": "web_search"}]}, "tools[0].type", "built-in tool 'web_search'"),
    ({"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}, "tools[0].type", "built-in"),
    ({"tools": [{"type": "computer_use_preview", "display_width": 1, "display_height": 1, "environment": "linux"}]},
     "tools[0].type", "built-in"),
    ({"tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]}, "tools[0].type", "built-in"),
    ({"tools": [{"type": "mcp", "server_label": "x"}]}, "tools[0].type", "built-in"),
    ({"tools": [{"type": "image_generation"}]}, "tools[0].type", "built-in"),
    ({"tool_choice": {"type": "web_search_preview"}}, "tool_choice.type", "built-in"),
    ({"tools": [{"type": "function"}]}, "tools[0].name", "Missing"),
    ({"input": None}, "input", "Missing"),
    ({"input": 42}, "input", "expected a string or an array"),
    ({"input": []}, "input", "empty"),
    ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role", "robot"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type", "not supported"),
    ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id", "Missing"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]},
     "input[0].content[0].file_id", "files API"),
    ({"input": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "input[0].content[0].type", "input_audio"),
    ({"text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format.name", "Missing"),
    ({"text": {"format": {"type": "yaml"}}}, "text.format.type", "yaml"),
    ({"max_output_tokens": 0}, "max_output_tokens", "at least 1"),
    ({"reasoning": {"effort": "extreme"}}, "reasoning.effort", "extreme"),
    ({"temperature": "hot"}, "temperature", "number"),
    ({"frobnicate": True}, "frobnicate", "Unrecognized"),
    ({"background": True}, "background", "background"),
    ({"stream": "yes"}, "stream", "boolean"),
    ({"metadata": {"k": 1}}, "metadata.k", "strings"),
]


@pytest.mark.parametrize(("extra", "param", "words"), BAD, ids=[p for _, p, _ in BAD])
async def test_bad_requests_are_clear_400s(start_gateway: GatewayFactory, openai_fake: FakeOpenAI,
                                           extra: dict[str, Any], param: str, words: str) -> None:
    gw = await start_gateway(env=env(openai_fake))
    body = {"model": COMPAT, "input": "hi", **extra}
    before = len(openai_fake.requests)
    async with aiohttp.ClientSession() as s, s.post(gw.url + "/v1/responses", json=body) as r:
        assert r.status == 400, await r.text()
        err = (await r.json())["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == param and words in err["message"], err
    assert len(openai_fake.requests) == before  # refused before any upstream call


async def test_stored_responses_expire_after_the_configured_days(start_gateway: GatewayFactory,
                                                                 openai_fake: FakeOpenAI, tmp_path: Any) -> None:
    import asyncio

    # 1.5 s, in days: the config's value reaches the store
    gw = await start_gateway({"state": {"responses_ttl_days": 1.5 / 86400}},
                             env=env(openai_fake, UNIGATE_MASTER_KEY=MASTER, UNIGATE_DATA_DIR=str(tmp_path)))
    c = client(gw)
    first = await c.responses.create(model=COMPAT, input="Remember me.")
    assert (await c.responses.retrieve(first.id)).id == first.id
    await asyncio.sleep(1.6)
    with pytest.raises(openai.NotFoundError):
        await c.responses.retrieve(first.id)
    with pytest.raises(openai.BadRequestError):  # as for an id never stored
        await c.responses.create(model=COMPAT, input="Who am I?", previous_response_id=first.id)
