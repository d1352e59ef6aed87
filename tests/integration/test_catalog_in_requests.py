"""The catalog in the request path: capability refusals, cost per request, /v1/models."""

from __future__ import annotations

import aiohttp
import openai
import pytest
from genai_prices import Usage, calc_price

from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.openai import USAGE, FakeOpenAI

MSGS = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]


async def test_cost_header_matches_genai_prices(gw_openai: RunningGateway) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(gw_openai.url + "/v1/chat/completions", headers={"Authorization": "Bearer sk-master-test"},
                          json={"model": "openai/gpt-4o-mini", "messages": MSGS}) as r:
            assert r.status == 200
            cost = float(r.headers["x-unigate-cost"])
    expected = calc_price(Usage(input_tokens=USAGE["prompt_tokens"], output_tokens=USAGE["completion_tokens"]),
                          model_ref="gpt-4o-mini", provider_id="openai").total_price
    assert cost == pytest.approx(float(expected), rel=1e-9)
    await gw_openai.gateway.ledger.flush()
    assert gw_openai.gateway.ledger.recent[-1].cost_usd == pytest.approx(float(expected), rel=1e-9)


async def test_unknown_price_is_null_never_zero(gw_openai: RunningGateway) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(gw_openai.url + "/v1/chat/completions", headers={"Authorization": "Bearer sk-master-test"},
                          json={"model": "openai/my-private-finetune", "messages": MSGS}) as r:
            assert r.status == 200 and r.headers["x-unigate-cost"] == "null"
        async with s.get(gw_openai.url + "/metrics") as r:
            text = await r.text()
    assert 'unigate_unpriced_calls_total{model="openai/my-private-finetune",provider="openai"} 1.0' in text
    rec = gw_openai.gateway.ledger.recent[-1]
    assert rec.cost_usd is None and rec.priced


async def test_config_price_overrides_catalog(start_gateway: GatewayFactory, openai_fake: FakeOpenAI) -> None:
    gw = await start_gateway({"deployments": [{"name": "mine", "model": "openai/my-ft", "input_price": 1.0, "output_price": 2.0}]},
                             env={"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": openai_fake.url + "/v1"})
    async with aiohttp.ClientSession() as s:
        async with s.post(gw.url + "/v1/chat/completions", json={"model": "mine", "messages": MSGS}) as r:
            assert float(r.headers["x-unigate-cost"]) == pytest.approx((12 * 1.0 + 5 * 2.0) / 1e6)


async def test_stream_cost_reaches_the_ledger(gw_openai: RunningGateway) -> None:
    c = openai.AsyncOpenAI(base_url=gw_openai.url + "/v1", api_key="sk-master-test", max_retries=0)
    s = await c.chat.completions.create(model="openai/gpt-4o-mini", messages=MSGS, stream=True)  # type: ignore[arg-type]
    _ = [ch async for ch in s]
    await gw_openai.gateway.ledger.flush()
    rec = gw_openai.gateway.ledger.recent[-1]
    assert rec.stream and rec.cost_usd is not None and rec.cost_usd > 0


async def test_tools_on_a_model_without_tools_is_400_before_any_call(start_gateway: GatewayFactory, openai_fake: FakeOpenAI) -> None:
    gw = await start_gateway(env={"PERPLEXITY_API_KEY": "k", "PERPLEXITY_BASE_URL": openai_fake.url + "/v1"})
    c = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError) as ei:
        await c.chat.completions.create(model="perplexity/sonar", messages=MSGS, tools=TOOLS)  # type: ignore[arg-type]
    assert ei.value.code == "unsupported_feature" and "tools" in ei.value.message
    assert openai_fake.requests == []


async def test_embeddings_model_refuses_chat(gw_openai: RunningGateway, openai_fake: FakeOpenAI) -> None:
    c = openai.AsyncOpenAI(base_url=gw_openai.url + "/v1", api_key="sk-master-test", max_retries=0)
    with pytest.raises(openai.BadRequestError):
        await c.chat.completions.create(model="openai/text-embedding-3-small", messages=MSGS)  # type: ignore[arg-type]
    assert openai_fake.requests == []


async def test_alias_skips_a_deployment_that_cannot_serve_the_request(start_gateway: GatewayFactory, openai_fake: FakeOpenAI) -> None:
    gw = await start_gateway({"aliases": {"search-or-tools": ["perplexity/sonar", "openai/gpt-4o-mini"]}},
                             env={"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": openai_fake.url + "/v1",
                                  "PERPLEXITY_API_KEY": "k", "PERPLEXITY_BASE_URL": openai_fake.url + "/v1"})
    c = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0)
    r = await c.chat.completions.create(model="search-or-tools", messages=MSGS, tools=TOOLS)  # type: ignore[arg-type]
    assert r.model == "gpt-4o-mini" and [q.json["model"] for q in openai_fake.requests] == ["gpt-4o-mini"]


async def test_models_lists_catalog_entries_of_configured_providers(gw_openai: RunningGateway) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(gw_openai.url + "/v1/models", headers={"Authorization": "Bearer sk-master-test"}) as r:
            data = (await r.json())["data"]
    by_id = {m["id"]: m for m in data}
    m = by_id["openai/gpt-4o-mini"]
    assert m["owned_by"] == "openai" and m["context_window"] == 128000 and "tools" in m["capabilities"]
    assert m["pricing"]["input_per_million"] > 0
    assert not any(i.startswith("anthropic/") for i in by_id), "unconfigured providers are not listed"
