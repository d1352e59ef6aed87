"""The admin API for teams, credits, usage and audit, end to end: a real gateway with a master key
and a SQLite data dir, ledger rows written straight into its state file, and the `unigate`
commands that call these routes. The parsing helpers behind the query strings are tested on
their own at the end."""

from __future__ import annotations

import asyncio
import csv
import io
import math
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio

from tests.conftest import GatewayFactory, RunningGateway
from unigate.errors import InvalidRequest
from unigate.state import UsageRow, open_state
from unigate.surfaces import admin as adm

MASTER = "sk-master-test"
#: 2024-03-01T00:00:00Z: the ledger rows below lie on this day and the two after it
DAY0 = 1709251200.0
DAY = 86400.0
EVIL_MODEL = '=HYPERLINK("http://evil.example","x")'


@pytest_asyncio.fixture
async def gw(start_gateway: GatewayFactory, tmp_path: Any) -> RunningGateway:
    return await start_gateway(env={"UNIGATE_MASTER_KEY": MASTER, "UNIGATE_DATA_DIR": str(tmp_path)})


async def call(gw: RunningGateway, method: str, path: str, body: Any = None, key: str = MASTER,
               raw: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    data = raw if raw is not None else None if body is None else orjson.dumps(body)
    async with aiohttp.ClientSession() as s, s.request(method, gw.url + path, data=data,
                                                       headers={"Authorization": f"Bearer {key}"}) as r:
        return r.status, dict(r.headers), await r.read()


async def admin(gw: RunningGateway, method: str, path: str, body: Any = None, key: str = MASTER,
                raw: bytes | None = None) -> tuple[int, Any]:
    status, _, data = await call(gw, method, path, body, key, raw)
    return status, orjson.loads(data)


async def audit_rows(gw: RunningGateway, target: str) -> list[dict[str, Any]]:
    status, body = await admin(gw, "GET", f"/admin/audit?target={target}&limit=1000")
    assert status == 200, body
    rows: list[dict[str, Any]] = body["data"]
    return rows


# --- teams ------------------------------------------------------------------------------------


async def test_teams_create_list_show_update(gw: RunningGateway) -> None:
    status, eng = await admin(gw, "POST", "/admin/teams", {"id": "eng", "name": "Engineering",
                                                           "models": ["openai/*"], "metadata": {"cc": 7}})
    assert status == 201, eng
    assert eng["id"] == "eng" and eng["object"] == "team" and eng["models"] == ["openai/*"]
    assert eng["metadata"] == {"cc": 7} and eng["created_at"] > 0
    # the limit fields are shown (unset) so they appear once the API accepts them
    assert {k: eng[k] for k in ("rpm", "tpm", "max_parallel", "budget_usd")} == dict.fromkeys(
        ("rpm", "tpm", "max_parallel", "budget_usd"))
    assert eng["budget_period"] == "monthly"
    status, ops = await admin(gw, "POST", "/admin/teams", {"name": "Ops"})
    assert status == 201 and ops["id"].startswith("team_")

    status, listed = await admin(gw, "GET", "/admin/teams")
    assert status == 200 and listed["object"] == "list"
    assert [t["id"] for t in listed["data"]] == ["eng", ops["id"]]
    status, shown = await admin(gw, "GET", "/admin/teams/eng")
    assert (status, shown) == (200, eng)

    status, changed = await admin(gw, "PATCH", "/admin/teams/eng", {"name": "Eng", "models": []})
    assert status == 200 and changed["name"] == "Eng" and changed["models"] == []
    assert (await admin(gw, "GET", "/admin/teams/eng"))[1]["name"] == "Eng"
    actions = [r["action"] for r in await audit_rows(gw, "eng")]
    assert actions == ["team.update", "team.create"]  # newest first

    # a key's team must exist, and keys show their limit fields too
    status, key = await admin(gw, "POST", "/admin/keys", {"name": "k", "team": "eng"})
    assert status == 201 and key["team"] == "eng"
    assert key["rpm"] is None and key["uses_credits"] is False and key["budget_period"] == "monthly"


async def test_team_errors(gw: RunningGateway) -> None:
    assert (await admin(gw, "POST", "/admin/teams", {"id": "eng", "name": "E"}))[0] == 201
    status, body = await admin(gw, "GET", "/admin/teams/nope")
    assert status == 404 and body["error"]["code"] == "team_not_found"
    status, body = await admin(gw, "PATCH", "/admin/teams/nope", {"name": "x"})
    assert status == 404 and body["error"]["code"] == "team_not_found"
    cases: list[tuple[Any, str | None]] = [
        ({"id": "eng", "name": "again"}, "id"),         # taken
        ({"id": "a/b", "name": "x"}, "id"),             # would not fit in a URL segment
        ({"id": "team:x", "name": "x"}, "id"),
        ({"id": 5, "name": "x"}, "id"),
        ({"models": ["openai/*"]}, "name"),             # no name
        ({"name": "  "}, "name"),
        ({"name": "x", "models": "openai/*"}, "models"),
        ({"name": "x", "colour": "red"}, "colour"),
        ({"name": "x", "rpm": -1}, "rpm"),
        ({"name": "x", "budget_usd": "5"}, "budget_usd"),
        ({"name": "x", "budget_period": "hourly"}, "budget_period"),
    ]
    for body, param in cases:
        status, answer = await admin(gw, "POST", "/admin/teams", body)
        assert status == 400, (body, answer)
        assert answer["error"]["param"] == param, (body, answer)
    status, answer = await admin(gw, "PATCH", "/admin/teams/eng", {"id": "other"})
    assert status == 400 and answer["error"]["param"] == "id"
    status, answer = await admin(gw, "PATCH", "/admin/teams/eng", {"tpm": 1, "budget_usd": 5})
    assert status == 200 and (answer["tpm"], answer["budget_usd"]) == (1, 5)
    status, answer = await admin(gw, "POST", "/admin/teams", raw=b"[1]")
    assert status == 400
    assert [t["id"] for t in (await admin(gw, "GET", "/admin/teams"))[1]["data"]] == ["eng"]


# --- credits ----------------------------------------------------------------------------------


async def test_credits_top_up_balance_entries_and_audit(gw: RunningGateway) -> None:
    assert (await admin(gw, "POST", "/admin/teams", {"id": "eng", "name": "E"}))[0] == 201
    status, made = await admin(gw, "POST", "/admin/credits", {"account": "team:eng", "amount_usd": 10,
                                                              "note": "welcome"})
    assert status == 200, made
    assert made["account"] == "team:eng" and made["balance_usd"] == 10.0
    entry = made["entry"]
    assert entry["kind"] == "topup" and entry["amount_usd"] == 10.0 and entry["note"] == "welcome"
    assert entry["actor"] == "master" and entry["account"] == "team:eng" and entry["reservation_id"] is None
    status, made = await admin(gw, "POST", "/admin/credits", {"account": "team:eng", "amount_usd": -2.5})
    assert status == 200 and made["balance_usd"] == 7.5 and made["entry"]["kind"] == "adjustment"

    status, shown = await admin(gw, "GET", "/admin/credits/team:eng")
    assert status == 200 and shown["account"] == "team:eng" and shown["balance_usd"] == 7.5
    assert [(e["kind"], e["amount_usd"]) for e in shown["entries"]] == [("adjustment", -2.5), ("topup", 10.0)]
    status, shown = await admin(gw, "GET", "/admin/credits/team:eng?limit=1")
    assert status == 200 and len(shown["entries"]) == 1 and shown["entries"][0]["amount_usd"] == -2.5

    trail = await audit_rows(gw, "team:eng")
    assert [(r["action"], r["actor"], r["details"]) for r in trail] == [
        ("credits.add", "master", {"amount_usd": -2.5, "note": ""}),
        ("credits.add", "master", {"amount_usd": 10.0, "note": "welcome"}),
    ]

    # a key's own account
    _, key = await admin(gw, "POST", "/admin/keys", {"name": "k"})
    status, made = await admin(gw, "POST", "/admin/credits", {"account": f"key:{key['id']}", "amount_usd": 0.25})
    assert status == 200 and made["balance_usd"] == 0.25
    status, shown = await admin(gw, "GET", f"/admin/credits/key:{key['id']}")
    assert status == 200 and shown["balance_usd"] == 0.25


async def test_bad_top_ups_write_nothing(gw: RunningGateway) -> None:
    assert (await admin(gw, "POST", "/admin/teams", {"id": "eng", "name": "E"}))[0] == 201
    assert (await admin(gw, "POST", "/admin/credits", {"account": "team:eng", "amount_usd": 5}))[0] == 200
    bad: list[tuple[bytes, int, str | None]] = [
        (b'{"account": "team:eng", "amount_usd": 0}', 400, "amount_usd"),
        (b'{"account": "team:eng", "amount_usd": 0.0}', 400, "amount_usd"),
        (b'{"account": "team:eng", "amount_usd": 1e-12}', 400, "amount_usd"),   # below a nano-dollar
        (b'{"account": "team:eng", "amount_usd": 1e400}', 400, None),           # infinite (or unparsable)
        (b'{"account": "team:eng", "amount_usd": NaN}', 400, None),
        (b'{"account": "team:eng", "amount_usd": 2000000}', 400, "amount_usd"),
        (b'{"account": "team:eng", "amount_usd": -1000001}', 400, "amount_usd"),
        (b'{"account": "team:eng", "amount_usd": "5"}', 400, "amount_usd"),
        (b'{"account": "team:eng", "amount_usd": true}', 400, "amount_usd"),
        (b'{"account": "team:eng"}', 400, "amount_usd"),
        (b'{"account": "team:eng", "amount_usd": 1, "note": 3}', 400, "note"),
        (b'{"account": "team:eng", "amount_usd": 1, "colour": "red"}', 400, "colour"),
        (b'{"amount_usd": 1}', 400, "account"),
        (b'{"account": "eng", "amount_usd": 1}', 400, "account"),
        (b'{"account": "user:eng", "amount_usd": 1}', 400, "account"),
        (b'{"account": "team:", "amount_usd": 1}', 400, "account"),
        (b'{"account": 7, "amount_usd": 1}', 400, "account"),
        (b'{"account": "team:nope", "amount_usd": 1}', 404, "account"),
        (b'{"account": "key:key_nope", "amount_usd": 1}', 404, "account"),
        (b"", 400, None),
    ]
    for raw, want, param in bad:
        status, body = await admin(gw, "POST", "/admin/credits", raw=raw)
        assert status == want, (raw, body)
        if param is not None:
            assert body["error"]["param"] == param, (raw, body)
    status, body = await admin(gw, "POST", "/admin/credits", raw=b'{"account": "team:nope", "amount_usd": 1}')
    assert body["error"]["code"] == "team_not_found"
    status, body = await admin(gw, "POST", "/admin/credits", raw=b'{"account": "key:key_nope", "amount_usd": 1}')
    assert body["error"]["code"] == "key_not_found"
    # nothing was written: the balance, the entries and the trail are those of the one good top-up
    _, shown = await admin(gw, "GET", "/admin/credits/team:eng")
    assert shown["balance_usd"] == 5.0 and len(shown["entries"]) == 1
    assert len(await audit_rows(gw, "team:eng")) == 1
    assert await audit_rows(gw, "team:nope") == [] and await audit_rows(gw, "key:key_nope") == []
    status, body = await admin(gw, "GET", "/admin/audit?limit=1000")
    assert [r["action"] for r in body["data"]].count("credits.add") == 1
    # showing an unknown or malformed account
    status, body = await admin(gw, "GET", "/admin/credits/team:nope")
    assert status == 404 and body["error"]["code"] == "team_not_found"
    status, body = await admin(gw, "GET", "/admin/credits/nope")
    assert status == 400 and body["error"]["param"] == "account"
    for q in ("limit=0", "limit=1001", "limit=x", "limit=-1", "other=1"):
        status, body = await admin(gw, "GET", f"/admin/credits/team:eng?{q}")
        assert status == 400, q


# --- refusals ---------------------------------------------------------------------------------


NEW_ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/admin/teams", {"id": "sneaky", "name": "x"}),
    ("GET", "/admin/teams", None),
    ("GET", "/admin/teams/eng", None),
    ("PATCH", "/admin/teams/eng", {"name": "taken over"}),
    ("POST", "/admin/credits", {"account": "team:eng", "amount_usd": 1000}),
    ("GET", "/admin/credits/team:eng", None),
    ("GET", "/admin/usage", None),
    ("GET", "/admin/usage?format=csv", None),
    ("GET", "/admin/audit", None),
]


