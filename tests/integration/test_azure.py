"""The official openai SDK through the gateway against a fake Azure OpenAI resource."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import orjson
import pytest
import pytest_asyncio

from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.azure import PROMPT_FILTER, PROMPT_FILTER_CHUNK, FakeAzure
from unigate.providers.azure import DEFAULT_API_VERSION

MSGS = [{"role": "user", "content": "Say hello"}]


@pytest_asyncio.fixture
async def azure_fake() -> AsyncIterator[FakeAzure]:
    fake = FakeAzure(api_key="az-test-key")
    await fake.start()
    yield fake
    await fake.stop()


def env(fake: FakeAzure, **extra: str) -> dict[str, str]:
    return {"AZURE_API_KEY": "az-test-key", "AZURE_BASE_URL": fake.url, "UNIGATE_MASTER_KEY": "sk-master-test", **extra}


@pytest_asyncio.fixture
async def gw(start_gateway: GatewayFactory, azure_fake: FakeAzure) -> RunningGateway:
    return await start_gateway(env=env(azure_fake))


def client(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="sk-master-test", max_retries=0)


async def test_chat_uses_deployment_path_api_version_and_api_key(gw: RunningGateway, azure_fake: FakeAzure) -> None:
    r = await client(gw).chat.completions.create(model="azure/my-gpt4o", messages=MSGS, max_completion_tokens=20)  # type: ignore[arg-type]
    assert r.choices[0].message.content == "Hello from my-gpt4o!"
    assert r.model_extra is not None and r.model_extra["prompt_filter_results"] == PROMPT_FILTER
    sent = azure_fake.last
    assert sent.path == "/openai/deployments/my-gpt4o/chat/completions"
    assert sent.query == {"api-version": DEFAULT_API_VERSION} and DEFAULT_API_VERSION == "2024-10-21"
    assert sent.headers["api-key"] == "az-test-key" and "Authorization" not in sent.headers
    assert sent.json["messages"] == MSGS and sent.json["max_completion_tokens"] == 20


async def test_api_version_from_config(start_gateway: GatewayFactory, azure_fake: FakeAzure) -> None:
    gw = await start_gateway({"providers": {"azure": {"options": {"api_version": "2025-04-01-preview"}}}}, env=env(azure_fake))
    await client(gw).chat.completions.create(model="azure/dep1", messages=MSGS)  # type: ignore[arg-type]
    assert azure_fake.last.query == {"api-version": "2025-04-01-preview"}


async def test_v1_api_style(start_gateway: GatewayFactory, azure_fake: FakeAzure) -> None:
    gw = await start_gateway({"providers": {"azure": {"options": {"api_style": "v1"}}}}, env=env(azure_fake))
    r = await client(gw).chat.completions.create(model="azure/my-dep", messages=MSGS)  # type: ignore[arg-type]
    assert r.choices[0].message.content == "Hello from my-dep!"
    sent = azure_fake.last
    assert sent.path == "/openai/v1/chat/completions" and sent.query == {} and sent.json["model"] == "my-dep"
    e = await client(gw).embeddings.create(model="azure/emb", input="x")
    assert len(e.data) == 1 and azure_fake.last.path == "/openai/v1/embeddings"


async def test_v1_base_url_selects_v1_style(start_gateway: GatewayFactory, azure_fake: FakeAzure) -> None:
    gw = await start_gateway(env=env(azure_fake, AZURE_BASE_URL=azure_fake.url + "/openai/v1/"))
    await client(gw).chat.completions.create(model="azure/my-dep", messages=MSGS)  # type: ignore[arg-type]
    assert azure_fake.last.path == "/openai/v1/chat/completions" and azure_fake.last.query == {}


async def test_sdk_style_env_names(start_gateway: GatewayFactory, azure_fake: FakeAzure) -> None:
    gw = await start_gateway(env={"AZURE_OPENAI_API_KEY": "az-test-key", "AZURE_OPENAI_ENDPOINT": azure_fake.url + "/"})
    c = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0)
    r = await c.chat.completions.create(model="azure/d2", messages=MSGS)  # type: ignore[arg-type]
    assert r.choices[0].message.content == "Hello from d2!"
    assert azure_fake.last.path == "/openai/deployments/d2/chat/completions"


async def test_stream_with_prompt_filter_chunk(gw: RunningGateway, azure_fake: FakeAzure) -> None:
    stream = await client(gw).chat.completions.create(model="azure/my-gpt4o", messages=MSGS, stream=True)  # type: ignore[arg-type]
    chunks = [c async for c in stream]
    assert chunks[0].choices == [] and chunks[0].model_extra is not None
    assert chunks[0].model_extra["prompt_filter_results"] == PROMPT_FILTER
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from my-gpt4o!"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert all(c.usage is None for c in chunks), "usage-only chunk leaked to a client that did not ask"
    assert azure_fake.last.json["stream_options"] == {"include_usage": True}
    await gw.gateway.ledger.flush()
    rec = gw.gateway.ledger.recent[-1]
    assert rec.provider == "azure" and rec.usage_known and rec.prompt_tokens == 12 and rec.completion_tokens == 5


async def test_stream_is_relayed_byte_for_byte(gw: RunningGateway) -> None:
    body = {"model": "azure/my-gpt4o", "messages": MSGS, "stream": True, "stream_options": {"include_usage": True}}
    async with aiohttp.ClientSession() as s:
        async with s.post(gw.url + "/v1/chat/completions", data=orjson.dumps(body),
                          headers={"Authorization": "Bearer sk-master-test", "Content-Type": "application/json"}) as r:
            assert r.status == 200
            raw = await r.read()
    events = [e for e in raw.split(b"\n\n") if e]
    assert events[0] == b"data: " + PROMPT_FILTER_CHUNK
    assert events[-1] == b"data: [DONE]"
    assert orjson.loads(events[-2][6:])["usage"]["total_tokens"] == 17


async def test_embeddings_and_completions(gw: RunningGateway, azure_fake: FakeAzure) -> None:
    e = await client(gw).embeddings.create(model="azure/emb-small", input=["a", "b"])
    assert [d.index for d in e.data] == [0, 1] and e.data[0].embedding == [0.5, 0.0, 0.125]
    assert azure_fake.last.path == "/openai/deployments/emb-small/embeddings"
    assert azure_fake.last.query == {"api-version": DEFAULT_API_VERSION}
    c = await client(gw).completions.create(model="azure/instruct", prompt="Hello")
    assert c.choices[0].text == " world"
    assert azure_fake.last.path == "/openai/deployments/instruct/completions" and azure_fake.last.query["api-version"]


async def test_blocked_prompt_is_400_content_filter(gw: RunningGateway) -> None:
    with pytest.raises(openai.BadRequestError) as ei:
        await client(gw).chat.completions.create(model="azure/filtered-prompt", messages=MSGS)  # type: ignore[arg-type]
    assert ei.value.status_code == 400 and ei.value.code == "content_filter"
    assert isinstance(ei.value.body, dict) and str(ei.value.body["message"]).startswith("azure: The response was filtered")


async def test_filtered_output_finish_reason(gw: RunningGateway) -> None:
    r = await client(gw).chat.completions.create(model="azure/filtered-output", messages=MSGS)  # type: ignore[arg-type]
    assert r.choices[0].finish_reason == "content_filter"
    extra: dict[str, Any] = r.choices[0].model_extra or {}
    assert extra["content_filter_results"]["violence"]["filtered"] is True
    stream = await client(gw).chat.completions.create(model="azure/filtered-output", messages=MSGS, stream=True)  # type: ignore[arg-type]
    finishes = [c.choices[0].finish_reason async for c in stream if c.choices]
    assert finishes[-1] == "content_filter"


async def test_429_keeps_retry_after(gw: RunningGateway) -> None:
    with pytest.raises(openai.RateLimitError) as ei:
        await client(gw).chat.completions.create(model="azure/error-429", messages=MSGS)  # type: ignore[arg-type]
    assert ei.value.response.headers["retry-after"] == "7"
    assert isinstance(ei.value.body, dict) and str(ei.value.body["message"]).startswith("azure: fake azure error 429")


async def test_wrong_key_is_401(start_gateway: GatewayFactory, azure_fake: FakeAzure) -> None:
    gw = await start_gateway(env=env(azure_fake, AZURE_API_KEY="wrong"))
    with pytest.raises(openai.AuthenticationError):
        await client(gw).chat.completions.create(model="azure/d", messages=MSGS)  # type: ignore[arg-type]
