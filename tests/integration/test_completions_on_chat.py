"""Legacy `/v1/completions` on models that only chat, with the official openai SDK's
`client.completions.create` (stream and not): the prompt goes upstream as one chat message and
the chat answer comes back as a `text_completion`. Against the OpenAI fake (a chat-only OpenAI
model, next to a completions model that keeps its native endpoint), the Anthropic fake, and
the embedded model; and the 400s for what a chat call cannot hold."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import orjson
import pytest
import pytest_asyncio

from tests.conftest import GatewayFactory, RunningGateway, require_local_model
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.openai import FakeOpenAI
from unigate.surfaces.completions import chat_body, has_native_completions

MASTER = "sk-master-test"
CHAT_ONLY = "openai/gpt-4o-mini"
INSTRUCT = "openai/gpt-3.5-turbo-instruct"
CLAUDE = "anthropic/claude-haiku-4-5"


@pytest_asyncio.fixture
async def ant_fake() -> AsyncIterator[FakeAnthropic]:
    fake = FakeAnthropic()
    await fake.start()
    yield fake
    await fake.stop()


@pytest_asyncio.fixture
async def gw(start_gateway: GatewayFactory, openai_fake: FakeOpenAI, ant_fake: FakeAnthropic) -> RunningGateway:
    return await start_gateway(env={"OPENAI_API_KEY": "sk-upstream-test", "OPENAI_BASE_URL": openai_fake.url + "/v1",
                                    "ANTHROPIC_API_KEY": ant_fake.api_key, "ANTHROPIC_BASE_URL": ant_fake.url,
                                    "UNIGATE_MASTER_KEY": MASTER})


def client(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=MASTER, max_retries=0)


async def post(gw: RunningGateway, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as s, s.post(gw.url + "/v1/completions", json=body,
                                                    headers={"Authorization": f"Bearer {MASTER}"}) as r:
        return r.status, dict(r.headers), await r.read()


# ------------------------------------------------------------------ a chat-only OpenAI model


async def test_chat_only_openai_model_json(gw: RunningGateway, openai_fake: FakeOpenAI) -> None:
    r = await client(gw).completions.create(
        model=CHAT_ONLY, prompt="Say hello", max_tokens=20, temperature=0.2, top_p=0.9, stop=["\n\n"], seed=3,
        user="u-1", presence_penalty=0.1, frequency_penalty=0.2)
    assert r.object == "text_completion"
    assert r.choices[0].text == "Hello from gpt-4o-mini!" and r.choices[0].finish_reason == "stop"
    assert r.choices[0].index == 0 and r.choices[0].logprobs is None
    assert r.id == "cmpl-fake1" and r.model == "gpt-4o-mini"
    assert r.usage is not None and (r.usage.prompt_tokens, r.usage.completion_tokens) == (12, 5)
    sent = openai_fake.last
    assert sent.path == "/v1/chat/completions"  # OpenAI's /v1/completions would 404 a chat model
    assert sent.json == {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}],
                         "max_tokens": 20, "temperature": 0.2, "top_p": 0.9, "stop": ["\n\n"], "seed": 3,
                         "user": "u-1", "presence_penalty": 0.1, "frequency_penalty": 0.2}
    await gw.gateway.ledger.flush()
    rec = gw.gateway.ledger.recent[-1]
    assert rec.endpoint == "completions" and rec.usage_known and rec.completion_tokens == 5


async def test_chat_only_openai_model_stream(gw: RunningGateway, openai_fake: FakeOpenAI) -> None:
    stream = await client(gw).completions.create(model=CHAT_ONLY, prompt=["Say hello"], stream=True)
    chunks = [c async for c in stream]
    assert all(c.object == "text_completion" and c.choices for c in chunks)  # no usage chunk unasked
    assert "".join(c.choices[0].text for c in chunks) == "Hello from gpt-4o-mini!"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert {c.id for c in chunks} == {"cmpl-fake1"}
    assert openai_fake.last.path == "/v1/chat/completions"
    assert openai_fake.last.json["messages"] == [{"role": "user", "content": "Say hello"}]


async def test_stream_with_usage_ends_with_the_usage_chunk_and_done(gw: RunningGateway) -> None:
    status, headers, raw = await post(gw, {"model": CHAT_ONLY, "prompt": "hi", "stream": True,
                                           "stream_options": {"include_usage": True}})
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    events = [e for e in raw.decode().split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    objs = [orjson.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert objs[-1]["choices"] == [] and objs[-1]["usage"]["total_tokens"] == 17
    assert objs[-1]["object"] == "text_completion" and objs[-1]["id"] == objs[0]["id"]
    # the role-only first chat chunk is left out: every other chunk carries text or the finish
    assert all(o["choices"][0]["text"] or o["choices"][0]["finish_reason"] for o in objs[:-1])


async def test_a_completions_model_keeps_its_native_endpoint(gw: RunningGateway, openai_fake: FakeOpenAI) -> None:
    r = await client(gw).completions.create(model=INSTRUCT, prompt="Hello", echo=True, suffix="!")
    assert r.choices[0].text == " world"
    sent = openai_fake.last
    assert sent.path == "/v1/completions"
    assert sent.json == {"model": "gpt-3.5-turbo-instruct", "prompt": "Hello", "echo": True, "suffix": "!"}


async def test_a_group_mixing_both_kinds(start_gateway: GatewayFactory, openai_fake: FakeOpenAI) -> None:
    """Per deployment: a refused field on the chat-only one falls back to the one with completions."""
    gw = await start_gateway({"deployments": [{"name": "mix", "model": CHAT_ONLY}, {"name": "mix", "model": INSTRUCT}],
                              "routing": {"groups": {"mix": {"strategy": "round-robin"}}}},
                             env={"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": openai_fake.url + "/v1",
                                  "UNIGATE_MASTER_KEY": MASTER})
    paths = set()
    for _ in range(4):
        status, _, raw = await post(gw, {"model": "mix", "prompt": "hi", "echo": True})
        assert status == 200, raw
        assert orjson.loads(raw)["choices"][0]["text"] == " world"
        paths.add(openai_fake.last.path)
    assert paths == {"/v1/completions"}
    for _ in range(4):
        status, _, raw = await post(gw, {"model": "mix", "prompt": "hi"})
        assert status == 200 and orjson.loads(raw)["object"] == "text_completion"
        paths.add(openai_fake.last.path)
    assert paths == {"/v1/completions", "/v1/chat/completions"}


# ------------------------------------------------------------------ a native dialect: Anthropic


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_model(gw: RunningGateway, ant_fake: FakeAnthropic, stream: bool) -> None:
    c = client(gw)
    if stream:
        s = await c.completions.create(model=CLAUDE, prompt="Say hello", max_tokens=30, stream=True,
                                       stream_options={"include_usage": True})
        chunks = [x async for x in s]
        text = "".join(x.choices[0].text for x in chunks if x.choices)
        finish = [x.choices[0].finish_reason for x in chunks if x.choices][-1]
        usage = chunks[-1].usage
        assert not chunks[-1].choices
    else:
        r = await c.completions.create(model=CLAUDE, prompt="Say hello", max_tokens=30, stop=["END"])
        text, finish, usage = r.choices[0].text, r.choices[0].finish_reason, r.usage
    assert text == "Hello from claude-haiku-4-5!" and finish == "stop"
    assert usage is not None and usage.prompt_tokens == 12 and usage.completion_tokens == 5
    sent = ant_fake.last.json
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}]
    assert sent["max_tokens"] == 30
    assert ant_fake.violations == []


async def test_a_refused_field_is_a_clear_400(gw: RunningGateway, ant_fake: FakeAnthropic) -> None:
    c = client(gw)
    calls = len(ant_fake.requests)
    for kwargs, param in (({"echo": True}, "echo"), ({"suffix": " end"}, "suffix"), ({"logprobs": 2}, "logprobs"),
                          ({"best_of": 3}, "best_of"), ({"prompt": ["a", "b"]}, "prompt"),
                          ({"prompt": [1, 2, 3]}, "prompt"), ({"prompt": [[1, 2]]}, "prompt"), ({"prompt": []}, "prompt")):
        args: dict[str, Any] = {"model": CLAUDE, "prompt": "hi", **kwargs}
        with pytest.raises(openai.BadRequestError) as ei:
            await c.completions.create(**args)
        err = ei.value.body
        assert isinstance(err, dict) and err["param"] == param, (kwargs, err)
        assert err["code"] == "unsupported_feature" and param in err["message"]
    assert len(ant_fake.requests) == calls  # refused before anything went upstream
    # defaults are no request for anything: echo false, best_of 1, an empty suffix
    r = await c.completions.create(model=CLAUDE, prompt="hi", echo=False, best_of=1, suffix="")
    assert r.choices[0].text == "Hello from claude-haiku-4-5!"


async def test_n_goes_to_the_chat_path(gw: RunningGateway, openai_fake: FakeOpenAI) -> None:
    """n > 1 is the chat translator's to serve or refuse: OpenAI's takes it, Anthropic's refuses."""
    status, _, _ = await post(gw, {"model": CHAT_ONLY, "prompt": "hi", "n": 2})
    assert status == 200 and openai_fake.last.json["n"] == 2
    status, _, raw = await post(gw, {"model": CLAUDE, "prompt": "hi", "n": 2})
    assert status == 400 and orjson.loads(raw)["error"]["param"] == "n"