async def test_a_virtual_key_is_refused_on_every_new_route(gw: RunningGateway) -> None:
    assert (await admin(gw, "POST", "/admin/teams", {"id": "eng", "name": "E"}))[0] == 201
    _, made = await admin(gw, "POST", "/admin/keys", {"name": "vk", "team": "eng"})
    for method, path, body in NEW_ROUTES:
        status, answer = await admin(gw, method, path, body, key=made["key"])
        assert status == 403 and answer["error"]["code"] == "admin_only", (method, path, answer)
    assert (await admin(gw, "GET", "/admin/teams/eng"))[1]["name"] == "E"
    assert (await admin(gw, "GET", "/admin/credits/team:eng"))[1]["balance_usd"] == 0.0
    assert [t["id"] for t in (await admin(gw, "GET", "/admin/teams"))[1]["data"]] == ["eng"]


async def test_without_a_master_key_there_is_no_state(start_gateway: GatewayFactory, tmp_path: Any) -> None:
    gw = await start_gateway(env={"UNIGATE_DATA_DIR": str(tmp_path)})
    for method, path, body in NEW_ROUTES:
        status, answer = await admin(gw, method, path, body)
        assert status == 503, (method, path, answer)


# --- usage ------------------------------------------------------------------------------------


def _rows() -> list[UsageRow]:
    mini, claude = "openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest"
    return [
        UsageRow(DAY0 + 5, "r0", key_id="key_c", served_model=EVIL_MODEL, provider="openai", input_tokens=1),
        UsageRow(DAY0 + 3600, "r1", key_id="key_a", team="eng", served_model=mini, provider="openai",
                 input_tokens=100, output_tokens=10, cost_usd=0.001, status=200),
        UsageRow(DAY0 + 7200, "r2", key_id="key_a", team="eng", served_model=claude, provider="anthropic",
                 input_tokens=50, output_tokens=5, cost_usd=0.002, status=200),
        UsageRow(DAY0 + DAY + 60, "r3", key_id="key_b", served_model=mini, provider="openai", input_tokens=200,
                 output_tokens=20, cached_tokens=30, reasoning_tokens=7, cost_usd=0.004, status=502,
                 error_code="upstream_unavailable"),
        UsageRow(DAY0 + 2 * DAY + 10, "r4", key_id="key_a", team="eng", served_model=mini, provider="openai",
                 input_tokens=1, cost_usd=1.0, status=200),
    ]


