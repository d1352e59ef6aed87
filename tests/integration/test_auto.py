"""`model: "auto"`: each policy picks what it says on a catalog of mock models (prices from the
catalog, latencies measured live against a real mock upstream), and a request with tools or
images never goes to a model without them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio

from tests.conftest import GatewayFactory, RunningGateway, require_local_model
from tests.fakes.chaos import ChaosUpstream
from unigate import catalog

MASTER = "sk-master-test"
HI: Any = [{"role": "user", "content": "hi"}]
CANDIDATES = ["openai/gpt-4.1", "openai/gpt-4.1-mini", "openai/gpt-4.1-nano", "openai/o3-mini"]
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
IMAGE: Any = [{"role": "user", "content": [{"type": "text", "text": "what is it?"},
                                          {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]


@pytest_asyncio.fixture
async def chaos() -> AsyncIterator[ChaosUpstream]:
    f = ChaosUpstream()
    await f.start()
    yield f
    await f.stop()


async def gateway(start_gateway: GatewayFactory, chaos: ChaosUpstream, models: list[str] = CANDIDATES,
                  env: dict[str, str] | None = None) -> RunningGateway:
    return await start_gateway({"providers": {"openai": {"api_key": "sk-up", "base_url": chaos.url + "/v1"}},
                                "routing": {"auto": {"models": models}}},
                               env={"UNIGATE_MASTER_KEY": MASTER, **(env or {})})


async def call(gw: RunningGateway, body: dict[str, Any], key: str = MASTER) -> tuple[int, dict[str, str], Any]:
    async with aiohttp.ClientSession() as s, s.post(gw.url + "/v1/chat/completions", data=orjson.dumps(body),
                                                    headers={"Authorization": f"Bearer {key}"}) as r:
        return r.status, dict(r.headers), orjson.loads(await r.read())


def price(mid: str) -> float:
    info = catalog.lookup(*mid.split("/", 1))
    assert info is not None and info.input_price is not None and info.output_price is not None
    return info.input_price * 3 + info.output_price * 500  # the request's estimate: few tokens in, 500 out


async def test_cheapest_picks_the_lowest_catalog_price(start_gateway: GatewayFactory, chaos: ChaosUpstream) -> None:
    gw = await gateway(start_gateway, chaos)
    status, h, body = await call(gw, {"model": "auto:cheapest", "messages": HI})
    assert status == 200, body
    assert h["x-unigate-model"] == min(CANDIDATES, key=price) == "openai/gpt-4.1-nano"
    assert h["x-unigate-route"].startswith("auto:cheapest; openai/gpt-4.1-nano;")
    assert chaos.served == {"gpt-4.1-nano": 1}


async def test_fastest_and_balanced_follow_live_latency(start_gateway: GatewayFactory, chaos: ChaosUpstream) -> None:
    gw = await gateway(start_gateway, chaos, CANDIDATES[:3])
    assert (await call(gw, {"model": "auto", "messages": HI}))[0] == 200  # the candidates are set up
    chaos.delay.update({"gpt-4.1": 0.01, "gpt-4.1-mini": 0.06, "gpt-4.1-nano": 0.3})
    for mid in CANDIDATES[:3]:
        for _ in range(2):
            assert (await call(gw, {"model": mid, "messages": HI}))[0] == 200  # measured live
    _, h, _ = await call(gw, {"model": "auto:fastest", "messages": HI})
    assert h["x-unigate-model"] == "openai/gpt-4.1" and "ms" in h["x-unigate-route"]
    # balanced: nano is cheapest but slowest, 4.1 fastest but dearest; mini is best on both together
    _, h, _ = await call(gw, {"model": "auto:balanced", "messages": HI})
    assert h["x-unigate-model"] == "openai/gpt-4.1-mini"
    _, h2, _ = await call(gw, {"model": "auto", "messages": HI})
    assert h2["x-unigate-model"] == "openai/gpt-4.1-mini"  # auto is balanced


@pytest.mark.parametrize("policy", ["auto", "auto:cheapest", "auto:fastest", "auto:balanced"])
async def test_needs_decide_the_candidates(start_gateway: GatewayFactory, chaos: ChaosUpstream, policy: str) -> None:
    gw = await gateway(start_gateway, chaos)
    for body, need in (({"messages": IMAGE}, "vision"), ({"messages": HI, "tools": TOOLS}, "tools")):
        for _ in range(5):
            status, h, out = await call(gw, {"model": policy, **body})
            assert status == 200, out
            info = catalog.lookup(*h["x-unigate-model"].split("/", 1))
            assert info is not None and info.supports(need) is True, (policy, need, h["x-unigate-model"])
    assert "gpt-4.1-nano" in chaos.served or "gpt-4.1" in chaos.served
    # o3-mini takes no images: an image request never reached it
    assert all(r.json["model"] != "o3-mini" or "image_url" not in orjson.dumps(r.json).decode()
               for r in chaos.requests)


async def test_no_candidate_that_can_is_a_clear_400(start_gateway: GatewayFactory, chaos: ChaosUpstream) -> None:
    gw = await gateway(start_gateway, chaos, ["openai/o3-mini"])
    status, _, body = await call(gw, {"model": "auto", "messages": IMAGE})
    assert status == 400 and "vision" in body["error"]["message"] and not chaos.requests
    status, _, body = await call(gw, {"model": "auto:smartest", "messages": HI})
    assert status == 404 and "auto:cheapest" in body["error"]["message"]


async def test_a_failing_pick_falls_back_to_the_next(start_gateway: GatewayFactory, chaos: ChaosUpstream) -> None:
    gw = await gateway(start_gateway, chaos)
    chaos.modes["gpt-4.1-nano"] = "500"
    status, h, _ = await call(gw, {"model": "auto:cheapest", "messages": HI})
    assert status == 200 and h["x-unigate-model"] == "openai/gpt-4.1-mini" and h["x-unigate-attempts"] == "2"


async def test_keys_and_auto(start_gateway: GatewayFactory, chaos: ChaosUpstream) -> None:
    gw = await gateway(start_gateway, chaos)
    async with aiohttp.ClientSession() as s:
        async def key(models: list[str]) -> str:
            async with s.post(gw.url + "/admin/keys", headers={"Authorization": f"Bearer {MASTER}"},
                              json={"name": "k", "models": models}) as r:
                return str((await r.json())["key"])
        narrow, no_auto = await key(["auto", "openai/gpt-4.1*"]), await key(["openai/*"])
    status, h, _ = await call(gw, {"model": "auto:cheapest", "messages": HI}, narrow)
    assert status == 200 and h["x-unigate-model"] == "openai/gpt-4.1-nano"
    status, h, _ = await call(gw, {"model": "auto:fastest", "messages": HI}, narrow)
    assert status == 200 and h["x-unigate-model"].startswith("openai/gpt-4.1")  # never o3-mini for this key
    assert (await call(gw, {"model": "auto", "messages": HI}, no_auto))[0] == 403


@pytest.mark.local_model
async def test_local_first_uses_the_embedded_model_when_it_can(start_gateway: GatewayFactory,
                                                               chaos: ChaosUpstream) -> None:
    require_local_model()
    gw = await gateway(start_gateway, chaos, ["local/*", "openai/gpt-4.1-mini"], env={"UNIGATE_LOCAL": "on"})
    status, h, body = await call(gw, {"model": "auto:local-first", "messages": HI, "max_tokens": 4})
    assert status == 200, body
    assert h["x-unigate-model"] == "local/smollm2" and "embedded" in h["x-unigate-route"] and not chaos.requests
    # tools: the embedded model calls them (providers/local/tools.py), so it serves those too
    status, h, body = await call(gw, {"model": "auto:local-first", "messages": HI, "tools": TOOLS, "max_tokens": 30})
    assert status == 200 and h["x-unigate-model"] == "local/smollm2" and not chaos.requests
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "f"
    # images: the embedded model has no vision, so a cloud model serves
    status, h, _ = await call(gw, {"model": "auto:local-first", "messages": IMAGE, "max_tokens": 4})
    assert status == 200 and h["x-unigate-model"] == "openai/gpt-4.1-mini"
    # the other policies do not pick the embedded model unless asked to
    _, h, _ = await call(gw, {"model": "auto:cheapest", "messages": HI})
    assert h["x-unigate-model"] == "openai/gpt-4.1-mini"