async def test_bad_completions_fields_are_named(gw: RunningGateway) -> None:
    for body, param in (({"logprobs": True}, "logprobs"), ({"logprobs": 9}, "logprobs"), ({"echo": "yes"}, "echo"),
                        ({"best_of": 1.5}, "best_of"), ({"suffix": 3}, "suffix"), ({"prompt": 5}, "prompt")):
        status, _, raw = await post(gw, {"model": INSTRUCT, "prompt": "hi", **body})
        assert status == 400, body
        assert orjson.loads(raw)["error"]["param"] == param


# ------------------------------------------------------------------ what decides


def test_which_deployments_have_completions(gw: RunningGateway) -> None:
    resolve = gw.gateway.router.resolve
    assert has_native_completions(resolve(INSTRUCT)[0])
    assert has_native_completions(resolve("openai/davinci-002")[0])
    assert has_native_completions(resolve("openai/my-fine-tuned-base")[0])  # unknown: the host decides
    for chat_only in (CHAT_ONLY, "openai/gpt-4.1", "openai/o3-mini", "openai/gpt-5", "openai/gpt-3.5-turbo", CLAUDE):
        assert not has_native_completions(resolve(chat_only)[0]), chat_only


def test_chat_body_carries_the_rest() -> None:
    body = {"model": "m", "prompt": "p", "stream": True, "stream_options": {"include_usage": True}, "n": 1,
            "logit_bias": {"50256": -100}, "echo": False, "best_of": 1, "logprobs": None}
    assert chat_body(body) == {"model": "m", "messages": [{"role": "user", "content": "p"}], "stream": True,
                               "stream_options": {"include_usage": True}, "n": 1, "logit_bias": {"50256": -100}}