@pytest_asyncio.fixture
async def ledger(gw: RunningGateway, tmp_path: Any) -> AsyncIterator[RunningGateway]:
    """The gateway with the rows of _rows() in its ledger, written through a second handle on its
    SQLite file (as another worker process would)."""
    from unigate.config import state_path

    path = state_path(gw.gateway.cfg, {"UNIGATE_DATA_DIR": str(tmp_path)})
    assert path == str(tmp_path / "unigate.db")
    st = await open_state(path, None, None)
    try:
        assert await st.ledger.write(_rows()) == 5
    finally:
        await st.close()
    yield gw


def by_group(body: dict[str, Any]) -> dict[str | None, dict[str, Any]]:
    return {b["group"]: b for b in body["data"]}


async def test_usage_by_key_model_and_day(ledger: RunningGateway) -> None:
    gw = ledger
    # whole days (the daily rollup), ISO dates
    status, body = await admin(gw, "GET", "/admin/usage?group_by=key&since=2024-03-01&until=2024-03-03")
    assert status == 200, body
    assert body["object"] == "list" and body["group_by"] == "key"
    assert (body["since"], body["until"]) == (DAY0, DAY0 + 2 * DAY)
    g = by_group(body)
    assert set(g) == {"key_a", "key_b", "key_c"}  # r4 is on 2024-03-03, outside
    assert g["key_a"]["requests"] == 2 and g["key_a"]["input_tokens"] == 150 and g["key_a"]["output_tokens"] == 15
    assert math.isclose(g["key_a"]["cost_usd"], 0.003) and g["key_a"]["errors"] == 0
    assert g["key_b"] == {"group": "key_b", "requests": 1, "input_tokens": 200, "output_tokens": 20,
                          "cached_tokens": 30, "reasoning_tokens": 7, "cost_usd": 0.004, "errors": 1}
    assert body["data"][0]["group"] == "key_b"  # the most costly first

    # by model for one key, epoch seconds, with a partial day at the end
    status, body = await admin(gw, "GET", f"/admin/usage?group_by=model&key_id=key_a&since={DAY0:.0f}"
                                          f"&until={DAY0 + 2 * DAY + 3600:.0f}")
    assert status == 200, body
    g = by_group(body)
    assert set(g) == {"openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest"}
    assert g["openai/gpt-4o-mini"]["requests"] == 2 and math.isclose(g["openai/gpt-4o-mini"]["cost_usd"], 1.001)

    # by day from a datetime inside the first day: r0 (at 00:00:05) falls before it
    status, body = await admin(gw, "GET", "/admin/usage?group_by=day&since=2024-03-01T00:30:00Z&until=2024-03-03")
    assert status == 200, body
    assert [(b["group"], b["requests"]) for b in body["data"]] == [("2024-03-01", 2), ("2024-03-02", 1)]

    # filters combine; team and provider groupings
    status, body = await admin(gw, "GET", "/admin/usage?group_by=provider&team=eng&since=2024-03-01&until=2024-03-04")
    assert {b["group"]: b["requests"] for b in body["data"]} == {"openai": 2, "anthropic": 1}
    status, body = await admin(gw, "GET", "/admin/usage?group_by=team&model=openai/gpt-4o-mini"
                                          "&since=2024-03-01&until=2024-03-04")
    assert {b["group"]: b["requests"] for b in body["data"]} == {"eng": 2, None: 1}

    # the default range is the last 30 days up to now: none of these 2024 rows
    status, body = await admin(gw, "GET", "/admin/usage")
    assert status == 200 and body["data"] == [] and body["group_by"] == "model"
    assert math.isclose(body["until"] - body["since"], 30 * DAY)
    status, body = await admin(gw, "GET", "/admin/usage?until=2024-03-03&group_by=key")
    assert body["since"] == DAY0 + 2 * DAY - 30 * DAY and set(by_group(body)) == {"key_a", "key_b", "key_c"}


