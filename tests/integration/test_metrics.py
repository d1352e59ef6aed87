"""/metrics exports what the ledger recorded: requests, tokens, latency, disconnects."""

from __future__ import annotations

import aiohttp
import openai

from tests.conftest import RunningGateway

MSGS = [{"role": "user", "content": "hi"}]


async def scrape(gw: RunningGateway) -> str:
    async with aiohttp.ClientSession() as s, s.get(gw.url + "/metrics") as r:
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
    ok = ('unigate_requests_total{deployment="openai/gpt-4o-mini",endpoint="chat",key="master",model="openai/gpt-4o-mini",'
          'provider="openai",status="200",team="none"}')
    assert value(text, ok) == 2
    # no upstream ever answered for that name: it is counted, under "other" (client-chosen names make no series)
    assert value(text, 'unigate_requests_total{deployment="other",endpoint="chat",key="master",model="other",'
                 'provider="openai",status="502",team="none"}') == 1
    assert "openai/error-500" not in text
    assert value(text, 'unigate_tokens_total{key="master",kind="prompt",model="openai/gpt-4o-mini",provider="openai",team="none"}') == 24
    assert value(text, 'unigate_request_duration_seconds_count{provider="openai",stream="true"}') == 1
    assert value(text, 'unigate_time_to_first_byte_seconds_count{provider="openai"}') == 1
    assert value(text, 'unigate_request_duration_seconds_count{provider="openai",stream="false"}') == 2
    completion = value(text, 'unigate_tokens_total{key="master",kind="completion",model="openai/gpt-4o-mini",provider="openai",team="none"}')
    assert completion > 0
    # gpt-4o-mini is priced: both successful calls add to the cost series, none to the unpriced one
    from unigate.accounting.pricing import cost_usd

    expected = 2 * cost_usd("openai", "gpt-4o-mini", {"prompt_tokens": 12, "completion_tokens": completion / 2})  # type: ignore[operator]
    assert abs(value(text, 'unigate_cost_usd_total{key="master",model="openai/gpt-4o-mini",provider="openai",team="none"}') - expected) < 1e-12
    assert 'unigate_unpriced_calls_total{model="openai/gpt-4o-mini"' not in text


async def test_metrics_sum_a_batch_of_many_requests_per_series(gw_openai: RunningGateway) -> None:
    import asyncio

    c = openai.AsyncOpenAI(base_url=gw_openai.url + "/v1", api_key="sk-master-test", max_retries=0)
    await asyncio.gather(*(c.chat.completions.create(model="openai/gpt-4o-mini", messages=MSGS)  # type: ignore[arg-type]
                           for _ in range(30)))
    text = await scrape(gw_openai)
    ok = ('unigate_requests_total{deployment="openai/gpt-4o-mini",endpoint="chat",key="master",model="openai/gpt-4o-mini",'
          'provider="openai",status="200",team="none"}')
    assert value(text, ok) == 30
    assert value(text, 'unigate_request_duration_seconds_count{provider="openai",stream="false"}') == 30
    assert value(text, 'unigate_tokens_total{key="master",kind="prompt",model="openai/gpt-4o-mini",provider="openai",team="none"}') == 30 * 12


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
    assert value(text, 'unigate_cost_usd_total{key="none",model="local/smollm2",provider="local",team="none"}') == 0.0
    assert 'unigate_unpriced_calls_total{model="local/smollm2"' not in text


