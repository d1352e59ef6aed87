"""Keys with an admin role (`role`: "user" default, "viewer", "admin") on a real gateway: what
each may do on the admin API, that the audit trail names the key that made a change, that a
revoked admin key stops at once like any key; and teams that pay their keys' calls from the
team's credits."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.openai import FakeOpenAI
from tests.integration.test_governance import COST, chat
from tests.integration.test_keys import MASTER, admin


@pytest.fixture
async def gw(start_gateway: GatewayFactory, openai_fake: FakeOpenAI, tmp_path: Any) -> RunningGateway:
    return await start_gateway({"governance": {"flush_interval": 0.1}},
                               env={"OPENAI_API_KEY": "sk-upstream-test", "OPENAI_BASE_URL": openai_fake.url + "/v1",
                                    "UNIGATE_MASTER_KEY": MASTER, "UNIGATE_DATA_DIR": str(tmp_path)})


async def make(gw: RunningGateway, key: str = MASTER, **fields: Any) -> dict[str, Any]:
    status, made = await admin(gw, "POST", "/admin/keys", {"name": "k", **fields}, key=key)
    assert status == 201, made
    return dict(made)


#: a read of every kind of admin route (keys, teams, credits, usage, audit, health, analytics)
READS = ["/admin/whoami", "/admin/keys", "/admin/teams", "/admin/usage", "/admin/audit", "/admin/deployments",
         "/admin/analytics/summary", "/admin/analytics/requests"]


async def test_an_admin_key_runs_the_admin_api_and_is_named_in_the_audit(gw: RunningGateway) -> None:
    boss = await make(gw, name="ops-admin", role="admin")
    assert boss["role"] == "admin"
    status, me = await admin(gw, "GET", "/admin/whoami", key=boss["key"])
    assert status == 200 and me == {"object": "principal", "key_id": boss["id"], "master": False, "role": "admin",
                                     "team": None}
    for path in READS:
        status, body = await admin(gw, "GET", path, key=boss["key"])
        assert status == 200, (path, body)
    made = await make(gw, key=boss["key"], name="app", rpm=5)
    status, team = await admin(gw, "POST", "/admin/teams", {"id": "t", "name": "T"}, key=boss["key"])
    assert status == 201, team
    status, topped = await admin(gw, "POST", "/admin/credits", {"account": f"key:{made['id']}", "amount_usd": 2},
                                 key=boss["key"])
    assert status == 200 and topped["entry"]["actor"] == f"key:{boss['id']}"
    status, _ = await admin(gw, "POST", f"/admin/keys/{made['id']}/revoke", key=boss["key"])
    assert status == 200
    status, trail = await admin(gw, "GET", "/admin/audit?limit=20")
    assert status == 200
    by_target = {(e["action"], e["target"]): e["actor"] for e in trail["data"]}
    assert by_target[("key.create", boss["id"])] == "master"
    for action, target in (("key.create", made["id"]), ("team.create", "t"), ("key.revoke", made["id"])):
        assert by_target[(action, target)] == f"key:{boss['id']}", (action, target)
    # the key is still a virtual key on the model API: its calls are its own, in the ledger as such
    status, _, _ = await chat(gw, boss["key"], max_tokens=5)
    assert status == 200
    # the master key's whoami
    status, me = await admin(gw, "GET", "/admin/whoami")
    assert status == 200 and me["master"] is True and me["role"] == "admin" and me["key_id"] is None


async def test_a_viewer_reads_and_changes_nothing(gw: RunningGateway) -> None:
    viewer = await make(gw, name="auditor", role="viewer")
    target = await make(gw, name="victim")
    for path in READS:
        status, body = await admin(gw, "GET", path, key=viewer["key"])
        assert status == 200, (path, body)
    status, shown = await admin(gw, "GET", f"/admin/keys/{target['id']}", key=viewer["key"])
    assert status == 200 and "key" not in shown and shown["id"] == target["id"]
    writes = [("POST", "/admin/keys", {"name": "mine", "role": "admin"}),
              ("PATCH", f"/admin/keys/{viewer['id']}", {"role": "admin"}),  # no promoting itself
              ("POST", f"/admin/keys/{target['id']}/revoke", None),
              ("POST", f"/admin/keys/{target['id']}/rotate", {}),
              ("POST", "/admin/teams", {"name": "x"}),
              ("PATCH", "/admin/teams/none", {"name": "x"}),
              ("POST", "/admin/credits", {"account": f"key:{viewer['id']}", "amount_usd": 100})]
    before = (await admin(gw, "GET", "/admin/audit?limit=100"))[1]["data"]
    for method, path, body in writes:
        status, answer = await admin(gw, method, path, body, key=viewer["key"])
        assert status == 403 and answer["error"]["code"] == "admin_read_only", (method, path, answer)
    assert (await admin(gw, "GET", "/admin/audit?limit=100"))[1]["data"] == before  # nothing changed
    status, still = await admin(gw, "GET", f"/admin/keys/{viewer['id']}")
    assert still["role"] == "viewer" and still["revoked_at"] is None
    assert (await admin(gw, "GET", f"/admin/keys/{target['id']}"))[1]["revoked_at"] is None


async def test_a_user_key_gets_nothing_and_roles_are_checked(gw: RunningGateway) -> None:
    user = await make(gw, name="app")
    assert user["role"] == "user"
    for path in READS:
        status, body = await admin(gw, "GET", path, key=user["key"])
        assert status == 403 and body["error"]["code"] == "admin_only", (path, body)
    status, body = await admin(gw, "POST", "/admin/keys", {"name": "x", "role": "root"})
    assert status == 400 and "role" in body["error"]["message"]
    status, body = await admin(gw, "PATCH", f"/admin/keys/{user['id']}", {"role": None})
    assert status == 400 and "role" in body["error"]["message"]
    assert (await admin(gw, "GET", f"/admin/keys/{user['id']}"))[1]["role"] == "user"


async def test_a_revoked_or_expired_admin_key_is_a_401(gw: RunningGateway) -> None:
    boss = await make(gw, role="admin")
    assert (await admin(gw, "GET", "/admin/keys", key=boss["key"]))[0] == 200
    assert (await admin(gw, "POST", f"/admin/keys/{boss['id']}/revoke"))[0] == 200
    await asyncio.sleep(1.1)  # the key cache's lifetime
    status, body = await admin(gw, "GET", "/admin/keys", key=boss["key"])
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    gone = await make(gw, role="viewer", expires_at=1.0)
    status, body = await admin(gw, "GET", "/admin/whoami", key=gone["key"])
    assert status == 401
    # demoted: within the cache's second it is a user key again
    boss2 = await make(gw, role="admin")
    assert (await admin(gw, "PATCH", f"/admin/keys/{boss2['id']}", {"role": "user"}))[0] == 200
    await asyncio.sleep(1.1)
    status, body = await admin(gw, "GET", "/admin/keys", key=boss2["key"])
    assert status == 403 and body["error"]["code"] == "admin_only"


async def test_keys_create_with_a_role_from_the_cli(gw: RunningGateway, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import orjson

    from unigate.cli import main

    monkeypatch.setenv("UNIGATE_MASTER_KEY", MASTER)
    assert await asyncio.to_thread(main, ["keys", "create", "--url", gw.url, "--name", "ro", "--role", "viewer"]) == 0
    made = orjson.loads(capsys.readouterr().out)
    assert made["role"] == "viewer"
    assert await asyncio.to_thread(main, ["keys", "list", "--url", gw.url]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if made["id"] in ln)
    assert "viewer" in line.split()
    assert await asyncio.to_thread(main, ["teams", "create", "--url", gw.url, "--id", "pay", "--name", "Pay",
                                          "--uses-credits"]) == 0
    assert orjson.loads(capsys.readouterr().out)["uses_credits"] is True
    assert await asyncio.to_thread(main, ["teams", "create", "--url", gw.url, "--name", "Funded", "--credits", "5"]) == 0
    funded = orjson.loads(capsys.readouterr().out)
    assert funded["uses_credits"] is True and funded["balance_usd"] == 5.0


async def test_a_team_pays_its_keys_calls_from_its_credits(gw: RunningGateway) -> None:
    status, team = await admin(gw, "POST", "/admin/teams", {"id": "lab", "name": "Lab", "uses_credits": True})
    assert status == 201 and team["uses_credits"] is True
    a, b = await make(gw, team="lab"), await make(gw, team="lab")
    own = await make(gw, team="lab", credits_usd=COST * 2.5)  # credits of its own: it pays from those
    status, _, body = await chat(gw, a["key"], max_tokens=5)
    assert status == 402 and body["error"]["code"] == "insufficient_credits" and "team lab" in body["error"]["message"]
    assert (await admin(gw, "POST", "/admin/credits", {"account": "team:lab", "amount_usd": COST * 3.5}))[0] == 200
    await asyncio.sleep(1.1)  # a refusal is remembered for a second
    # three calls' worth, shared by both keys (a worst case held until settled may refuse the third)
    statuses = [(await chat(gw, k["key"], max_tokens=5))[0] for k in (a, b, a, b, a)]
    served = statuses.count(200)
    assert statuses[:served] == [200] * served and 2 <= served <= 3 and statuses[-1] == 402
    own_statuses = [(await chat(gw, own["key"], max_tokens=5))[0] for _ in range(3)]
    own_served = own_statuses.count(200)
    assert own_statuses[:own_served] == [200] * own_served and 1 <= own_served <= 2 and own_statuses[-1] == 402
    state = gw.gateway.state
    assert state is not None
    await gw.gateway.enforcer.flush()
    # each call paid once: by the team, or by the key with credits of its own
    assert await state.spend.balance("team:lab") == pytest.approx(COST * 3.5 - served * COST)
    assert await state.spend.balance(f"key:{own['id']}") == pytest.approx(COST * 2.5 - own_served * COST)
    # a team created with a first top-up pays from it at once
    status, paid = await admin(gw, "POST", "/admin/teams", {"id": "paid", "name": "Paid", "credits_usd": COST * 2.5})
    assert status == 201 and paid["uses_credits"] is True and paid["balance_usd"] == pytest.approx(COST * 2.5)
    member = await make(gw, team="paid")
    paid_statuses = [(await chat(gw, member["key"], max_tokens=5))[0] for _ in range(4)]
    assert paid_statuses[0] == 200 and paid_statuses[-1] == 402
    status, body = await admin(gw, "POST", "/admin/teams", {"name": "Bad", "credits_usd": -1})
    assert status == 400 and body["error"]["param"] == "credits_usd"
    # turned off: the team's keys are served again with nothing to pay from
    assert (await admin(gw, "PATCH", "/admin/teams/lab", {"uses_credits": False}))[0] == 200
    await asyncio.sleep(1.1)
    assert (await chat(gw, a["key"], max_tokens=5))[0] == 200