# ------------------------------------------------------------------ the embedded model


@pytest.mark.local_model
async def test_local_model(start_gateway: GatewayFactory) -> None:
    require_local_model()
    gw = await start_gateway(env={"UNIGATE_LOCAL": "on"})
    c = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)
    r = await c.completions.create(model="local/smollm2", prompt="Name three colors.", max_tokens=6, temperature=0)
    assert r.object == "text_completion" and r.choices[0].text
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage is not None and 1 <= r.usage.completion_tokens <= 6
    s = await c.completions.create(model="local/smollm2", prompt="Name three colors.", max_tokens=6, temperature=0,
                                   stream=True, stream_options={"include_usage": True})
    chunks = [x async for x in s]
    assert "".join(x.choices[0].text for x in chunks if x.choices) == r.choices[0].text  # same greedy answer
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == r.usage.completion_tokens


async def test_stop_and_chat_fields_are_checked(gw: RunningGateway, ant_fake: FakeAnthropic) -> None:
    calls = len(ant_fake.requests)
    for body, param in (({"stop": 5}, "stop"), ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
                        ({"tools": [{"type": "function"}]}, "tools[0].function.name")):
        status, _, raw = await post(gw, {"model": CLAUDE, "prompt": "hi", **body})
        assert status == 400, raw
        assert orjson.loads(raw)["error"]["param"] == param
    assert len(ant_fake.requests) == calls
