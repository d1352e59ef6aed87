"""The Anthropic surface as coding agents (Claude Code) use it: requests shaped like Claude
Code's (system as text blocks with cache_control, tools with cache_control, signed thinking in
the history, the anthropic-beta header, stream=true), sent raw with aiohttp and through the
official anthropic SDK, against the Anthropic fake (what the upstream received: the client's
body byte for byte, its headers) and the OpenAI fake (what a translation keeps, drops and names).
Also: tool_choice variants, documents and images to every dialect, count_tokens for every model."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import orjson
import pytest
import pytest_asyncio

from tests.conftest import GatewayFactory, RunningGateway, require_local_model
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.bedrock import FakeBedrock
from tests.fakes.cohere import FakeCohere
from tests.fakes.gemini import API_KEY as GEMINI_KEY
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeUpstream
from unigate.surfaces.anthropic.count import IMAGE_TOKENS, PDF_PAGE_TOKENS, estimate_tokens

MASTER = "sk-master-test"
CLAUDE = "claude-sonnet-4-5-20250929"
BETAS = "claude-code-20250219,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14"
HEADERS = {"anthropic-version": "2023-06-01", "anthropic-beta": BETAS, "x-app": "cli",
           "user-agent": "claude-cli/2.0.14 (external, cli)", "content-type": "application/json",
           "x-api-key": MASTER}
CACHE = {"type": "ephemeral"}
BASH = {"name": "Bash", "description": "Run a shell command",
        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
        "cache_control": CACHE}
#: a Claude Code turn: its system prompt blocks, a tool, a history with signed and redacted thinking
BODY: dict[str, Any] = {
    "model": CLAUDE,
    "max_tokens": 32000,
    "system": [{"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.",
                "cache_control": CACHE},
               {"type": "text", "text": "Working directory: /home/dev/project", "cache_control": CACHE}],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "run the tests", "cache_control": CACHE}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "I will run make test.", "signature": "EqQBCkYIBxgCKkBq1Sig=="},
            {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr"},
            {"type": "tool_use", "id": "toolu_01AbCdEf", "name": "Bash", "input": {"command": "make test"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01AbCdEf",
                                      "content": "2 passed", "cache_control": CACHE}]},
    ],
    "tools": [BASH],
    "tool_choice": {"type": "auto"},
    "metadata": {"user_id": "user_3f2a_account_9c1d_session_77e0"},
    "thinking": {"type": "enabled", "budget_tokens": 31999},
}


@pytest_asyncio.fixture
async def fakes() -> AsyncIterator[dict[str, FakeUpstream]]:
    made: dict[str, FakeUpstream] = {"openai": FakeOpenAI(), "anthropic": FakeAnthropic(), "gemini": FakeGemini(),
                                     "bedrock": FakeBedrock(), "cohere": FakeCohere(api_key="co-test-key")}
    for f in made.values():
        await f.start()
    yield made
    for f in made.values():
        await f.stop()
    ant = made["anthropic"]
    assert isinstance(ant, FakeAnthropic)
    assert not ant.violations, f"the gateway sent requests the Anthropic API would refuse: {ant.violations}"


def env_for(fakes: dict[str, FakeUpstream]) -> dict[str, str]:
    return {"OPENAI_API_KEY": "sk-upstream-test", "OPENAI_BASE_URL": fakes["openai"].url + "/v1",
            "ANTHROPIC_API_KEY": FakeAnthropic.api_key, "ANTHROPIC_BASE_URL": fakes["anthropic"].url,
            "GEMINI_API_KEY": GEMINI_KEY, "GEMINI_BASE_URL": fakes["gemini"].url,
            "AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_REGION": "us-west-2",
            "BEDROCK_BASE_URL": fakes["bedrock"].url,
            "COHERE_API_KEY": "co-test-key", "COHERE_BASE_URL": fakes["cohere"].url,
            "UNIGATE_MASTER_KEY": MASTER}


@pytest_asyncio.fixture
async def gw(start_gateway: GatewayFactory, fakes: dict[str, FakeUpstream]) -> RunningGateway:
    return await start_gateway(env=env_for(fakes))


async def post(gw: RunningGateway, body: dict[str, Any] | bytes, headers: dict[str, str] | None = None,
               path: str = "/v1/messages") -> tuple[int, dict[str, str], bytes]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with aiohttp.ClientSession() as s, s.post(gw.url + path, data=data, headers=headers or HEADERS) as r:
        return r.status, dict(r.headers), await r.read()


def sse_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in raw.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            out.append((lines["event"], orjson.loads(lines["data"])))
    return out


def client(gw: RunningGateway) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gw.url, api_key=MASTER, max_retries=0)


# ------------------------------------------------------------------ Anthropic upstream: as it came


@pytest.mark.parametrize("stream", [False, True])
async def test_claude_code_request_reaches_anthropic_byte_for_byte(gw: RunningGateway, fakes: dict[str, FakeUpstream],
                                                                   stream: bool) -> None:
    sent = orjson.dumps({**BODY, "stream": stream})
    status, headers, raw = await post(gw, sent)
    assert status == 200, raw
    got = fakes["anthropic"].last
    assert got.path == "/v1/messages"
    # the client's bytes: cache_control on system, messages and tools, the signed and the
    # redacted thinking, the thinking knob, metadata, in the client's order
    assert got.body == sent
    assert got.headers["anthropic-beta"] == BETAS and got.headers["anthropic-version"] == "2023-06-01"
    assert got.headers["x-api-key"] == FakeAnthropic.api_key and MASTER not in str(got.headers)
    assert "x-unigate-dropped-params" not in headers
    if stream:
        names = [n for n, _ in sse_events(raw)]
        assert names[0] == "message_start" and names[-1] == "message_stop"


async def test_thinking_signatures_round_trip(gw: RunningGateway, fakes: dict[str, FakeUpstream]) -> None:
    """The signed thinking of an answer, sent back in the next turn's history, arrives intact
    (the fake refuses thinking without its signature, as the API does)."""
    c = client(gw)
    q: Any = [{"role": "user", "content": "what is 6*7?"}]
    thinking: Any = {"type": "enabled", "budget_tokens": 2048}
    m = await c.messages.create(model="anthropic/thinking", max_tokens=4096, messages=q, thinking=thinking)
    assert m.content[0].type == "thinking" and m.content[0].signature == "sig"
    async with c.messages.stream(model="anthropic/thinking", max_tokens=4096, messages=q, thinking=thinking) as s:
        streamed = await s.get_final_message()
    assert streamed.content[0].type == "thinking" and streamed.content[0].signature == "sig"  # signature_delta relayed
    history: Any = [*q, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in m.content]},
                    {"role": "user", "content": "and 6*8?"}]
    history[1]["content"].insert(1, {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"})
    await c.messages.create(model="anthropic/thinking", max_tokens=4096, messages=history, thinking=thinking)
    back = fakes["anthropic"].last.json["messages"][1]["content"]
    assert back[0] == {"type": "thinking", "thinking": "Let me think.", "signature": "sig"}
    assert back[1] == {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"}


async def test_sdk_betas_and_cache_control(gw: RunningGateway, fakes: dict[str, FakeUpstream]) -> None:
    system: Any = [{"type": "text", "text": "You are terse.", "cache_control": CACHE}]
    tools: Any = [BASH]
    r = await client(gw).beta.messages.create(
        model=CLAUDE, max_tokens=64, system=system, tools=tools, betas=["interleaved-thinking-2025-05-14"],
        messages=[{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": CACHE}]}])
    assert r.content[0].type == "text"
    got = fakes["anthropic"].last
    assert got.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    assert got.json["system"] == system and got.json["tools"] == tools
    assert got.json["messages"][0]["content"][0]["cache_control"] == CACHE


async def test_the_clients_anthropic_version_goes_upstream(start_gateway: GatewayFactory,
                                                           fakes: dict[str, FakeUpstream]) -> None:
    gw = await start_gateway(env=env_for(fakes))
    await post(gw, BODY, {**HEADERS, "anthropic-version": "2024-10-22"})
    assert fakes["anthropic"].last.headers["anthropic-version"] == "2024-10-22"
    await post(gw, BODY, {k: v for k, v in HEADERS.items() if k != "anthropic-version"})
    assert fakes["anthropic"].last.headers["anthropic-version"] == "2023-06-01"  # the adapter's default
    # an operator's configured version wins over the client's
    pinned = await start_gateway({"providers": {"anthropic": {"headers": {"anthropic-version": "2023-01-01"}}}},
                                 env=env_for(fakes))
    await post(pinned, BODY, {**HEADERS, "anthropic-version": "2024-10-22"})
    assert fakes["anthropic"].last.headers["anthropic-version"] == "2023-01-01"


# ------------------------------------------------------------------ OpenAI upstream: translated


@pytest.mark.parametrize("stream", [False, True])
async def test_claude_code_request_to_an_openai_model(gw: RunningGateway, fakes: dict[str, FakeUpstream],
                                                      stream: bool) -> None:
    status, headers, raw = await post(gw, {**BODY, "model": "openai/o4-mini", "stream": stream})
    assert status == 200, raw
    got = fakes["openai"].last
    assert got.path == "/v1/chat/completions" and b"cache_control" not in got.body and b"signature" not in got.body
    sent = got.json
    # OpenAI caches long prompt prefixes by itself: the breakpoints are dropped, and named; the
    # signed thinking has no OpenAI form (the thinking knob became reasoning_effort: o4-mini reasons)
    assert sorted(headers["x-unigate-dropped-params"].split(",")) == ["cache_control", "thinking blocks"]
    assert sent["messages"][0] == {"role": "system", "content": "You are Claude Code, Anthropic's official CLI for "
                                                                "Claude.\n\nWorking directory: /home/dev/project"}
    assert sent["messages"][2]["tool_calls"][0]["function"] == {"name": "Bash", "arguments": '{"command":"make test"}'}
    assert sent["messages"][3] == {"role": "tool", "tool_call_id": "toolu_01AbCdEf", "content": "2 passed"}
    assert sent["tools"] == [{"type": "function", "function": {"name": "Bash", "description": "Run a shell command",
                                                               "parameters": BASH["input_schema"]}}]
    assert sent["tool_choice"] == "auto" and sent["reasoning_effort"] == "high" and sent["user"].startswith("user_")
    if stream:
        events = sse_events(raw)
        assert events[0][0] == "message_start" and events[-1][0] == "message_stop"
        text = "".join(d["delta"].get("text", "") for n, d in events if n == "content_block_delta")
        assert text == "Hello from o4-mini!"
    else:
        assert orjson.loads(raw)["content"] == [{"type": "text", "text": "Hello from o4-mini!"}]


TOOL_CHOICES = [
    ({"type": "auto"}, {"tool_choice": "auto"}),
    ({"type": "any"}, {"tool_choice": "required"}),
    ({"type": "tool", "name": "Bash"}, {"tool_choice": {"type": "function", "function": {"name": "Bash"}}}),
    ({"type": "none"}, {"tool_choice": "none"}),
    ({"type": "auto", "disable_parallel_tool_use": True}, {"tool_choice": "auto", "parallel_tool_calls": False}),
    ({"type": "any", "disable_parallel_tool_use": True}, {"tool_choice": "required", "parallel_tool_calls": False}),
]


@pytest.mark.parametrize(("choice", "openai_fields"), TOOL_CHOICES)
async def test_tool_choice_variants(gw: RunningGateway, fakes: dict[str, FakeUpstream], choice: dict[str, Any],
                                    openai_fields: dict[str, Any]) -> None:
    body = {"max_tokens": 50, "messages": [{"role": "user", "content": "list files"}], "tools": [BASH],
            "tool_choice": choice}
    status, _, raw = await post(gw, {**body, "model": "openai/gpt-4.1-mini"})
    assert status == 200, raw
    sent = fakes["openai"].last.json
    assert {k: sent[k] for k in ("tool_choice", "parallel_tool_calls") if k in sent} == openai_fields
    status, _, raw = await post(gw, {**body, "model": CLAUDE})
    assert status == 200, raw
    assert fakes["anthropic"].last.json["tool_choice"] == choice  # Anthropic's own, as it came


async def test_a_forwarded_header_that_is_not_ascii_is_a_400(gw: RunningGateway,
                                                             fakes: dict[str, FakeUpstream]) -> None:
    """anthropic-version / anthropic-beta go upstream as they came: text HTTP/1.1 cannot carry
    (found by tests/integration/test_fuzz.py as a 500) is the client's 400, and nothing is sent."""
    body = {"model": "anthropic/claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    seen = len(fakes["anthropic"].requests)
    for name in ("anthropic-version", "anthropic-beta"):
        status, _, raw = await post(gw, body, {**HEADERS, name: "\u0100"})
        err = orjson.loads(raw)
        assert status == 400 and err["error"]["type"] == "invalid_request_error", raw
        assert name in err["error"]["message"]
    assert len(fakes["anthropic"].requests) == seen


async def test_bad_tool_choice_is_a_400(gw: RunningGateway) -> None:
    body = {"model": "openai/gpt-4.1-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
            "tools": [BASH]}
    for tc, param in (({"type": "sometimes"}, "tool_choice.type"), ({"type": "tool"}, "tool_choice.name"),
                      ("auto", "tool_choice")):
        status, _, raw = await post(gw, {**body, "tool_choice": tc})
        err = orjson.loads(raw)
        assert status == 400 and err["type"] == "error" and err["error"]["type"] == "invalid_request_error", raw
        assert param in err["error"]["message"]


# ------------------------------------------------------------------ documents and images

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
#: a two-page PDF's page objects (enough for the fakes and for the estimate's page count)
PDF = "JVBERi0xLjQKMSAwIG9iago8PC9UeXBlIC9QYWdlPj4KMiAwIG9iago8PC9UeXBlL1BhZ2U+PgozIDAgb2JqCjw8L1R5cGUgL1BhZ2VzPj4K"
BLOCKS: dict[str, dict[str, Any]] = {
    "image-base64": {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
    "image-url": {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
    "pdf": {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
            "title": "report"},
    "text-document": {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes"}},
}
#: model -> the blocks it cannot take (a clear 400 naming why), every other one is served
MEDIA = {
    CLAUDE: (),
    "openai/gpt-4.1-mini": (),
    "gemini/gemini-2.5-flash": (),
    "bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0": ("image-url",),  # Converse takes image bytes only
    "cohere/command-a-vision-07-2025": ("pdf",),  # Cohere v2 takes text and images
}


@pytest.mark.parametrize("model", list(MEDIA))
@pytest.mark.parametrize("block", list(BLOCKS))
async def test_documents_and_images(gw: RunningGateway, fakes: dict[str, FakeUpstream], model: str, block: str) -> None:
    body = {"model": model, "max_tokens": 20,
            "messages": [{"role": "user", "content": [BLOCKS[block], {"type": "text", "text": "Summarise it."}]}]}
    status, _, raw = await post(gw, body)
    if block in MEDIA[model]:
        err = orjson.loads(raw)
        assert status == 400 and err["error"]["type"] == "invalid_request_error", raw
        assert ("URL" in err["error"]["message"]) if block == "image-url" else ("file" in err["error"]["message"])
        return
    assert status == 200, raw
    assert orjson.loads(raw)["type"] == "message"
    dialect = "anthropic" if model == CLAUDE else model.split("/")[0]
    sent = fakes[dialect].last.body
    if block == "text-document":
        assert b"notes" in sent
    elif block != "image-url":
        assert (PNG if block == "image-base64" else PDF).encode() in sent  # the data itself went upstream
    if model == "openai/gpt-4.1-mini" and block == "pdf":
        part = fakes["openai"].last.json["messages"][0]["content"][0]
        assert part == {"type": "file", "file": {"filename": "report", "file_data": f"data:application/pdf;base64,{PDF}"}}


@pytest.mark.local_model
async def test_the_local_model_refuses_images_clearly(start_gateway: GatewayFactory) -> None:
    require_local_model()
    gw = await start_gateway(env={"UNIGATE_LOCAL": "on", "UNIGATE_MASTER_KEY": MASTER})
    body = {"model": "local/smollm2", "max_tokens": 5, "messages": [{"role": "user", "content": [BLOCKS["image-base64"]]}]}
    status, _, raw = await post(gw, body)
    err = orjson.loads(raw)
    assert status == 400 and "image input" in err["error"]["message"], raw


# ------------------------------------------------------------------ count_tokens for every model


async def test_count_tokens_exact_from_anthropic(gw: RunningGateway, fakes: dict[str, FakeUpstream]) -> None:
    body = {k: v for k, v in BODY.items() if k not in ("max_tokens", "metadata")}
    status, headers, raw = await post(gw, body, path="/v1/messages/count_tokens")
    assert status == 200, raw
    got = fakes["anthropic"].last
    assert got.path == "/v1/messages/count_tokens"
    assert got.headers["anthropic-beta"] == BETAS and got.headers["anthropic-version"] == "2023-06-01"
    assert got.json == {"model": CLAUDE, **{k: body[k] for k in ("messages", "system", "tools", "tool_choice",
                                                                 "thinking")}}
    counted = {k: body[k] for k in ("system", "messages", "tools")}
    assert orjson.loads(raw) == {"input_tokens": len(orjson.dumps(counted)) // 3}  # the fake's own count
    assert headers["x-unigate-token-count"] == "exact" and headers["request-id"]


COUNT_BODY: dict[str, Any] = {"system": "x" * 40, "messages": [
    {"role": "user", "content": [{"type": "text", "text": "y" * 400}, BLOCKS["image-base64"]]}]}


@pytest.mark.parametrize("model, fake", [("gemini/gemini-2.5-flash", "gemini"),
                                         ("bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0", "bedrock")])
async def test_count_tokens_exact_from_gemini_and_bedrock(gw: RunningGateway, fakes: dict[str, FakeUpstream],
                                                          model: str, fake: str) -> None:
    before = len(fakes[fake].requests)
    raw = await client(gw).messages.with_raw_response.count_tokens(model=model, **COUNT_BODY)
    assert raw.headers["x-unigate-token-count"] == "exact"
    assert (await raw.parse()).input_tokens == 2  # the fakes' count: a token per word (one each)
    assert len(fakes[fake].requests) == before + 1
    assert fakes[fake].last.path.endswith((":countTokens", "/count-tokens"))


@pytest.mark.parametrize("model", ["openai/gpt-4.1-mini", "cohere/command-a-03-2025"])
async def test_count_tokens_estimated_elsewhere(gw: RunningGateway, fakes: dict[str, FakeUpstream], model: str) -> None:
    before = {name: len(f.requests) for name, f in fakes.items()}
    body: dict[str, Any] = {"model": model, "system": "x" * 40, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "y" * 400}, BLOCKS["image-base64"]]}]}
    c = client(gw)
    raw = await c.messages.with_raw_response.count_tokens(**body)
    assert raw.headers["x-unigate-token-count"] == "estimate"
    assert (await raw.parse()).input_tokens == 110 + IMAGE_TOKENS  # 440 text bytes / 4, one image
    assert {name: len(f.requests) for name, f in fakes.items()} == before  # nothing went upstream


async def test_count_tokens_errors(gw: RunningGateway) -> None:
    status, _, raw = await post(gw, {"model": "nope/nothing", "messages": [{"role": "user", "content": "hi"}]},
                                path="/v1/messages/count_tokens")
    assert status == 404 and orjson.loads(raw)["type"] == "error"
    status, _, raw = await post(gw, {"model": "openai/gpt-4.1-mini", "messages": "hi"},
                                path="/v1/messages/count_tokens")
    assert status == 400 and "messages" in orjson.loads(raw)["error"]["message"]


def test_the_estimate() -> None:
    body: dict[str, Any] = copy.deepcopy(BODY)
    text = sum(len(b["text"]) for b in body["system"]) + len("run the tests") + len("I will run make test.") \
        + len("Bash") + len(b'{"command":"make test"}') + len("2 passed")
    tools = len(orjson.dumps(body["tools"]))
    assert estimate_tokens(body) == -(-(text + tools) // 4)
    pdf: dict[str, Any] = {"messages": [{"role": "user", "content": [BLOCKS["pdf"]]}]}
    assert estimate_tokens(pdf) == 2 * PDF_PAGE_TOKENS  # two /Page objects, the /Pages node not counted
    assert estimate_tokens({"messages": [{"role": "user", "content": "é" * 4}]}) == 2  # UTF-8 bytes


async def test_count_tokens_keeps_a_keys_model_list(start_gateway: GatewayFactory, fakes: dict[str, FakeUpstream],
                                                    tmp_path: Any) -> None:
    """The estimate calls no upstream, but a virtual key still may count only for its models."""
    gw = await start_gateway(env={**env_for(fakes), "UNIGATE_DATA_DIR": str(tmp_path)})
    async with aiohttp.ClientSession() as s, s.post(gw.url + "/admin/keys", json={"name": "a", "models": ["anthropic/*"]},
                                                    headers={"Authorization": f"Bearer {MASTER}"}) as r:
        assert r.status == 201
        key = (await r.json())["key"]
    body = {"messages": [{"role": "user", "content": "hi"}]}
    headers = {**HEADERS, "x-api-key": key}
    status, _, raw = await post(gw, {**body, "model": "openai/gpt-4.1-mini"}, headers, "/v1/messages/count_tokens")
    assert status == 403 and orjson.loads(raw)["error"]["type"] == "permission_error", raw
    status, h, _ = await post(gw, {**body, "model": CLAUDE}, headers, "/v1/messages/count_tokens")
    assert status == 200 and h["x-unigate-token-count"] == "exact"