async def test_usage_csv(ledger: RunningGateway) -> None:
    status, headers, data = await call(ledger, "GET", "/admin/usage?group_by=model&format=csv"
                                                      "&since=2024-03-01&until=2024-03-04")
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(data.decode())))
    assert rows[0] == list(adm.USAGE_COLUMNS)
    table = {r[0]: r for r in rows[1:]}
    assert set(table) == {"openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest", "'" + EVIL_MODEL}
    mini = table["openai/gpt-4o-mini"]
    assert mini[1:6] == ["3", "301", "30", "30", "7"] and math.isclose(float(mini[6]), 1.005) and mini[7] == "1"
    # the same figures as the JSON answer
    _, body = await admin(ledger, "GET", "/admin/usage?group_by=model&since=2024-03-01&until=2024-03-04")
    assert [b["requests"] for b in body["data"]] == [int(r[1]) for r in rows[1:]]


async def test_usage_refuses_bad_queries(ledger: RunningGateway) -> None:
    cases = [
        ("since=yesterday", "since"), ("until=2024-13-01", "until"), ("since=", "since"), ("until=nan", "until"),
        ("until=inf", "until"), ("since=-5", "since"), ("until=1e300", "until"),
        ("since=2024-03-02&until=2024-03-01", "since"), ("since=2024-03-01&until=2024-03-01", "since"),
        ("since=2023-01-01&until=2024-03-01", "since"),  # over 400 days
        ("group_by=week", "group_by"), ("format=xml", "format"), ("key_id=", "key_id"), ("groupby=key", "groupby"),
    ]
    for query, param in cases:
        status, body = await admin(ledger, "GET", f"/admin/usage?{query}")
        assert status == 400 and body["error"]["param"] == param, (query, body)
    # 400 days exactly is allowed
    assert (await admin(ledger, "GET", "/admin/usage?since=2023-02-01&until=2024-03-07"))[0] == 200


