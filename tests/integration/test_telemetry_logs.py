"""The request log line: one JSON object per request with the request id, key id, team, model,
served deployment, attempts, status, latency, time to first token, tokens and cost; bodies only
when `logging.bodies` is on, cut and with secrets redacted."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
import orjson
import pytest

from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.openai import FakeOpenAI
from unigate.config import ConfigError, parse_config
from unigate.telemetry.access import body_text

MASTER = "sk-master-test"
UPSTREAM_KEY = "sk-upstream-test"
#: looks like an OpenAI key: the credential patterns take it out of a logged body
PASTED_KEY = "sk-proj-pastedByAUser1234567890"


def lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [orjson.loads(r.getMessage()) for r in caplog.records if r.name == "unigate.access"]


async def wait_lines(caplog: pytest.LogCaptureFixture, n: int) -> list[dict[str, Any]]:
    # aiohttp writes the line once the response is finished: a moment after the client has it
    deadline = time.monotonic() + 5
    while len(lines(caplog)) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    got = lines(caplog)
    assert len(got) == n, got
    return got


async def start(start_gateway: GatewayFactory, fake: FakeOpenAI, **config: Any) -> RunningGateway:
    cfg = {"deployments": [{"name": "g", "model": "openai/error-500"},
                           {"name": "g", "model": "openai/gpt-4o-mini", "priority": 1}], **config}
    return await start_gateway(cfg, env={"OPENAI_API_KEY": UPSTREAM_KEY, "OPENAI_BASE_URL": fake.url + "/v1",
                                         "UNIGATE_MASTER_KEY": MASTER}, access_log=True)


async def post(gw: RunningGateway, key: str, body: dict[str, Any]) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.post(gw.url + "/v1/chat/completions", json=body,
                                                    headers={"Authorization": f"Bearer {key}"}) as r:
        await r.read()
        return r.status, r.headers.get("x-request-id", "")


async def team_key(gw: RunningGateway, **fields: Any) -> tuple[str, str]:
    h = {"Authorization": f"Bearer {MASTER}"}
    async with aiohttp.ClientSession(headers=h) as s:
        async with s.get(gw.url + "/admin/teams/ops") as r:
            known = r.status == 200
        if not known:
            async with s.post(gw.url + "/admin/teams", json={"id": "ops", "name": "Ops"}) as r:
                assert r.status == 201, await r.text()
        async with s.post(gw.url + "/admin/keys", json={"name": "app", "team": "ops", **fields}) as r:
            made = await r.json()
            assert r.status == 201, made
            return made["id"], made["key"]


def msgs(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def test_one_line_per_request_with_who_what_served_and_what_it_cost(
        start_gateway: GatewayFactory, openai_fake: FakeOpenAI, caplog: pytest.LogCaptureFixture) -> None:
    gw = await start(start_gateway, openai_fake)
    vid, vkey = await team_key(gw)
    rated_id, rated = await team_key(gw, rpm=1)
    caplog.set_level(logging.INFO, logger="unigate.access")
    s1, rid1 = await post(gw, vkey, {"model": "g", "messages": msgs("hi")})  # falls back: 2 attempts
    s2, rid2 = await post(gw, vkey, {"model": "openai/gpt-4o-mini", "messages": msgs("hi"), "stream": True,
                                     "stream_options": {"include_usage": True}})
    s3, rid3 = await post(gw, MASTER, {"model": "openai/error-500", "messages": msgs("hi")})
    s4, _ = await post(gw, "sk-not-a-key-at-all", {"model": "g", "messages": msgs("hi")})
    s5, _ = await post(gw, rated, {"model": "g", "messages": msgs("hi")})
    s6, rid6 = await post(gw, rated, {"model": "g", "messages": msgs("hi")})
    assert (s1, s2, s3, s4, s5, s6) == (200, 200, 502, 401, 200, 429)
    fell_back, stream, failed, refused, _, limited = await wait_lines(caplog, 6)

    assert fell_back["request_id"] == rid1 and fell_back["status"] == 200 and fell_back["path"] == "/v1/chat/completions"
    assert (fell_back["key_id"], fell_back["team"], fell_back["model"]) == (vid, "ops", "g")
    assert (fell_back["served"], fell_back["deployment"], fell_back["provider"]) == ("openai/gpt-4o-mini", "g#1", "openai")
    assert fell_back["attempts"] == 2 and fell_back["stream"] is False and fell_back["ttft_ms"] is None
    assert fell_back["input_tokens"] == 12 and fell_back["output_tokens"] > 0 and fell_back["cost_usd"] > 0
    assert fell_back["latency_ms"] >= fell_back["upstream_ms"] > 0 and fell_back["error_code"] is None

    assert stream["request_id"] == rid2 and stream["stream"] is True and stream["ttft_ms"] > 0
    assert stream["attempts"] == 1 and stream["output_tokens"] > 0 and stream["key_id"] == vid

    assert failed["request_id"] == rid3 and failed["status"] == 502 and failed["error_code"] == "fake_500"
    assert failed["key_id"] == "master" and failed["team"] is None and failed["input_tokens"] is None

    # refused before any upstream: the same keys, without an attempt's
    assert refused["status"] == 401 and refused["attempts"] is None and refused["key_id"] is None
    assert set(refused) == set(fell_back)
    # refused by its key's limits: which key and team, still no attempt
    assert limited["request_id"] == rid6 and limited["status"] == 429
    assert (limited["key_id"], limited["team"], limited["attempts"]) == (rated_id, "ops", None)

    # bodies are off by default; no secret ever
    assert all("request_body" not in ln and "response_body" not in ln for ln in (fell_back, stream, failed, refused, limited))
    text = " ".join(r.getMessage() for r in caplog.records)
    for secret in (MASTER, UPSTREAM_KEY, vkey, rated, "sk-not-a-key-at-all"):
        assert secret not in text


async def test_bodies_when_asked_cut_and_redacted(start_gateway: GatewayFactory, openai_fake: FakeOpenAI,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    gw = await start(start_gateway, openai_fake, logging={"bodies": True, "max_body_chars": 300})
    caplog.set_level(logging.INFO, logger="unigate.access")
    said = f"my key is {PASTED_KEY} and the gateway's is {MASTER}; here: {UPSTREAM_KEY}"
    assert (await post(gw, MASTER, {"model": "openai/gpt-4o-mini", "messages": msgs(said)}))[0] == 200
    assert (await post(gw, MASTER, {"model": "openai/gpt-4o-mini", "messages": msgs("x" * 5000)}))[0] == 200
    assert (await post(gw, MASTER, {"model": "openai/gpt-4o-mini", "messages": msgs("hi"), "stream": True}))[0] == 200
    secret, long, stream = await wait_lines(caplog, 3)

    req = secret["request_body"]
    assert '"my key is [redacted]' in req and PASTED_KEY not in req and MASTER not in req and UPSTREAM_KEY not in req
    assert '"model":"openai/gpt-4o-mini"' in req
    assert 'Hello from gpt-4o-mini' in secret["response_body"]  # the JSON answer, as the upstream sent it
    # cut to max_body_chars (and marked as cut)
    assert len(long["request_body"]) == 301 and long["request_body"].endswith("…")
    # a stream's events are not kept: its request is logged, its answer is not
    assert stream["request_body"] is not None and stream["response_body"] is None


def test_body_text_and_the_logging_and_metrics_config() -> None:
    assert body_text(None, 100) is None
    assert body_text(b'{"a":"Bearer abcdefghijkl"}', 100) == '{"a":"[redacted]"}'
    assert body_text({"x": "y" * 500}, 64) == '{"x":"' + "y" * 58 + "…"
    cfg = parse_config({}, where="t", env={})
    assert cfg.logging.bodies is False and cfg.metrics.max_key_labels == 200
    with pytest.raises(ConfigError, match="max_body_chars"):
        parse_config({"logging": {"max_body_chars": 1}}, where="t", env={})
    with pytest.raises(ConfigError, match="max_key_labels"):
        parse_config({"metrics": {"max_key_labels": -1}}, where="t", env={})
    with pytest.raises(ConfigError, match=r"\$\.metrics\.port: the gateway's own port"):
        parse_config({"server": {"port": 4000}, "metrics": {"port": 4000}}, where="t", env={})
    with pytest.raises(ConfigError, match="port"):
        parse_config({"metrics": {"port": 70000}}, where="t", env={})
    assert parse_config({"metrics": {"port": 9464}}, where="t", env={}).metrics.port == 9464
    with pytest.raises(ConfigError, match="bodys"):
        parse_config({"logging": {"bodys": True}}, where="t", env={})
