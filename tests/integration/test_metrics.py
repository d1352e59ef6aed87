"""/metrics exports what the ledger recorded: requests, tokens, latency, disconnects."""

from __future__ import annotations

import aiohttp
import openai

from tests.conftest import RunningGateway

MSGS = [{"role": "user", "content": "hi"}]


async def scrape(gw: RunningGateway) -> str:
    async with aiohttp.ClientSession() as s:
        async with s.get(gw.url + "/metrics") as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
            return await r.text()


def value(text: str, prefix: str) -> float:
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no series {prefix!r} in:\n{text}")


async def test_metrics_count_requests_tokens_and_errors(gw_openai: RunningGateway) -> None:
    c = openai.AsyncOpenAI(base_url=gw_openai.url + "/v1", api_key="sk-master-test", max_retries=0)
    await c.chat.completions.create(model="openai/gpt-4o-mini", messages=MSGS)  # type: ignore[arg-type]
    s = await c.chat.completions.create(model="openai/gpt-4o-mini", messages=MSGS, stream=True)  # type: ignore[arg-type]
    _ = [ch async for ch in s]
    try:
        await c.chat.completions.create(model="openai/error-500", messages=MSGS)  # type: ignore[arg-type]
    except openai.APIStatusError:
        pass
    text = await scrape(gw_openai)
    ok = 'unigate_requests_total{endpoint="chat",model="openai/gpt-4o-mini",provider="openai",status="200"}'
    assert value(text, ok) == 2
    assert value(text, 'unigate_requests_total{endpoint="chat",model="openai/error-500",provider="openai",status="502"}') == 1
    assert value(text, 'unigate_tokens_total{kind="prompt",model="openai/gpt-4o-mini",provider="openai"}') == 24
    assert value(text, 'unigate_request_duration_seconds_count{provider="openai",stream="true"}') == 1
    assert value(text, 'unigate_time_to_first_byte_seconds_count{provider="openai"}') == 1
    assert value(text, 'unigate_request_duration_seconds_count{provider="openai",stream="false"}') == 2
    completion = value(text, 'unigate_tokens_total{kind="completion",model="openai/gpt-4o-mini",provider="openai"}')
    assert completion > 0
    # gpt-4o-mini is priced: both successful calls add to the cost series, none to the unpriced one
    from unigate.accounting.pricing import cost_usd

    expected = 2 * cost_usd("openai", "gpt-4o-mini", {"prompt_tokens": 12, "completion_tokens": completion / 2})  # type: ignore[operator]
    assert abs(value(text, 'unigate_cost_usd_total{model="openai/gpt-4o-mini",provider="openai"}') - expected) < 1e-12
    assert 'unigate_unpriced_calls_total{model="openai/gpt-4o-mini"' not in text


async def test_metrics_sum_a_batch_of_many_requests_per_series(gw_openai: RunningGateway) -> None:
    import asyncio

    c = openai.AsyncOpenAI(base_url=gw_openai.url + "/v1", api_key="sk-master-test", max_retries=0)
    await asyncio.gather(*(c.chat.completions.create(model="openai/gpt-4o-mini", messages=MSGS)  # type: ignore[arg-type]
                           for _ in range(30)))
    text = await scrape(gw_openai)
    ok = 'unigate_requests_total{endpoint="chat",model="openai/gpt-4o-mini",provider="openai",status="200"}'
    assert value(text, ok) == 30
    assert value(text, 'unigate_request_duration_seconds_count{provider="openai",stream="false"}') == 30
    assert value(text, 'unigate_tokens_total{kind="prompt",model="openai/gpt-4o-mini",provider="openai"}') == 30 * 12


async def test_a_priced_zero_cost_still_exports_its_cost_series() -> None:
    from unigate.accounting.ledger import Ledger, UsageRecord
    from unigate.telemetry.metrics import Metrics

    ledger = Ledger()
    metrics = Metrics(ledger)
    rec = UsageRecord(request_id="r", endpoint="chat", model="local/smollm2", provider="local", status=200)
    rec.set_usage({"prompt_tokens": 5, "completion_tokens": 2})
    rec.cost_usd, rec.priced = 0.0, True
    ledger.add(rec)
    await ledger.flush()
    text = metrics.render().decode()
    assert value(text, 'unigate_cost_usd_total{model="local/smollm2",provider="local"}') == 0.0
    assert 'unigate_unpriced_calls_total{model="local/smollm2"' not in text