# --- audit ------------------------------------------------------------------------------------


async def test_audit(gw: RunningGateway) -> None:
    await admin(gw, "POST", "/admin/teams", {"id": "eng", "name": "E"})
    _, key = await admin(gw, "POST", "/admin/keys", {"name": "k"})
    await admin(gw, "POST", f"/admin/keys/{key['id']}/revoke")
    status, body = await admin(gw, "GET", "/admin/audit")
    assert status == 200 and body["object"] == "list"
    assert [(r["action"], r["target"]) for r in body["data"]] == [
        ("key.revoke", key["id"]), ("key.create", key["id"]), ("team.create", "eng")]
    assert all(set(r) == {"time", "actor", "action", "target", "details"} for r in body["data"])
    assert body["data"][2]["details"] == {"name": "E"} and body["data"][2]["actor"] == "master"
    status, body = await admin(gw, "GET", "/admin/audit?limit=1")
    assert [r["action"] for r in body["data"]] == ["key.revoke"]
    status, body = await admin(gw, "GET", "/admin/audit?target=eng")
    assert [r["action"] for r in body["data"]] == ["team.create"]
    for q in ("limit=0", "limit=1001", "limit=ten", "target=", "who=me"):
        status, body = await admin(gw, "GET", f"/admin/audit?{q}")
        assert status == 400 and body["error"]["param"] in ("limit", "target", "who"), q


