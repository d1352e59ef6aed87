"""Every OpenAI-compatible preset, configured only through its environment variables, driven with
the official openai SDK through the gateway against a fake OpenAI-compatible upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlparse

import openai
import pytest
import pytest_asyncio
from aiohttp import web

from tests.conftest import GatewayFactory
from tests.fakes.openai import FakeOpenAI
from unigate.cli import main as cli_main
from unigate.providers.presets import PRESETS, Preset
from unigate.providers.registry import key_env_names

COMPAT = sorted(pid for pid, p in PRESETS.items() if p.dialect == "openai")
KEYLESS = [pid for pid in COMPAT if PRESETS[pid].keyless]
ALT_KEYS = [(pid, env) for pid in COMPAT for env in PRESETS[pid].key_envs]
MSGS = [{"role": "user", "content": "Say hello"}]
#: OpenAI params some preset drops, each with a valid value; every preset is sent all of them
DROPPABLE = {"logit_bias": {"50256": -100}, "logprobs": True, "top_logprobs": 2, "frequency_penalty": 0.1,
             "presence_penalty": 0.2, "n": 1, "user": "u-1"}


class AnyPrefixOpenAI(FakeOpenAI):
    """The OpenAI fake answering `<any prefix>/chat/completions`, as providers mount their OpenAI
    layer under /v1, /openai/v1, /v1/openai, /compatible-mode/v1, /api/paas/v4, or nothing."""

    def setup(self, app: web.Application) -> None:
        app.router.add_post("/chat/completions", self.chat)
        app.router.add_post("/{prefix:.+}/chat/completions", self.chat)


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[AnyPrefixOpenAI]:
    f = AnyPrefixOpenAI()
    await f.start()
    yield f
    await f.stop()


def prefix(p: Preset) -> str:
    return urlparse(p.base_url).path.rstrip("/")


def client(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)


def test_every_droppable_param_is_covered() -> None:
    assert {d for p in PRESETS.values() for d in p.drop} <= set(DROPPABLE)


@pytest.mark.parametrize("pid", COMPAT)
async def test_preset_from_env(pid: str, start_gateway: GatewayFactory, fake: AnyPrefixOpenAI) -> None:
    p = PRESETS[pid]
    gw = await start_gateway(env={f"{p.env_prefix}_API_KEY": f"key-{pid}", f"{p.env_prefix}_BASE_URL": fake.url + prefix(p)})
    raw = await client(gw.url).chat.completions.with_raw_response.create(
        model=f"{pid}/some-model", messages=MSGS, max_completion_tokens=50, **DROPPABLE)  # type: ignore[arg-type]
    r = raw.parse()
    assert r.choices[0].message.content == "Hello from some-model!"
    sent = fake.last
    assert sent.path == prefix(p) + "/chat/completions"
    assert sent.headers.get("Authorization") == f"Bearer key-{pid}"
    # the gateway's own identity, and identity bodies (relayed as bytes, never re-compressed)
    assert sent.headers.get("User-Agent", "").startswith("unigate/")
    assert sent.headers.get("Accept-Encoding") == "identity"
    body = sent.json
    assert body["model"] == "some-model" and body["messages"] == MSGS
    if ("max_completion_tokens", "max_tokens") in p.renames:
        assert body["max_tokens"] == 50 and "max_completion_tokens" not in body
    else:
        assert body["max_completion_tokens"] == 50 and "max_tokens" not in body
    for name, value in DROPPABLE.items():
        if name in p.drop:
            assert name not in body, f"{pid} should drop {name}"
        else:
            assert body[name] == value, f"{pid} should forward {name}"
    dropped = raw.headers.get("x-unigate-dropped-params")
    assert (set(dropped.split(",")) if dropped else set()) == set(p.drop)
    assert raw.headers["x-unigate-deployment"] == f"{pid}/some-model"

    stream = await client(gw.url).chat.completions.create(model=f"{pid}/some-model", messages=MSGS, stream=True)  # type: ignore[arg-type]
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Hello from some-model!"
    assert ("stream_options" in fake.last.json) == p.stream_usage


@pytest.mark.parametrize("pid", KEYLESS)
async def test_keyless_preset_without_key(pid: str, start_gateway: GatewayFactory, fake: AnyPrefixOpenAI) -> None:
    p = PRESETS[pid]
    gw = await start_gateway(env={f"{p.env_prefix}_BASE_URL": fake.url + prefix(p)})
    r = await client(gw.url).chat.completions.create(model=f"{pid}/some-model", messages=MSGS)  # type: ignore[arg-type]
    assert r.choices[0].message.content == "Hello from some-model!"
    assert fake.last.path == prefix(p) + "/chat/completions"
    assert "Authorization" not in fake.last.headers


@pytest.mark.parametrize("pid,env_name", ALT_KEYS)
async def test_alternative_key_env(pid: str, env_name: str, start_gateway: GatewayFactory, fake: AnyPrefixOpenAI) -> None:
    p = PRESETS[pid]
    assert env_name in key_env_names(p)
    gw = await start_gateway(env={env_name: f"alt-{pid}", f"{p.env_prefix}_BASE_URL": fake.url + prefix(p)})
    await client(gw.url).chat.completions.create(model=f"{pid}/m", messages=MSGS)  # type: ignore[arg-type]
    assert fake.last.headers.get("Authorization") == f"Bearer alt-{pid}"


async def test_ollama_host_env(start_gateway: GatewayFactory, fake: AnyPrefixOpenAI) -> None:
    # OLLAMA_HOST is what the ollama CLI reads: the server root, often without a scheme
    gw = await start_gateway(env={"OLLAMA_HOST": f"127.0.0.1:{fake.port}"})
    await client(gw.url).chat.completions.create(model="ollama/llama3.2", messages=MSGS)  # type: ignore[arg-type]
    assert fake.last.path == "/v1/chat/completions" and fake.last.json["model"] == "llama3.2"


async def test_configured_headers_override_the_gateways_defaults(start_gateway: GatewayFactory,
                                                                 fake: AnyPrefixOpenAI) -> None:
    gw = await start_gateway({"providers": {"team": {"preset": "openai", "api_key": "k", "base_url": fake.url + "/v1",
                                                     "headers": {"user-agent": "team-bot/2", "X-Team": "search"}}}})
    await client(gw.url).chat.completions.create(model="team/gpt-4o-mini", messages=MSGS)  # type: ignore[arg-type]
    sent = fake.last.headers
    assert sent.get("User-Agent") == "team-bot/2" and sent.get("X-Team") == "search"
    assert sent.get("Authorization") == "Bearer k"


async def test_mistral_tool_call_ids_are_rewritten_stably(start_gateway: GatewayFactory, fake: AnyPrefixOpenAI) -> None:
    gw = await start_gateway(env={"MISTRAL_API_KEY": "k", "MISTRAL_BASE_URL": fake.url + "/v1"})
    foreign = ["call_4XzlGBLtUe9dy3GVNV4jhq7h", "toolu_01NRLabsLyVHZPKxbKvkfSMn", "abcDEF123"]
    history = [
        {"role": "user", "content": "Weather and time?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": i, "type": "function", "function": {"name": "f", "arguments": "{}"}} for i in foreign]},
        *({"role": "tool", "tool_call_id": i, "content": "ok"} for i in foreign),
    ]
    sent_ids = []
    for _ in range(2):
        await client(gw.url).chat.completions.create(model="mistral/mistral-small-latest", messages=history)  # type: ignore[arg-type]
        msgs = fake.last.json["messages"]
        call_ids = [tc["id"] for tc in msgs[1]["tool_calls"]]
        result_ids = [m["tool_call_id"] for m in msgs[2:]]
        assert call_ids == result_ids, "a call and its result must get the same id"
        assert all(len(i) == 9 and i.isalnum() and i.isascii() for i in call_ids)
        assert len(set(call_ids)) == 3
        assert call_ids[2] == "abcDEF123", "an id Mistral already accepts is kept"
        sent_ids.append(call_ids)
    assert sent_ids[0] == sent_ids[1], "the rewrite must be stable across requests"
    assert history[1]["tool_calls"][0]["id"] == foreign[0]  # type: ignore[index]


def test_cli_providers_lists_every_preset(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("UNIGATE_CONFIG", raising=False)
    assert cli_main(["providers"]) == 0
    lines = capsys.readouterr().out.splitlines()
    listed = {line.split()[0] for line in lines[1:] if line.strip()}
    assert set(PRESETS) <= listed
    assert lines[0].split()[:2] == ["PROVIDER", "DIALECT"]


class CookieSettingOpenAI(AnyPrefixOpenAI):
    """Sets a cookie on every answer, as OpenAI's edge (Cloudflare `__cf_bm`) does."""

    def setup(self, app: web.Application) -> None:
        super().setup(app)

        async def add_cookie(request: web.Request, response: web.StreamResponse) -> None:
            response.headers["Set-Cookie"] = "__cf_bm=tenant-a-session; Path=/; HttpOnly"

        app.on_response_prepare.append(add_cookie)


async def test_upstream_cookies_are_never_sent_back(start_gateway: GatewayFactory) -> None:
    """One pooled session serves every client: a cookie an upstream set while answering one
    client's call must not ride along on the next call (another tenant's) to that upstream."""
    fake = CookieSettingOpenAI()
    await fake.start()
    try:
        # by name: aiohttp's default jar ignores cookies from IP-address hosts (not from real providers)
        base = fake.url.replace("127.0.0.1", "localhost") + "/v1"
        gw = await start_gateway(env={"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": base})
        for _ in range(2):
            await client(gw.url).chat.completions.create(model="openai/gpt-4o-mini", messages=MSGS)  # type: ignore[arg-type]
        assert len(fake.requests) == 2
        assert all("Cookie" not in r.headers for r in fake.requests)
    finally:
        await fake.stop()
