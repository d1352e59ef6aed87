"""Virtual keys end to end: created through the admin API (and `unigate keys`), used on both
surfaces, limited to their models (globs, aliases, bare names that must not leak to another
provider), revoked and rotated, against a real SQLite state file and mock upstreams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio

from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.openai import FakeOpenAI

MASTER = "sk-master-test"
HI: Any = [{"role": "user", "content": "hi"}]


@pytest_asyncio.fixture
async def ant() -> AsyncIterator[FakeAnthropic]:
    f = FakeAnthropic()
    await f.start()
    yield f
    await f.stop()


@pytest_asyncio.fixture
async def gw(start_gateway: GatewayFactory, openai_fake: FakeOpenAI, ant: FakeAnthropic,
             tmp_path: Any) -> RunningGateway:
    return await start_gateway({"aliases": {"fast": ["openai/gpt-4o-mini"]}},
                               env={"OPENAI_API_KEY": "sk-upstream-test", "OPENAI_BASE_URL": openai_fake.url + "/v1",
                                    "ANTHROPIC_API_KEY": ant.api_key, "ANTHROPIC_BASE_URL": ant.url,
                                    "UNIGATE_MASTER_KEY": MASTER, "UNIGATE_DATA_DIR": str(tmp_path)})


async def admin(gw: RunningGateway, method: str, path: str, body: Any = None,
                key: str = MASTER) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.request(method, gw.url + path, headers={"Authorization": f"Bearer {key}"},
                                                       data=None if body is None else orjson.dumps(body)) as r:
        return r.status, await r.json()


async def chat(gw: RunningGateway, key: str, model: str) -> tuple[int, dict[str, str], Any]:
    async with aiohttp.ClientSession() as s, s.post(gw.url + "/v1/chat/completions",
                                                    headers={"Authorization": f"Bearer {key}"},
                                                    json={"model": model, "messages": HI}) as r:
        return r.status, dict(r.headers), await r.json()


async def test_a_key_is_created_shown_once_and_works(gw: RunningGateway, tmp_path: Any) -> None:
    status, made = await admin(gw, "POST", "/admin/keys", {"name": "ci", "models": ["openai/*"]})
    assert status == 201 and made["id"].startswith("key_") and made["key"].startswith("sk-ug-")
    secret = made["key"]
    status, shown = await admin(gw, "GET", f"/admin/keys/{made['id']}")
    assert status == 200 and "key" not in shown and secret not in orjson.dumps(shown).decode()
    assert all("hash" not in k for k in shown)
    status, listed = await admin(gw, "GET", "/admin/keys")
    assert [k["id"] for k in listed["data"]] == [made["id"]]
    assert secret.encode() not in (tmp_path / "unigate.db").read_bytes()  # stored only as a hash
    status, _, body = await chat(gw, secret, "openai/gpt-4o-mini")
    assert status == 200, body
    await gw.gateway.ledger.flush()
    assert gw.gateway.ledger.recent[-1].key_id == made["id"]
    # the Anthropic surface takes it as x-api-key
    async with aiohttp.ClientSession() as s, s.post(gw.url + "/v1/messages", headers={"x-api-key": secret},
                                                    json={"model": "openai/gpt-4o-mini", "max_tokens": 5,
                                                          "messages": HI}) as r:
        assert r.status == 200


async def test_models_allow_list(gw: RunningGateway, ant: FakeAnthropic) -> None:
    _, made = await admin(gw, "POST", "/admin/keys", {"name": "a", "models": ["anthropic/*", "fast"]})
    key = made["key"]
    assert (await chat(gw, key, "anthropic/claude-3-5-haiku-latest"))[0] == 200
    assert (await chat(gw, key, "fast"))[0] == 200  # a granted alias carries its deployments
    status, _, body = await chat(gw, key, "openai/gpt-4o-mini")
    assert status == 403 and body["error"]["code"] == "model_not_allowed"
    # a bare name resolves only to a provider the key may use
    status, headers, _ = await chat(gw, key, "claude-haiku-4-5-20251001")
    assert status == 200 and headers["x-unigate-model"] == "anthropic/claude-haiku-4-5-20251001"
    status, _, body = await chat(gw, key, "gpt-4.1-mini")
    assert status == 403
    # the master key is not limited
    assert (await chat(gw, MASTER, "openai/gpt-4o-mini"))[0] == 200


async def test_revoked_keys_stop_within_a_second_and_say_nothing(gw: RunningGateway) -> None:
    _, made = await admin(gw, "POST", "/admin/keys", {"name": "r"})
    key = made["key"]
    assert (await chat(gw, key, "openai/gpt-4o-mini"))[0] == 200
    status, revoked = await admin(gw, "POST", f"/admin/keys/{made['id']}/revoke")
    assert status == 200 and revoked["revoked_at"]
    await asyncio.sleep(1.1)
    status, _, body = await chat(gw, key, "openai/gpt-4o-mini")
    assert status == 401
    never = await chat(gw, "sk-ug-never-existed", "openai/gpt-4o-mini")
    assert (status, body) == (never[0], never[2])  # the same answer as for a key that never was


async def test_rotation_keeps_the_old_secret_for_its_grace(gw: RunningGateway) -> None:
    _, made = await admin(gw, "POST", "/admin/keys", {"name": "rot"})
    old = made["key"]
    status, rotated = await admin(gw, "POST", f"/admin/keys/{made['id']}/rotate", {"grace_seconds": 60})
    assert status == 200 and rotated["key"] != old and rotated["id"] == made["id"]
    assert (await chat(gw, rotated["key"], "openai/gpt-4o-mini"))[0] == 200
    assert (await chat(gw, old, "openai/gpt-4o-mini"))[0] == 200  # within its grace
    _, again = await admin(gw, "POST", f"/admin/keys/{made['id']}/rotate", {"grace_seconds": 0})
    await asyncio.sleep(1.1)
    assert (await chat(gw, rotated["key"], "openai/gpt-4o-mini"))[0] == 401
    assert (await chat(gw, again["key"], "openai/gpt-4o-mini"))[0] == 200


async def test_admin_refuses_virtual_keys_and_bad_input(gw: RunningGateway) -> None:
    _, made = await admin(gw, "POST", "/admin/keys", {"name": "x"})
    status, body = await admin(gw, "GET", "/admin/keys", key=made["key"])
    assert status == 403 and body["error"]["code"] == "admin_only"
    status, body = await admin(gw, "POST", "/admin/keys", {"name": "x", "rpm": -1})
    assert status == 400 and "rpm" in body["error"]["message"]
    status, body = await admin(gw, "POST", "/admin/keys", {"name": "x", "colour": "red"})
    assert status == 400 and "colour" in body["error"]["message"]
    status, body = await admin(gw, "POST", "/admin/keys", {"models": "openai/*"})
    assert status == 400
    status, body = await admin(gw, "GET", "/admin/keys/key_nope")
    assert status == 404
    status, body = await admin(gw, "POST", "/admin/keys/key_nope/revoke")
    assert status == 404


async def test_keys_cli(gw: RunningGateway, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from unigate.cli import main

    monkeypatch.setenv("UNIGATE_MASTER_KEY", MASTER)
    assert await asyncio.to_thread(main, ["keys", "create", "--url", gw.url, "--name", "cli", "--models", "openai/*"]) == 0
    made = orjson.loads(capsys.readouterr().out)
    assert made["key"].startswith("sk-ug-") and made["models"] == ["openai/*"]
    assert await asyncio.to_thread(main, ["keys", "list", "--url", gw.url]) == 0
    assert made["id"] in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["keys", "revoke", "--url", gw.url, made["id"]]) == 0
    assert orjson.loads(capsys.readouterr().out)["revoked_at"]
    assert await asyncio.to_thread(main, ["keys", "show", "--url", gw.url, "key_missing"]) == 1
    assert "404" in capsys.readouterr().err
    # limits, a budget and a first top-up from the command line; "none" turns a limit off
    assert await asyncio.to_thread(main, ["keys", "create", "--url", gw.url, "--name", "paid", "--rpm", "60",
                                          "--budget", "2.5", "--budget-period", "daily", "--credits", "3"]) == 0
    paid = orjson.loads(capsys.readouterr().out)
    assert (paid["rpm"], paid["budget_usd"], paid["budget_period"], paid["uses_credits"], paid["balance_usd"]) == (
        60, 2.5, "daily", True, 3.0)
    assert await asyncio.to_thread(main, ["keys", "update", "--url", gw.url, paid["id"], "--rpm", "none",
                                          "--no-uses-credits"]) == 0
    updated = orjson.loads(capsys.readouterr().out)
    assert (updated["rpm"], updated["uses_credits"], updated["budget_usd"]) == (None, False, 2.5)