# --- the CLI ----------------------------------------------------------------------------------


async def test_cli(ledger: RunningGateway, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from unigate.cli import main

    gw = ledger
    monkeypatch.setenv("UNIGATE_MASTER_KEY", MASTER)

    async def run(*argv: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(main, [*argv[:2], "--url", gw.url, *argv[2:]] if argv[0] in (
            "teams", "credits") else [argv[0], "--url", gw.url, *argv[1:]])
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, _ = await run("teams", "create", "--id", "eng", "--name", "Engineering", "--models", "openai/*")
    assert code == 0 and orjson.loads(out)["models"] == ["openai/*"]
    code, out, _ = await run("teams", "list")
    assert code == 0 and out.splitlines()[0].split() == ["ID", "NAME", "MODELS", "CREATED"]
    assert "eng" in out and "Engineering" in out
    code, out, _ = await run("teams", "update", "eng", "--name", "Eng")
    assert code == 0 and orjson.loads(out)["name"] == "Eng"
    code, out, _ = await run("teams", "show", "eng")
    assert code == 0 and orjson.loads(out)["name"] == "Eng"
    code, _, err = await run("teams", "show", "nope")
    assert code == 1 and "404" in err and "team_not_found" in err

    code, out, _ = await run("credits", "add", "team:eng", "12.5", "--note", "from the CLI")
    assert code == 0
    made = orjson.loads(out)
    assert made["balance_usd"] == 12.5 and made["entry"]["note"] == "from the CLI"
    code, out, _ = await run("credits", "add", "team:eng", "-2.5")
    assert code == 0 and orjson.loads(out)["balance_usd"] == 10.0
    code, out, _ = await run("credits", "show", "team:eng")
    assert code == 0 and "balance 10.000000 USD" in out and "from the CLI" in out and "adjustment" in out
    code, _, err = await run("credits", "add", "team:nope", "1")
    assert code == 1 and "404" in err

    code, out, _ = await run("usage", "--since", "2024-03-01", "--until", "2024-03-04", "--group-by", "key", "--csv")
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == list(adm.USAGE_COLUMNS)
    assert {r[0]: int(r[1]) for r in rows[1:]} == {"key_a": 3, "key_b": 1, "key_c": 1}
    code, out, _ = await run("usage", "--since", "2024-03-01", "--until", "2024-03-03", "--group-by", "day")
    assert code == 0 and "2024-03-01" in out.splitlines()[2] and out.splitlines()[1].split()[0] == "DAY"
    code, _, err = await run("usage", "--since", "soon")
    assert code == 1 and "400" in err

    code, out, _ = await run("audit", "--target", "team:eng")
    assert code == 0 and out.count("credits.add") == 2
    code, out, _ = await run("audit", "--limit", "1")
    assert code == 0 and len(out.splitlines()) == 2


# --- the parsing helpers ----------------------------------------------------------------------


def test_parse_time() -> None:
    assert adm.parse_time("1709251200", "since") == DAY0
    assert adm.parse_time(" 1709251200.5 ", "since") == DAY0 + 0.5
    assert adm.parse_time("2024-03-01", "since") == DAY0
    assert adm.parse_time("2024-03-01T01:00:00", "since") == DAY0 + 3600  # naive: UTC
    assert adm.parse_time("2024-03-01T01:00:00Z", "since") == DAY0 + 3600
    assert adm.parse_time("2024-03-01T02:00:00+01:00", "since") == DAY0 + 3600
    for bad in ("", "soon", "2024-02-30", "nan", "inf", "-1", "1e20", "2024-03-01T25:00"):
        with pytest.raises(InvalidRequest) as e:
            adm.parse_time(bad, "until")
        assert e.value.param == "until", bad


def test_usage_range() -> None:
    now = DAY0 + 100 * DAY
    assert adm.usage_range(None, None, now) == (now - 30 * DAY, now)
    assert adm.usage_range("2024-03-01", None, now) == (DAY0, now)
    assert adm.usage_range(None, "2024-03-01", now) == (DAY0 - 30 * DAY, DAY0)
    assert adm.usage_range(str(DAY0), str(DAY0 + 400 * DAY), now) == (DAY0, DAY0 + 400 * DAY)
    for since, until in ((str(DAY0), str(DAY0)), (str(DAY0 + 1), str(DAY0)), (str(DAY0), str(DAY0 + 400 * DAY + 1))):
        with pytest.raises(InvalidRequest) as e:
            adm.usage_range(since, until, now)
        assert e.value.param == "since"
    with pytest.raises(InvalidRequest) as e:
        adm.usage_range("2024-03-01", "later", now)
    assert e.value.param == "until"


def test_csv_text_guards_formulas() -> None:
    for cell in ("=1+2", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"):
        assert adm.csv_text(cell) == "'" + cell
    for cell in ("openai/gpt-4o", "", "a=b", "key_-1"):
        assert adm.csv_text(cell) == cell


def test_credit_amount() -> None:
    assert adm.credit_amount(5) == 5.0 and adm.credit_amount(-0.5) == -0.5 and adm.credit_amount(1e6) == 1e6
    for bad in (0, 0.0, 1e-12, float("inf"), float("nan"), 1e6 + 1, -1e6 - 1, True, "5", None, [1]):
        with pytest.raises(InvalidRequest) as e:
            adm.credit_amount(bad)
        assert e.value.param == "amount_usd", bad


def test_query_limit() -> None:
    assert adm.query_limit({}, default=100) == 100
    assert adm.query_limit({"limit": "1000"}, default=100) == 1000
    for bad in ("0", "1001", "-1", "x", "1.5", "²", ""):
        with pytest.raises(InvalidRequest):
            adm.query_limit({"limit": bad}, default=100)


async def test_a_top_up_and_its_audit_row_commit_together(tmp_path: Any) -> None:
    """With the audit INSERT made to fail, the credit entry and the balance are rolled back too."""
    from unigate.state.db import Sql

    st = await open_state(str(tmp_path / "t.db"), None, None)
    try:
        assert await st.spend.add_credits("team:t", 3.0, actor="master", note="n", now=DAY0) == 3.0
        [row] = await st.keys.list_audit(target="team:t")
        assert (row.time, row.actor, row.action, row.details) == (DAY0, "master", "credits.add",
                                                                  {"amount_usd": 3.0, "note": "n"})
        await st.db.atomic(["admin"], [], lambda _rows: (None, [Sql("DROP TABLE audit")]))
        with pytest.raises(Exception):  # noqa: B017 - the engine's own error for the missing table
            await st.spend.add_credits("team:t", 1.0, actor="master", now=DAY0 + 1)
        assert await st.spend.balance("team:t") == 3.0
        assert len(await st.spend.credit_entries("team:t")) == 1
    finally:
        await st.close()


def test_param_of_store_messages() -> None:
    assert adm._param_of("models must be a list of model ids, aliases or patterns") == "models"
    assert adm._param_of("unknown field(s): colour, size") == "colour"
    assert adm._param_of("team 'eng' already exists") == "id"
    assert adm._param_of("team 'x' does not exist") is None
    assert adm._param_of("key 'k' is revoked") is None