async def test_one_batch_sums_every_series_per_label_set() -> None:
    """Mixed records in one flush: each series gets its group's sums (priced, unpriced, without
    usage, errors, streams with a time to first byte, a client that left)."""
    from unigate.accounting.ledger import Ledger, UsageRecord
    from unigate.telemetry.metrics import Metrics

    ledger = Ledger()
    metrics = Metrics(ledger)

    def rec(model: str, status: int = 200, stream: bool = False, usage: dict[str, int] | None = None,
            cost: float | None = None, latency: float = 10.0, ttfb: float | None = None, gone: bool = False) -> UsageRecord:
        r = UsageRecord(request_id="r", endpoint="chat", model=model, provider="p", stream=stream, status=status)
        r.set_usage(usage)
        if cost is not None:
            r.cost_usd, r.priced = cost, True
        r.latency_ms, r.ttfb_ms, r.client_disconnected = latency, ttfb, gone
        return r

    u = {"prompt_tokens": 10, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 4}}
    for r in [rec("a", usage=u, cost=0.5), rec("a", usage=u, cost=0.25), rec("a", usage=u),  # one unpriced
              rec("a", status=502),  # an error: no usage, not unpriced
              rec("a", stream=True, usage=u, cost=1.0, latency=300.0, ttfb=20.0),
              rec("a", stream=True, latency=4.0, ttfb=2.0, gone=True),  # left before the usage
              rec("b", usage=u)]:
        ledger.add(r)
    await ledger.flush()
    text = metrics.render().decode()
    req = 'unigate_requests_total{deployment="%s",endpoint="chat",key="none",model="%s",provider="p",status="%s",team="none"}'
    assert value(text, req % ("", "a", "200")) == 5 and value(text, req % ("", "a", "502")) == 1
    assert value(text, req % ("", "b", "200")) == 1
    assert value(text, 'unigate_tokens_total{key="none",kind="prompt",model="a",provider="p",team="none"}') == 40
    assert value(text, 'unigate_tokens_total{key="none",kind="completion",model="a",provider="p",team="none"}') == 12
    assert value(text, 'unigate_tokens_total{key="none",kind="cached",model="a",provider="p",team="none"}') == 16
    assert value(text, 'unigate_cost_usd_total{key="none",model="a",provider="p",team="none"}') == 1.75
    assert value(text, 'unigate_unpriced_calls_total{model="a",provider="p"}') == 1
    assert value(text, 'unigate_unpriced_calls_total{model="b",provider="p"}') == 1
    assert 'model="b"' not in "".join(ln for ln in text.splitlines() if ln.startswith("unigate_cost_usd_total"))
    assert value(text, 'unigate_client_disconnects_total{provider="p"}') == 1
    assert value(text, 'unigate_request_duration_seconds_count{provider="p",stream="false"}') == 5
    assert value(text, 'unigate_request_duration_seconds_count{provider="p",stream="true"}') == 2
    assert value(text, 'unigate_request_duration_seconds_sum{provider="p",stream="true"}') == 0.304
    assert value(text, 'unigate_request_duration_seconds_bucket{le="0.005",provider="p",stream="true"}') == 1
    assert value(text, 'unigate_time_to_first_byte_seconds_count{provider="p"}') == 2
    assert value(text, 'unigate_time_to_first_byte_seconds_bucket{le="0.005",provider="p"}') == 1
    assert value(text, 'unigate_time_to_first_byte_seconds_bucket{le="0.025",provider="p"}') == 2


async def test_model_names_no_upstream_accepted_make_no_series(gw_openai: RunningGateway) -> None:
    """A client picks the model name: 200 made-up names that the upstream refuses add no line
    to /metrics, while a name it served once keeps its own series, errors included."""
    c = openai.AsyncOpenAI(base_url=gw_openai.url + "/v1", api_key="sk-master-test", max_retries=0)
    await c.chat.completions.create(model="openai/gpt-4o-mini", messages=MSGS)  # type: ignore[arg-type]
    mid = len((await scrape(gw_openai)).splitlines())
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer sk-master-test"}) as s:
        for i in range(200):
            async with s.post(gw_openai.url + "/v1/chat/completions",
                              json={"model": f"openai/error-404-x{i}", "messages": MSGS}) as r:
                assert r.status == 404
    text = await scrape(gw_openai)
    assert "error-404-x" not in text
    assert value(text, 'unigate_requests_total{deployment="other",endpoint="chat",key="master",model="other",'
                 'provider="openai",status="404",team="none"}') == 200
    # the one "other" series of requests and of errors, not 200 of them
    assert len(text.splitlines()) - mid <= 2
