"""Routing with health, against a real misbehaving upstream (tests/fakes/chaos.py): groups and
their strategies, circuit breakers, retries, fallbacks, the context-window check, and the
per-request controls, with real traffic through the gateway while the upstream misbehaves."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio

from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.chaos import ChaosUpstream
from unigate.config import ConfigError, parse_config
from unigate.routing.health import State

MASTER = "sk-master-test"
HI: Any = [{"role": "user", "content": "hi"}]


@pytest_asyncio.fixture
async def chaos() -> AsyncIterator[ChaosUpstream]:
    f = ChaosUpstream()
    await f.start()
    yield f
    await f.stop()


def config(chaos: ChaosUpstream, deployments: list[dict[str, Any]], **routing: Any) -> dict[str, Any]:
    return {"providers": {"openai": {"api_key": "sk-up", "base_url": chaos.url + "/v1"}},
            "deployments": deployments, "routing": routing}


async def start(start_gateway: GatewayFactory, cfg: dict[str, Any]) -> RunningGateway:
    return await start_gateway(cfg, env={"UNIGATE_MASTER_KEY": MASTER})


async def call(s: aiohttp.ClientSession, gw: RunningGateway, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    async with s.post(gw.url + "/v1/chat/completions", data=orjson.dumps(body),
                      headers={"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"}) as r:
        return r.status, dict(r.headers), await r.read()


async def load(gw: RunningGateway, body: dict[str, Any], n: int, concurrency: int = 20) -> list[tuple[int, dict[str, str], bytes]]:
    """n requests, `concurrency` at a time (bounded in count; each bounded by the gateway's timeouts)."""
    out: list[tuple[int, dict[str, str], bytes]] = []
    async with aiohttp.ClientSession() as s:
        async def worker(k: int) -> None:
            for _ in range(k):
                out.append(await call(s, gw, body))
        await asyncio.gather(*(worker(n // concurrency + (1 if i < n % concurrency else 0)) for i in range(concurrency)))
    return out


FAST_TIMEOUTS = {"connect": 1, "first_byte": 0.5, "total": 0.5}


@pytest_asyncio.fixture
async def healthy() -> AsyncIterator[ChaosUpstream]:
    f = ChaosUpstream()
    await f.start()
    yield f
    await f.stop()


@pytest.mark.parametrize("fault", ["429", "500", "503", "hang", "reset", "badjson", "cut-before"])
async def test_a_failing_deployment_never_reaches_the_client(start_gateway: GatewayFactory, chaos: ChaosUpstream,
                                                             healthy: ChaosUpstream, fault: str) -> None:
    """1,000 requests through a group of one failing and one healthy deployment all succeed; the
    failing one's breaker opens, and closes again once the upstream recovers. The healthy one is
    another host, as in production; only the hanging one gets short timeouts."""
    cfg = config(chaos, [
        {"name": "g", "model": "openai/bad", **({"timeouts": FAST_TIMEOUTS} if fault == "hang" else {})},
        {"name": "g", "model": "other/good"}], breaker={"cooldown": 0.3, "max_cooldown": 0.6})
    cfg["providers"]["other"] = {"preset": "openai", "api_key": "sk-up", "base_url": healthy.url + "/v1"}
    gw = await start(start_gateway, cfg)
    chaos.modes["bad"] = fault
    stream = fault.startswith("cut")
    # 4 at a time: with 20, the in-process mock upstreams (one event loop with the gateway and the
    # load) now and then left a request to the healthy one unanswered under a loaded full-suite
    # run (the gateway waited out its 120-s read timeout): see the session note
    results = await load(gw, {"model": "g", "messages": HI, "stream": stream}, 1000, concurrency=4)
    assert [r[0] for r in results] == [200] * 1000
    bad = [r[2] for r in results if b"from good!" not in r[2]]
    assert not bad, (len(bad), bad[:2])
    assert not any(b'"error"' in r[2] for r in results)
    router = gw.gateway.router
    tried = chaos.met[("bad", fault)]
    assert tried >= 1 and healthy.served["good"] == 1000
    # the breaker kept most traffic off the failing deployment (probes aside)
    assert tried < 200, tried
    assert router.breakers.state("g#0").state is not State.CLOSED
    # the upstream recovers: after the cooldown a probe closes the breaker
    chaos.modes["bad"] = "ok"
    await asyncio.sleep(0.7)
    await load(gw, {"model": "g", "messages": HI}, 40, concurrency=1)
    assert router.breakers.state("g#0").state is State.CLOSED
    assert chaos.met[("bad", "ok")] > 0


async def test_a_stream_cut_after_its_first_byte_ends_with_one_clean_error_event(
        start_gateway: GatewayFactory, chaos: ChaosUpstream) -> None:
    gw = await start(start_gateway, config(chaos, [
        {"name": "g", "model": "openai/bad"}, {"name": "g", "model": "openai/good"}]))
    chaos.modes["bad"] = "cut-after"
    results = await load(gw, {"model": "g", "messages": HI, "stream": True}, 1000)
    assert all(r[0] == 200 for r in results)
    cut = [r for r in results if b"from good!" not in r[2]]
    # never retried after bytes reached the client: no duplicated output, one error event at the end
    for _, _, body in cut:
        assert body.count(b"Hello") == 1 and body.count(b'"error"') == 1 and b"from good" not in body
    assert len(cut) == chaos.met[("bad", "cut-after")]  # counted apart: each cut stream is one of these
    assert 1 <= len(cut) < 200
    assert len(results) - len(cut) == chaos.served["good"]


async def test_weighted_spread_matches_the_weights(start_gateway: GatewayFactory, chaos: ChaosUpstream) -> None:
    gw = await start(start_gateway, config(chaos, [
        {"name": "g", "model": "openai/a", "weight": 3}, {"name": "g", "model": "openai/b", "weight": 1}]))
    gw.gateway.router.rng.seed(20261203)
    results = await load(gw, {"model": "g", "messages": HI}, 1000)
    assert all(r[0] == 200 for r in results)
    share = chaos.served["a"] / 1000
    assert abs(share - 0.75) <= 0.05, share


async def test_priority_tiers_use_the_first_tier_until_it_fails(start_gateway: GatewayFactory,
                                                                chaos: ChaosUpstream) -> None:
    gw = await start(start_gateway, config(chaos, [
        {"name": "g", "model": "openai/backup", "priority": 1}, {"name": "g", "model": "openai/main"}]))
    await load(gw, {"model": "g", "messages": HI}, 50)
    assert chaos.served == Counter({"main": 50})
    chaos.modes["main"] = "500"
    status, headers, _ = (await load(gw, {"model": "g", "messages": HI}, 1, 1))[0]
    assert status == 200 and headers["x-unigate-model"] == "openai/backup" and headers["x-unigate-attempts"] == "2"
    assert headers["x-unigate-deployment"] == "g#0"


async def test_lowest_latency_finds_the_fast_one_and_leaves_it_when_it_slows(
        start_gateway: GatewayFactory, chaos: ChaosUpstream) -> None:
    gw = await start(start_gateway, config(chaos, [
        {"name": "g", "model": "openai/fast"}, {"name": "g", "model": "openai/slow"}],
        groups={"g": {"strategy": "lowest-latency"}}))
    chaos.delay.update(fast=0.02, slow=0.08)
    body = {"model": "g", "messages": HI}
    await load(gw, body, 20, concurrency=1)  # warm-up: both get measured
    before = chaos.served.copy()
    await load(gw, body, 100, concurrency=1)
    fast = chaos.served["fast"] - before["fast"]
    assert fast >= 90, chaos.served
    chaos.delay["fast"] = 0.2
    t0 = time.monotonic()
    streak = 0
    async with aiohttp.ClientSession() as s:
        while streak < 10 and time.monotonic() - t0 < 30:
            _, headers, _ = await call(s, gw, body)
            streak = streak + 1 if headers["x-unigate-model"] == "openai/slow" else 0
    assert streak == 10, "still sending to the slowed deployment after 30 s"


async def test_a_prompt_too_long_goes_to_the_larger_model_without_calling_the_small_one(
        start_gateway: GatewayFactory, chaos: ChaosUpstream) -> None:
    gw = await start(start_gateway, config(chaos, [
        {"name": "long", "model": "openai/gpt-4o-mini"},  # 128k tokens
        {"name": "long", "model": "openai/gpt-4.1-mini", "priority": 1}]))  # 1M tokens
    big: Any = [{"role": "user", "content": "lorem ipsum " * 60_000}]  # ~720 kB: ~180k tokens
    async with aiohttp.ClientSession() as s:
        status, headers, _ = await call(s, gw, {"model": "long", "messages": big})
        assert status == 200 and headers["x-unigate-model"] == "openai/gpt-4.1-mini"
        assert chaos.served["gpt-4o-mini"] == 0
        status, _, body = await call(s, gw, {"model": "openai/gpt-4o-mini", "messages": big})
    assert status == 400 and orjson.loads(body)["error"]["code"] == "context_length_exceeded"
    assert chaos.served["gpt-4o-mini"] == 0


async def test_a_providers_context_overflow_error_falls_back(start_gateway: GatewayFactory,
                                                            chaos: ChaosUpstream) -> None:
    class Overflow(ChaosUpstream):
        async def chat(self, request: Any) -> Any:
            from aiohttp import web

            body = orjson.loads(await request.read())
            if body["model"] == "small":
                self.served["small"] += 1
                return web.json_response({"error": {"message": "This model's maximum context length is 8192 tokens",
                                                    "type": "invalid_request_error", "param": "messages",
                                                    "code": "context_length_exceeded"}}, status=400)
            return await super().chat(request)

    up = Overflow()
    await up.start()
    try:
        gw = await start(start_gateway, config(up, [{"name": "g", "model": "openai/small"},
                                                    {"name": "g", "model": "openai/large", "priority": 1}]))
        async with aiohttp.ClientSession() as s:
            status, headers, _ = await call(s, gw, {"model": "g", "messages": HI})
    finally:
        await up.stop()
    assert status == 200 and headers["x-unigate-model"] == "openai/large" and up.served["small"] == 1


async def test_a_body_timeout_is_a_504_in_about_that_time(start_gateway: GatewayFactory, chaos: ChaosUpstream) -> None:
    gw = await start(start_gateway, config(chaos, [{"name": "g", "model": "openai/slowone"}]))
    chaos.delay["slowone"] = 5
    t0 = time.monotonic()
    async with aiohttp.ClientSession() as s:
        status, _, body = await call(s, gw, {"model": "g", "messages": HI, "timeout": 2})
    took = time.monotonic() - t0
    assert status == 504 and orjson.loads(body)["error"]["code"] == "upstream_timeout"
    assert 1.8 <= took < 4.5, took
    # the caller's timeout was shorter than the deployment's: not held against its health
    st = gw.gateway.router.breakers.state("g#0")
    assert st.failures == 0 and st.state is State.CLOSED
    assert "timeout" not in chaos.last.json


async def test_retries_with_backoff_then_success(start_gateway: GatewayFactory, chaos: ChaosUpstream) -> None:
    gw = await start(start_gateway, config(chaos, [{"name": "g", "model": "openai/flaky"}],
                                           groups={"g": {"retries": 2}}))
    chaos.fail_next["flaky"] = 2
    async with aiohttp.ClientSession() as s:
        status, headers, _ = await call(s, gw, {"model": "g", "messages": HI})
        assert status == 200 and headers["x-unigate-attempts"] == "3" and chaos.served["flaky"] == 3
        chaos.fail_next["flaky"] = 5
        status, headers, _ = await call(s, gw, {"model": "g", "messages": HI, "num_retries": 1})
    assert status == 503 and chaos.served["flaky"] == 5  # one retry asked for: two attempts
    await gw.gateway.ledger.flush()
    rows = [r for r in gw.gateway.ledger.recent if r.deployment == "g#0"]
    assert [r.status for r in rows][-5:] == [503, 503, 200, 503, 503]  # each attempt is a ledger row


async def test_a_direct_model_id_retries_when_the_request_asks(start_gateway: GatewayFactory,
                                                               chaos: ChaosUpstream) -> None:
    gw = await start(start_gateway, config(chaos, []))
    chaos.fail_next["lone"] = 1
    async with aiohttp.ClientSession() as s:
        status, headers, _ = await call(s, gw, {"model": "openai/lone", "messages": HI, "num_retries": 1})
        assert status == 200 and headers["x-unigate-attempts"] == "2" and chaos.served["lone"] == 2
        chaos.fail_next["lone"] = 1
        status, _, _ = await call(s, gw, {"model": "openai/lone", "messages": HI})  # none asked for: none made
    assert status == 503 and chaos.served["lone"] == 3


async def test_the_retry_budget_caps_retries_in_an_outage(start_gateway: GatewayFactory, chaos: ChaosUpstream) -> None:
    gw = await start(start_gateway, config(chaos, [{"name": "g", "model": "openai/down"}],
                                           groups={"g": {"retries": 3}}, retry_budget=0.1))
    chaos.modes["down"] = "500"
    t0 = time.monotonic()
    results = await load(gw, {"model": "g", "messages": HI}, 200)
    took = time.monotonic() - t0
    assert all(r[0] == 502 for r in results)
    # without a budget 200 requests would make 800 attempts; the budget allows 10 % of them as
    # retries, plus its floor of one a second over the window (10 s)
    allowance = 200 * 0.1 + min(took, 10) + 1 + 10
    assert chaos.served["down"] <= 200 + allowance, (chaos.served["down"], took)


async def test_request_controls_fall_back_and_are_not_forwarded(start_gateway: GatewayFactory,
                                                                chaos: ChaosUpstream) -> None:
    gw = await start(start_gateway, config(chaos, []))
    chaos.modes["broken"] = "500"
    async with aiohttp.ClientSession() as s:
        # LiteLLM's fallbacks
        status, h, _ = await call(s, gw, {"model": "openai/broken", "messages": HI, "fallbacks": ["openai/good"]})
        assert status == 200 and h["x-unigate-model"] == "openai/good" and h["x-unigate-attempts"] == "2"
        assert set(chaos.last.json) == {"model", "messages"}
        # OpenRouter's models list
        status, h, _ = await call(s, gw, {"model": "openai/broken", "messages": HI, "models": ["openai/other"]})
        assert status == 200 and h["x-unigate-model"] == "openai/other"
        # OpenRouter's provider preferences: allow_fallbacks false tries only the first choice
        status, _, _ = await call(s, gw, {"model": "openai/broken", "messages": HI, "models": ["openai/good"],
                                          "provider": {"allow_fallbacks": False}})
        assert status == 502
        status, _, body = await call(s, gw, {"model": "openai/good", "messages": HI, "provider": {"only": ["groq"]}})
        assert status == 404 and "provider" in orjson.loads(body)["error"]["message"]
        status, _, body = await call(s, gw, {"model": "openai/good", "messages": HI, "timeout": "soon"})
        assert status == 400 and orjson.loads(body)["error"]["param"] == "timeout"


def test_groups_config_is_checked() -> None:
    base = {"deployments": [{"name": "g", "model": "openai/x"}]}
    with pytest.raises(ConfigError, match=r"\$\.routing\.groups\.g\.strategy: unknown strategy 'fastest'"):
        parse_config({**base, "routing": {"groups": {"g": {"strategy": "fastest"}}}}, where="t", env={})
    with pytest.raises(ConfigError, match=r"\$\.routing\.groups\.nope: no deployment or alias"):
        parse_config({**base, "routing": {"groups": {"nope": {}}}}, where="t", env={})
    with pytest.raises(ConfigError, match=r"unknown field"):
        parse_config({**base, "routing": {"groups": {"g": {"retry": 2}}}}, where="t", env={})


async def test_admin_deployments_and_unigate_status_show_health(start_gateway: GatewayFactory, chaos: ChaosUpstream,
                                                                capsys: pytest.CaptureFixture[str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    gw = await start(start_gateway, config(chaos, [
        {"name": "g", "model": "openai/bad"}, {"name": "g", "model": "openai/good"}]))
    chaos.modes["bad"] = "500"
    await load(gw, {"model": "g", "messages": HI}, 100)
    async with aiohttp.ClientSession() as s:
        async with s.get(gw.url + "/admin/deployments", headers={"Authorization": f"Bearer {MASTER}"}) as r:
            assert r.status == 200
            data = {d["id"]: d for d in (await r.json())["data"]}
        async with s.get(gw.url + "/admin/deployments", headers={"Authorization": "Bearer sk-not-it"}) as r:
            assert r.status == 401
    assert data["g#0"]["state"] == "open" and data["g#0"]["model"] == "openai/bad" and data["g#0"]["error_rate"] > 0.5
    assert data["g#1"]["state"] == "closed" and data["g#1"]["in_flight"] == 0 and data["g#1"]["ms_per_output_token"]
    from unigate.cli import main

    monkeypatch.setenv("UNIGATE_MASTER_KEY", MASTER)
    assert await asyncio.to_thread(main, ["status", "--url", gw.url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["DEPLOYMENT", "MODEL", "STATE"]
    rows = {line.split()[0]: line.split() for line in out[1:]}
    assert rows["g#0"][1:3] == ["openai/bad", "open"] and rows["g#1"][1:3] == ["openai/good", "closed"]


async def test_an_idle_gateway_sends_no_request_upstream(start_gateway: GatewayFactory, chaos: ChaosUpstream) -> None:
    """Health comes from real traffic (and half-open probes of it), never from billable calls of
    the gateway's own: an idle gateway with open breakers calls nobody."""
    gw = await start(start_gateway, config(chaos, [
        {"name": "g", "model": "openai/bad"}, {"name": "g", "model": "openai/good"}], breaker={"cooldown": 0.2}))
    chaos.modes["bad"] = "500"
    await load(gw, {"model": "g", "messages": HI}, 50)
    before = len(chaos.requests)
    await asyncio.sleep(1.0)  # several cooldowns pass
    assert len(chaos.requests) == before


async def test_a_breaker_opened_in_one_worker_is_seen_by_the_other(chaos: ChaosUpstream, healthy: ChaosUpstream,
                                                                   tmp_path: Any) -> None:
    """`unigate serve --workers 2`: one worker learns that a deployment fails (its breaker opens);
    the other leaves it alone too, without failing requests of its own first."""
    import signal

    from tests.integration.test_serve import free_port, start_serve, wait_ready

    cfg = tmp_path / "unigate.yaml"
    cfg.write_text(orjson.dumps({
        "server": {"master_key": MASTER},
        "providers": {"openai": {"api_key": "sk-up", "base_url": chaos.url + "/v1"},
                      "other": {"preset": "openai", "api_key": "sk-up", "base_url": healthy.url + "/v1"}},
        "deployments": [{"name": "g", "model": "openai/bad"}, {"name": "g", "model": "other/good"}],
        "routing": {"breaker": {"min_requests": 5, "cooldown": 60, "max_cooldown": 60}}}).decode())
    chaos.modes["bad"] = "500"
    port = free_port()
    proc = await start_serve("--config", str(cfg), "--port", str(port), "--workers", "2",
                             env={"UNIGATE_DATA_DIR": str(tmp_path)})
    try:
        await wait_ready(port, proc)
        body = orjson.dumps({"model": "g", "messages": HI})
        headers = {"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"}
        # one keep-alive connection: one worker, until its breaker for openai/bad opens
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as s:
            for _ in range(30):
                async with s.post(f"http://127.0.0.1:{port}/v1/chat/completions", data=body, headers=headers) as r:
                    assert r.status == 200
        learned = chaos.served["bad"]
        assert 5 <= learned <= 30
        await asyncio.sleep(1.5)  # a few sync intervals
        # fresh connections land on both workers (SO_REUSEPORT spreads them by port)
        for _ in range(40):
            async with aiohttp.ClientSession() as s, s.post(f"http://127.0.0.1:{port}/v1/chat/completions",
                                                            data=body, headers=headers) as r:
                assert r.status == 200
        assert chaos.served["bad"] == learned, "a worker sent requests to a deployment another worker found failing"
        assert healthy.served["good"] >= 40
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
