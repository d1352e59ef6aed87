"""A virtual key's limits, budgets and credits enforced on real calls: an in-process gateway on a
real SQLite state file in front of the fake OpenAI upstream (gpt-4o-mini at catalog price, each
answer 12 prompt + 5 completion tokens)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.openai import FakeOpenAI
from tests.integration.test_keys import MASTER, admin
from unigate.state import Scope

HI: Any = [{"role": "user", "content": "hi"}]
#: 12 x $0.15/M + 5 x $0.60/M
COST = 12 * 0.15e-6 + 5 * 0.60e-6


@pytest.fixture
async def gw(start_gateway: GatewayFactory, openai_fake: FakeOpenAI, tmp_path: Any) -> RunningGateway:
    # a priced deployment of the fake's slow stream
    trickle = {"name": "trickle", "model": "openai/trickle", "input_price": 1.0, "output_price": 2.0}
    return await start_gateway({"governance": {"flush_interval": 0.1}, "deployments": [trickle]},
                               env={"OPENAI_API_KEY": "sk-upstream-test", "OPENAI_BASE_URL": openai_fake.url + "/v1",
                                    "UNIGATE_MASTER_KEY": MASTER, "UNIGATE_DATA_DIR": str(tmp_path)})


async def new_key(gw: RunningGateway, **fields: Any) -> tuple[str, str]:
    status, made = await admin(gw, "POST", "/admin/keys", {"name": "t", **fields})
    assert status == 201, made
    return made["id"], made["key"]


async def chat(gw: RunningGateway, key: str, model: str = "openai/gpt-4o-mini", **extra: Any) -> tuple[int, Any, Any]:
    async with aiohttp.ClientSession() as s, s.post(gw.url + "/v1/chat/completions",
                                                    headers={"Authorization": f"Bearer {key}"},
                                                    json={"model": model, "messages": HI, **extra}) as r:
        return r.status, r.headers, await r.json()


async def test_rpm_refuses_with_retry_after_and_headers(gw: RunningGateway) -> None:
    _, key = await new_key(gw, rpm=5)
    results = [await chat(gw, key) for _ in range(7)]
    assert [r[0] for r in results] == [200] * 5 + [429] * 2
    assert [r[1]["x-ratelimit-remaining-requests"] for r in results[:5]] == ["4", "3", "2", "1", "0"]
    assert {r[1]["x-ratelimit-limit-requests"] for r in results[:5]} == {"5"}
    assert results[0][1]["x-ratelimit-reset-requests"].endswith("s")
    status, headers, body = results[5]
    assert body["error"]["code"] == "rate_limit_exceeded" and body["error"]["type"] == "rate_limit_error"
    assert 1 <= int(headers["Retry-After"]) <= 60
    # a key without limits is not limited, and its answers carry no x-ratelimit headers
    _, free = await new_key(gw)
    status, headers, _ = await chat(gw, free)
    assert status == 200 and "x-ratelimit-limit-requests" not in headers


async def test_tpm_counts_the_estimate_then_the_usage(gw: RunningGateway) -> None:
    _, key = await new_key(gw, tpm=100)
    # each call is estimated at about 22 prompt + 40 tokens while in flight, and settled to the
    # 17 it used: the fourth's estimate no longer fits the 100 - 3 x 17 left
    results = [await chat(gw, key, max_tokens=40) for _ in range(4)]
    assert [r[0] for r in results] == [200, 200, 200, 429]
    assert results[0][1]["x-ratelimit-limit-tokens"] == "100"
    assert "tokens per minute" in results[3][2]["error"]["message"]
    await asyncio.sleep(1.1)  # a tpm refusal is remembered for a second
    assert (await chat(gw, key, max_tokens=1))[0] == 200  # a smaller estimate fits


async def test_budget_is_enforced_and_charged(gw: RunningGateway) -> None:
    kid, key = await new_key(gw, budget_usd=COST * 10, budget_period="daily")
    statuses = [(await chat(gw, key, max_tokens=5))[0] for _ in range(14)]
    served = statuses.count(200)
    assert statuses[:served] == [200] * served and 7 <= served <= 10  # worst cases are held until settled
    status, _, body = await chat(gw, key, max_tokens=5)
    assert status == 429 and body["error"]["code"] == "budget_exceeded"
    state = gw.gateway.state
    await gw.gateway.enforcer.flush()
    spent = await state.spend.spent(f"key:{kid}", "daily", time.time())
    assert spent == pytest.approx(served * COST) and spent <= COST * 10


async def test_credits_pay_and_run_out_with_402(gw: RunningGateway) -> None:
    kid, key = await new_key(gw, uses_credits=True)
    status, _, body = await chat(gw, key, max_tokens=5)
    assert status == 402 and body["error"]["code"] == "insufficient_credits"
    state = gw.gateway.state
    await state.spend.add_credits(f"key:{kid}", COST * 3.5, actor="test")
    await asyncio.sleep(1.1)  # the remembered refusal lasts a second
    statuses = [(await chat(gw, key, max_tokens=5))[0] for _ in range(6)]
    assert statuses.count(200) >= 2 and statuses.count(200) <= 3 and statuses[-1] == 402
    await gw.gateway.enforcer.flush()
    balance = await state.spend.balance(f"key:{kid}")
    assert balance == pytest.approx(COST * 3.5 - statuses.count(200) * COST)
    entries = await state.spend.credit_entries(f"key:{kid}")
    assert {e.kind for e in entries} == {"topup", "charge"}


async def test_an_unpriced_model_is_refused_under_a_budget(gw: RunningGateway) -> None:
    _, key = await new_key(gw, budget_usd=1.0)
    status, _, body = await chat(gw, key, model="openai/no-such-priced-model")
    assert status == 403 and body["error"]["code"] == "model_price_unknown"
    _, free = await new_key(gw)  # no budget: served (and recorded as unpriced)
    assert (await chat(gw, free, model="openai/no-such-priced-model"))[0] == 200


async def test_max_parallel(gw: RunningGateway) -> None:
    _, key = await new_key(gw, max_parallel=1)
    results = await asyncio.gather(chat(gw, key, model="openai/slow-300"), chat(gw, key, model="openai/slow-300"))
    assert sorted(r[0] for r in results) == [200, 429]
    refused = next(r for r in results if r[0] == 429)
    assert "in flight" in refused[2]["error"]["message"] and refused[1]["Retry-After"] == "1"
    assert (await chat(gw, key, model="openai/slow-10"))[0] == 200  # the slot was given back


async def test_team_limits_and_models_bind_every_key(gw: RunningGateway) -> None:
    state = gw.gateway.state
    await state.keys.create_team({"name": "core", "rpm": 3, "models": ["openai/gpt-4o*"]}, actor="test", team_id="core")
    _, a = await new_key(gw, team="core")
    bid, b = await new_key(gw, team="core", rpm=100)
    assert (await chat(gw, a, model="openai/gpt-4.1-mini"))[0] == 403  # not on the team's list
    results = [await chat(gw, k) for k in (a, b, a, b)]
    assert [r[0] for r in results] == [200, 200, 200, 429]
    # the x-ratelimit headers name the tightest scope: the team's alone for key a; for key b the
    # team's 3 (1 left after two calls), not its own 100 (99 left)
    assert [(r[1]["x-ratelimit-limit-requests"], r[1]["x-ratelimit-remaining-requests"]) for r in results[:3]] == [
        ("3", "2"), ("3", "1"), ("3", "0")]
    # the refused call did not count against key b's own rpm: one of its 100 is used
    fig = gw.gateway.enforcer.quotas.figures((Scope(f"key:{bid}", rpm=100),), time.time())
    assert fig.remaining_requests == 99


async def test_the_ledger_is_persisted_with_key_team_and_attempts(gw: RunningGateway) -> None:
    state = gw.gateway.state
    await state.keys.create_team({"name": "ops"}, actor="test", team_id="ops")
    kid, key = await new_key(gw, team="ops", rpm=100)
    assert (await chat(gw, key))[0] == 200
    assert (await chat(gw, key, model="openai/error-500"))[0] in (500, 502)
    await gw.gateway.ledger.flush()
    buckets = await state.ledger.usage(time.time() - 60, time.time() + 60, "key")
    mine = next(b for b in buckets if b.group == kid)
    assert (mine.requests, mine.input_tokens, mine.output_tokens, mine.errors) == (2, 12, 5, 1)
    assert mine.cost_usd == pytest.approx(COST)
    teams = await state.ledger.usage(time.time() - 60, time.time() + 60, "team")
    assert [b.group for b in teams if b.group] == ["ops"]
    rows = await state.db.fetch(__import__("unigate.state.db", fromlist=["Sql"]).Sql(
        "SELECT requested_model, served_model, attempt, attempts, status, key_id FROM usage ORDER BY time"))
    assert rows[0][:5] == ("openai/gpt-4o-mini", "openai/gpt-4o-mini", 1, 1, 200) and rows[0][5] == kid


async def test_a_stream_the_client_left_is_charged(gw: RunningGateway) -> None:
    kid, key = await new_key(gw, budget_usd=1.0, budget_period="total")
    async with aiohttp.ClientSession() as s:
        r = await s.post(gw.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                         json={"model": "trickle", "messages": HI, "stream": True, "max_tokens": 5})
        assert r.status == 200
        await r.content.readany()
        r.close()  # the client leaves mid-stream
    state = gw.gateway.state
    for _ in range(50):  # the upstream is read to its end for the usage, then the call settles
        await asyncio.sleep(0.1)
        await gw.gateway.ledger.flush()
        await gw.gateway.enforcer.flush()
        if await state.spend.spent(f"key:{kid}", "total", time.time()) > 0:
            break
    # the whole answer's usage at the deployment's prices: 12 x $1/M + 5 x $2/M
    assert await state.spend.spent(f"key:{kid}", "total", time.time()) == pytest.approx(22e-6)
    rows = await state.db.fetch(__import__("unigate.state.db", fromlist=["Sql"]).Sql(
        "SELECT client_disconnected, output_tokens FROM usage WHERE key_id = ?", (kid,)))
    assert rows == [(1, 5)]


async def test_embeddings_and_the_anthropic_surface_are_charged(gw: RunningGateway) -> None:
    kid, key = await new_key(gw, budget_usd=1.0, budget_period="total")
    state = gw.gateway.state
    async with aiohttp.ClientSession() as s:
        async with s.post(gw.url + "/v1/embeddings", headers={"Authorization": f"Bearer {key}"},
                          json={"model": "openai/text-embedding-3-small", "input": "hi"}) as r:
            assert r.status == 200
        await gw.gateway.enforcer.flush()
        spent = await state.spend.spent(f"key:{kid}", "total", time.time())
        assert spent == pytest.approx(4 * 0.02e-6)  # the 4 input tokens, no output
        # the Anthropic surface, in front of the OpenAI upstream: the same key, the same budget
        async with s.post(gw.url + "/v1/messages", headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
                          json={"model": "openai/gpt-4o-mini", "max_tokens": 5, "messages": HI}) as r:
            assert r.status == 200, await r.text()
        await gw.gateway.enforcer.flush()
        assert await state.spend.spent(f"key:{kid}", "total", time.time()) == pytest.approx(spent + COST)


async def test_a_team_budget_is_shared_by_its_keys_and_charged_to_each(gw: RunningGateway) -> None:
    state = gw.gateway.state
    await state.keys.create_team({"name": "lab", "budget_usd": COST * 6, "budget_period": "monthly"}, actor="test",
                                 team_id="lab")
    a_id, a = await new_key(gw, team="lab", budget_usd=1.0)
    _, b = await new_key(gw, team="lab")
    statuses = [(await chat(gw, k, max_tokens=5))[0] for k in (a, b) * 5]
    served = statuses.count(200)
    assert 4 <= served <= 6 and statuses[served:] == [429] * (10 - served)
    status, _, body = await chat(gw, b, max_tokens=5)
    assert status == 429 and "team lab" in body["error"]["message"]
    await gw.gateway.enforcer.flush()
    now = time.time()
    team_spent = await state.spend.spent("team:lab", "monthly", now)
    assert team_spent == pytest.approx(served * COST) and team_spent <= COST * 6
    # key a's own budget counted its share of the calls (it made every other one)
    a_spent = await state.spend.spent(f"key:{a_id}", "monthly", now)
    assert a_spent == pytest.approx(statuses[::2].count(200) * COST)


async def test_a_store_that_does_not_answer_fails_closed(gw: RunningGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    _, key = await new_key(gw, budget_usd=1.0)

    async def down(*args: Any, **kwargs: Any) -> Any:
        raise OSError("connection refused")

    monkeypatch.setattr(gw.gateway.state.spend, "roll", down)
    status, _, body = await chat(gw, key, max_tokens=5)
    assert status == 503 and "could not check this key's limits" in body["error"]["message"]
    monkeypatch.undo()
    assert (await chat(gw, key, max_tokens=5))[0] == 200
