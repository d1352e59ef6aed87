"""The official openai SDK through the gateway against a fake OpenAI-compatible upstream."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import RunningGateway
from tests.fakes.openai import FakeOpenAI

MSGS = [{"role": "user", "content": "Say hello"}]


def client(gw: RunningGateway, key: str = "sk-master-test") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)


async def test_chat(gw_openai: RunningGateway, openai_fake: FakeOpenAI) -> None:
    r = await client(gw_openai).chat.completions.create(model="openai/gpt-4o-mini", messages=MSGS, temperature=0.3, seed=7)
    assert r.choices[0].message.content == "Hello from gpt-4o-mini!"
    assert r.usage is not None and r.usage.total_tokens == 17
    sent = openai_fake.last
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["Authorization"] == "Bearer sk-upstream-test"
    assert sent.json["model"] == "gpt-4o-mini"
    assert sent.json["temperature"] == 0.3 and sent.json["seed"] == 7
    assert sent.json["messages"] == MSGS


async def test_passes_through_tools_and_response_format(gw_openai: RunningGateway, openai_fake: FakeOpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    rf = {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}, "strict": True}}
    r = await client(gw_openai).chat.completions.create(
        model="openai/tools", messages=MSGS, tools=tools, tool_choice="auto", response_format=rf, n=1,
        stop=["\n\n"], logprobs=False, user="u-1",  # type: ignore[arg-type]
    )
    tc = r.choices[0].message.tool_calls
    assert tc is not None and tc[0].function.name == "get_weather"
    assert r.choices[0].finish_reason == "tool_calls"
    sent = openai_fake.last.json
    assert sent["tools"] == tools and sent["tool_choice"] == "auto" and sent["response_format"] == rf
    assert sent["stop"] == ["\n\n"] and sent["user"] == "u-1" and sent["n"] == 1


async def test_stream_without_usage_hides_usage_chunk(gw_openai: RunningGateway, openai_fake: FakeOpenAI) -> None:
    stream = await client(gw_openai).chat.completions.create(model="openai/gpt-4o-mini", messages=MSGS, stream=True)
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from gpt-4o-mini!"
    assert all(c.choices for c in chunks), "usage-only chunk leaked to a client that did not ask"
    assert openai_fake.last.json["stream_options"] == {"include_usage": True}  # the gateway asked for itself
    await gw_openai.gateway.ledger.flush()
    rec = gw_openai.gateway.ledger.recent[-1]
    assert rec.usage_known and rec.prompt_tokens == 12 and rec.completion_tokens == 5


async def test_stream_with_usage_shows_usage_chunk(gw_openai: RunningGateway) -> None:
    stream = await client(gw_openai).chat.completions.create(
        model="openai/gpt-4o-mini", messages=MSGS, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 17


async def test_stream_tool_arguments_in_fragments(gw_openai: RunningGateway) -> None:
    stream = await client(gw_openai).chat.completions.create(model="openai/tools", messages=MSGS, stream=True)
    args = ""
    name = None
    async for c in stream:
        for tc in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            name = name or tc.function.name
            args += tc.function.arguments or ""
    assert name == "get_weather" and args == '{"city": "Paris"}'


async def test_ragged_sse_is_relayed_intact(gw_openai: RunningGateway) -> None:
    stream = await client(gw_openai).chat.completions.create(model="openai/ragged", messages=MSGS, stream=True)
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from ragged!"
    assert all(c.choices for c in chunks)


async def test_embeddings(gw_openai: RunningGateway, openai_fake: FakeOpenAI) -> None:
    r = await client(gw_openai).embeddings.create(model="openai/text-embedding-3-small", input=["a", "b"])
    assert [d.index for d in r.data] == [0, 1] and len(r.data[0].embedding) == 3
    assert openai_fake.last.path == "/v1/embeddings" and openai_fake.last.json["model"] == "text-embedding-3-small"


async def test_legacy_completions(gw_openai: RunningGateway, openai_fake: FakeOpenAI) -> None:
    r = await client(gw_openai).completions.create(model="openai/gpt-3.5-turbo-instruct", prompt="Hello")
    assert r.choices[0].text == " world"
    s = await client(gw_openai).completions.create(model="openai/gpt-3.5-turbo-instruct", prompt="Hello", stream=True)
    assert "".join([c.choices[0].text async for c in s if c.choices]) == " world"
    assert openai_fake.last.path == "/v1/completions"


async def test_models_list_and_get(start_gateway, openai_fake: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    gw = await start_gateway(
        {"deployments": [{"name": "fast", "model": "openai/gpt-4o-mini"}], "aliases": {"smart": ["fast"]}},
        env={"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": openai_fake.url + "/v1"},
    )
    c = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)
    ids = [m.id async for m in c.models.list()]
    assert "fast" in ids and "smart" in ids
    m = await c.models.retrieve("openai/gpt-4o-mini")
    assert m.id == "openai/gpt-4o-mini" and m.owned_by == "openai"
    with pytest.raises(openai.NotFoundError) as ei:
        await c.models.retrieve("nope/x")
    assert ei.value.code == "model_not_found"


async def test_alias_falls_back_to_next_deployment(start_gateway, openai_fake: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    gw = await start_gateway(
        {"aliases": {"resilient": ["openai/error-503", "openai/backup"]}},
        env={"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": openai_fake.url + "/v1"},
    )
    c = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)
    r = await c.chat.completions.create(model="resilient", messages=MSGS)
    assert r.choices[0].message.content == "Hello from backup!"
    assert [q.json["model"] for q in openai_fake.requests] == ["error-503", "backup"]


async def test_raw_stream_has_exactly_one_done_and_whole_events(gw_openai: RunningGateway) -> None:
    import aiohttp

    for model in ("openai/gpt-4o-mini", "openai/ragged"):
        async with aiohttp.ClientSession() as s:
            async with s.post(gw_openai.url + "/v1/chat/completions", headers={"Authorization": "Bearer sk-master-test"},
                              json={"model": model, "messages": MSGS, "stream": True}) as r:
                assert r.headers["Content-Type"].startswith("text/event-stream")
                raw = await r.read()
        assert raw.count(b"data: [DONE]") == 1 and raw.endswith(b"data: [DONE]\n\n")
        events = [e for e in raw.split(b"\n\n") if e.strip()]
        assert all(e.startswith((b"data: ", b":")) for e in events)
        assert b'"choices":[]' not in raw  # the usage chunk the gateway asked for stays hidden


async def test_usage_is_recorded_when_the_client_leaves_mid_stream(gw_openai: RunningGateway) -> None:
    """The upstream is read to its end after the client leaves, so the billed usage is kept."""
    import asyncio

    import aiohttp

    async with aiohttp.ClientSession() as s:
        async with s.post(gw_openai.url + "/v1/chat/completions", headers={"Authorization": "Bearer sk-master-test"},
                          json={"model": "openai/trickle", "messages": MSGS, "stream": True}) as r:
            assert r.status == 200
            await r.content.readany()  # the first chunk, then hang up
    ledger = gw_openai.gateway.ledger
    for _ in range(100):  # the fake trickles its chunks 200 ms apart: bounded wait for the drain
        await ledger.flush()
        if any(rec.model == "openai/trickle" for rec in ledger.recent):
            break
        await asyncio.sleep(0.05)
    rec = next(rec for rec in ledger.recent if rec.model == "openai/trickle")
    assert rec.client_disconnected and rec.usage_known and rec.completion_tokens == 5 and rec.priced
