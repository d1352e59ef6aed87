"""Bare vendor model names (`claude-sonnet-4-5-20250929[1m]`, `gpt-4.1-mini`, `gemini-2.0-flash`),
as Claude Code, the SDK samples and agents send them, resolve to the configured provider that
serves them, on both surfaces, against real mock upstreams."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import openai
import pytest
import pytest_asyncio

from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.bedrock import FakeBedrock
from tests.fakes.gemini import API_KEY as GEMINI_KEY
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI
from unigate.config import ConfigError, parse_config

MASTER = "sk-master-test"
MSGS: Any = [{"role": "user", "content": "Say hello"}]
#: what Claude Code sends: its main model (with the 1M-context selector) and its small/fast one
CLAUDE_CODE_MAIN = "claude-sonnet-4-5-20250929[1m]"
CLAUDE_CODE_OPUS = "claude-opus-4-6"
CLAUDE_CODE_SMALL = "claude-haiku-4-5-20251001"
CLAUDE_CODE_HEADERS = {"anthropic-beta": "context-1m-2025-08-07,interleaved-thinking-2025-05-14",
                       "user-agent": "claude-cli/2.1.14 (external, cli)"}


@pytest_asyncio.fixture
async def fakes() -> AsyncIterator[dict[str, Any]]:
    made = {"openai": FakeOpenAI(), "anthropic": FakeAnthropic(), "gemini": FakeGemini(), "bedrock": FakeBedrock()}
    for f in made.values():
        await f.start()
    yield made
    for f in made.values():
        await f.stop()


def env_for(fakes: dict[str, Any], *only: str) -> dict[str, str]:
    env = {
        "openai": {"OPENAI_API_KEY": "sk-upstream-test", "OPENAI_BASE_URL": fakes["openai"].url + "/v1"},
        "anthropic": {"ANTHROPIC_API_KEY": fakes["anthropic"].api_key, "ANTHROPIC_BASE_URL": fakes["anthropic"].url},
        "gemini": {"GEMINI_API_KEY": GEMINI_KEY, "GEMINI_BASE_URL": fakes["gemini"].url},
        "bedrock": {"AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_REGION": "us-west-2",
                    "BEDROCK_BASE_URL": fakes["bedrock"].url},
    }
    out = {"UNIGATE_MASTER_KEY": MASTER}
    for name in only or env:
        out.update(env[name])
    return out


@pytest_asyncio.fixture
async def gw(start_gateway: GatewayFactory, fakes: dict[str, Any]) -> RunningGateway:
    return await start_gateway(env=env_for(fakes))


def oai(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0)


def ant(gw: RunningGateway) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gw.url, api_key=MASTER, max_retries=0,
                                    default_headers=CLAUDE_CODE_HEADERS)


@pytest.mark.parametrize(("asked", "upstream"), [
    (CLAUDE_CODE_MAIN, "claude-sonnet-4-5-20250929"),
    (CLAUDE_CODE_OPUS, CLAUDE_CODE_OPUS),
    (CLAUDE_CODE_SMALL, CLAUDE_CODE_SMALL),
    ("claude-3-5-haiku-latest", "claude-3-5-haiku-latest"),  # `-latest` is the vendor's own alias
])
async def test_claude_code_names_on_the_anthropic_surface(gw: RunningGateway, fakes: dict[str, Any],
                                                          asked: str, upstream: str) -> None:
    raw = await ant(gw).messages.with_raw_response.create(model=asked, max_tokens=50, messages=MSGS)
    m = await raw.parse()
    assert m.content[0].text == f"Hello from {upstream}!"  # type: ignore[union-attr]
    assert fakes["anthropic"].last.json["model"] == upstream  # the [1m] selector never reaches the API
    assert raw.headers["x-unigate-model"] == f"anthropic/{upstream}"
    assert m.model == upstream
    assert not fakes["bedrock"].requests and not fakes["openai"].requests


async def test_claude_code_stream_with_a_bare_name(gw: RunningGateway, fakes: dict[str, Any]) -> None:
    async with ant(gw).messages.stream(model=CLAUDE_CODE_MAIN, max_tokens=50, messages=MSGS) as s:
        text = "".join([t async for t in s.text_stream])
    assert text == "Hello from claude-sonnet-4-5-20250929!"
    assert fakes["anthropic"].last.json["model"] == "claude-sonnet-4-5-20250929"


@pytest.mark.parametrize(("asked", "provider", "upstream"), [
    (CLAUDE_CODE_SMALL, "anthropic", CLAUDE_CODE_SMALL),
    ("gpt-4.1-mini", "openai", "gpt-4.1-mini"),
    ("o4-mini", "openai", "o4-mini"),
    ("gemini-2.0-flash", "gemini", "gemini-2.0-flash"),
])
async def test_bare_names_on_the_openai_surface(gw: RunningGateway, fakes: dict[str, Any],
                                                asked: str, provider: str, upstream: str) -> None:
    raw = await oai(gw).chat.completions.with_raw_response.create(model=asked, messages=MSGS, max_tokens=20)
    r = raw.parse()
    assert r.choices[0].message.content == f"Hello from {upstream}!"
    assert raw.headers["x-unigate-model"] == f"{provider}/{upstream}"
    assert fakes[provider].requests and all(not f.requests for p, f in fakes.items() if p != provider)
    if provider == "gemini":
        assert fakes["gemini"].last.path == f"/v1beta/models/{upstream}:generateContent"


@pytest.mark.parametrize(("asked", "provider"), [("gpt-4.1-mini", "openai"), ("gemini-2.0-flash", "gemini")])
async def test_other_vendors_bare_names_on_the_anthropic_surface(gw: RunningGateway, fakes: dict[str, Any],
                                                                 asked: str, provider: str) -> None:
    raw = await ant(gw).messages.with_raw_response.create(model=asked, max_tokens=50, messages=MSGS)
    m = await raw.parse()
    assert m.content[0].text == f"Hello from {asked}!"  # type: ignore[union-attr]
    assert raw.headers["x-unigate-model"] == f"{provider}/{asked}"
    assert fakes[provider].requests and not fakes["anthropic"].requests


async def test_bare_embedding_model(gw: RunningGateway, fakes: dict[str, Any]) -> None:
    raw = await oai(gw).embeddings.with_raw_response.create(model="text-embedding-3-small", input="hello")
    assert raw.parse().data and raw.headers["x-unigate-model"] == "openai/text-embedding-3-small"
    assert fakes["openai"].last.json["model"] == "text-embedding-3-small"


async def test_anthropic_before_bedrock_by_default(gw: RunningGateway, fakes: dict[str, Any]) -> None:
    deps = gw.gateway.router.resolve("claude-sonnet-4-5-20250929")
    # both serve it: the vendor's own API first, Bedrock (by the catalog's id) as the fallback
    assert [d.public_id for d in deps] == ["anthropic/claude-sonnet-4-5-20250929",
                                           "bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0"]


async def test_configured_order_sends_claude_to_bedrock_first(start_gateway: GatewayFactory,
                                                              fakes: dict[str, Any]) -> None:
    gw = await start_gateway({"routing": {"bare_names": {"claude-*": ["bedrock", "anthropic"]}}}, env=env_for(fakes))
    for asked in ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"):  # dated, and undated as Claude Code may
        raw = await oai(gw).chat.completions.with_raw_response.create(model=asked, messages=MSGS)
        assert raw.headers["x-unigate-model"] == "bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0"
        assert fakes["bedrock"].last.path == "/model/anthropic.claude-sonnet-4-5-20250929-v1:0/converse"
    assert [d.public_id for d in gw.gateway.router.resolve("claude-sonnet-4-5-20250929")] == [
        "bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic/claude-sonnet-4-5-20250929"]
    assert not fakes["anthropic"].requests
    # a Claude model Bedrock's catalog does not list can only go to Anthropic
    raw = await oai(gw).chat.completions.with_raw_response.create(model=CLAUDE_CODE_OPUS, messages=MSGS)
    assert raw.headers["x-unigate-model"] == f"anthropic/{CLAUDE_CODE_OPUS}"


async def test_bedrock_alone_serves_claude_code(start_gateway: GatewayFactory, fakes: dict[str, Any]) -> None:
    gw = await start_gateway(env=env_for(fakes, "bedrock"))
    raw = await ant(gw).messages.with_raw_response.create(model="claude-sonnet-4-5-20250929[1m]", max_tokens=20,
                                                          messages=MSGS)
    assert raw.headers["x-unigate-model"] == "bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0"
    assert (await raw.parse()).content


async def test_a_name_two_hosts_serve_is_ambiguous_until_ordered(start_gateway: GatewayFactory,
                                                                 fakes: dict[str, Any]) -> None:
    url = fakes["openai"].url + "/v1"
    hosts = {"CEREBRAS_API_KEY": "k1", "CEREBRAS_BASE_URL": url, "SAMBANOVA_API_KEY": "k2", "SAMBANOVA_BASE_URL": url}
    gw = await start_gateway(env={**env_for(fakes, "openai"), **hosts})
    with pytest.raises(openai.NotFoundError) as e:
        await oai(gw).chat.completions.create(model="gpt-oss-120b", messages=MSGS)
    err = e.value.body
    assert isinstance(err, dict) and err["code"] == "model_not_found" and err["param"] == "model"
    assert "cerebras/gpt-oss-120b" in err["message"] and "sambanova/gpt-oss-120b" in err["message"]
    assert "routing" in err["message"] and "bare_names" in err["message"]
    assert not fakes["openai"].requests  # nothing was sent anywhere

    gw = await start_gateway({"routing": {"bare_names": {"gpt-oss-*": ["sambanova", "cerebras"]}}},
                             env={**env_for(fakes, "openai"), **hosts})
    raw = await oai(gw).chat.completions.with_raw_response.create(model="gpt-oss-120b", messages=MSGS)
    assert raw.headers["x-unigate-model"] == "sambanova/gpt-oss-120b"
    assert fakes["openai"].last.headers["Authorization"] == "Bearer k2"
    assert [d.public_id for d in gw.gateway.router.resolve("gpt-oss-120b")] == [
        "sambanova/gpt-oss-120b", "cerebras/gpt-oss-120b"]


async def test_unknown_and_unserved_bare_names_are_404s_that_say_how_to_pin(start_gateway: GatewayFactory,
                                                                           fakes: dict[str, Any]) -> None:
    gw = await start_gateway(env=env_for(fakes, "openai"))
    with pytest.raises(anthropic.NotFoundError) as ae:
        await ant(gw).messages.create(model=CLAUDE_CODE_MAIN, max_tokens=10, messages=MSGS)
    body: Any = ae.value.body
    assert body["type"] == "error" and body["error"]["type"] == "not_found_error"
    msg = body["error"]["message"]
    assert "anthropic" in msg and "ANTHROPIC_API_KEY" in msg and "<provider>/<model>" in msg
    with pytest.raises(openai.NotFoundError) as oe:
        await oai(gw).chat.completions.create(model="no-such-model-anywhere", messages=MSGS)
    err: Any = oe.value.body
    assert err["code"] == "model_not_found" and "openai" in err["message"] and "bare_names" in err["message"]
    assert not fakes["openai"].requests


async def test_models_list_has_the_unambiguous_bare_names(gw: RunningGateway) -> None:
    ids = [m.id async for m in oai(gw).models.list()]
    for name in ("gpt-4.1-mini", "text-embedding-3-small", "gemini-2.0-flash", "claude-sonnet-4-5",
                 "openai/gpt-4.1-mini", "anthropic/claude-sonnet-4-5"):
        assert name in ids
    # every bare name listed resolves, first, to the model listed under its full id
    router = gw.gateway.router
    bare = [i for i in ids if "/" not in i]
    assert bare and all(router.resolve(b) for b in bare)
    # Bedrock's Claude ids are listed, but their bare names belong to Anthropic here
    assert "bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0" in ids
    assert router.resolve("claude-sonnet-4-5-20250929")[0].provider.id == "anthropic"


def test_bare_names_config_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"\$\.routing\.bare_names\.claude-\*: unknown provider 'antropic' "
                                          r"\(did you mean `anthropic`\?\)"):
        parse_config({"routing": {"bare_names": {"claude-*": ["antropic"]}}}, where="u.yaml", env={})
    with pytest.raises(ConfigError, match=r"needs at least one provider"):
        parse_config({"routing": {"bare_names": {"claude-*": []}}}, where="u.yaml", env={})
    with pytest.raises(ConfigError, match=r"unknown field"):
        parse_config({"routing": {"bare_name": {}}}, where="u.yaml", env={})
