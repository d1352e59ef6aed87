"""The official openai SDK through the gateway against a fake Bedrock Runtime that checks every
SigV4 signature with botocore and streams real binary event-stream frames."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import openai
import orjson
import pytest
import pytest_asyncio

from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.bedrock import FakeBedrock

MODEL = "bedrock/anthropic.claude-3-5-haiku-20241022-v1:0"
RAW_PATH = "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"
MSGS: list[Any] = [{"role": "user", "content": "Say hello"}]
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n fake image bytes").decode()


def env_for(fake: FakeBedrock, **extra: str) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_REGION": "us-west-2",
            "BEDROCK_BASE_URL": fake.url, **extra}


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeBedrock]:
    f = FakeBedrock()
    await f.start()
    yield f
    await f.stop()


@pytest_asyncio.fixture
async def gw(start_gateway: GatewayFactory, fake: FakeBedrock) -> RunningGateway:
    return await start_gateway(env=env_for(fake))


def message(e: openai.APIError) -> str:
    """The gateway's own error message (the SDK prefixes status errors with "Error code: ...")."""
    return str(e.body["message"]) if isinstance(e.body, dict) else e.message


def client(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)


# ---------------------------------------------------------------------------- chat + signing


async def test_chat_is_signed_and_translated(gw: RunningGateway, fake: FakeBedrock) -> None:
    raw = await client(gw).chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "system", "content": "Be brief."}, *MSGS],
        max_tokens=50, temperature=0.2, top_p=0.9, stop="STOP", seed=7,
    )
    r = raw.parse()
    assert r.choices[0].message.content == "Hello from anthropic.claude-3-5-haiku-20241022-v1:0!"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None and (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (12, 5, 17)
    assert raw.headers["x-unigate-dropped-params"] == "seed"
    # the model id is percent-encoded in the path exactly as botocore sends it, and the
    # signature the fake recomputed with botocore over that raw path matched
    assert fake.raw_paths == [RAW_PATH]
    assert fake.signature_checks == [("AKIDTEST", True)]
    sent = fake.last
    assert sent.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDTEST/")
    assert "/us-west-2/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date," in sent.headers["Authorization"]
    assert sent.json == {
        "system": [{"text": "Be brief."}],
        "messages": [{"role": "user", "content": [{"text": "Say hello"}]}],
        "inferenceConfig": {"maxTokens": 50, "temperature": 0.2, "topP": 0.9, "stopSequences": ["STOP"]},
    }


async def test_session_token_is_signed(start_gateway: GatewayFactory, fake: FakeBedrock) -> None:
    gw = await start_gateway(env=env_for(fake, AWS_SESSION_TOKEN="tok-123"))
    r = await client(gw).chat.completions.create(model=MODEL, messages=MSGS)
    assert r.choices[0].message.content
    assert fake.last.headers["X-Amz-Security-Token"] == "tok-123"
    assert "x-amz-security-token" in fake.last.headers["Authorization"]
    assert fake.signature_checks == [("AKIDTEST", True)]


async def test_wrong_secret_is_an_auth_error(start_gateway: GatewayFactory, fake: FakeBedrock) -> None:
    gw = await start_gateway(env=env_for(fake, AWS_SECRET_ACCESS_KEY="not-the-secret"))
    with pytest.raises(openai.AuthenticationError) as ei:
        await client(gw).chat.completions.create(model=MODEL, messages=MSGS)
    assert ei.value.status_code == 401
    assert "InvalidSignatureException" in message(ei.value) and message(ei.value).startswith("bedrock:")
    assert fake.signature_checks == [("AKIDTEST", False)]


async def test_unknown_access_key_is_an_auth_error(start_gateway: GatewayFactory, fake: FakeBedrock) -> None:
    gw = await start_gateway(env=env_for(fake, AWS_ACCESS_KEY_ID="AKIDOTHER"))
    with pytest.raises(openai.AuthenticationError) as ei:
        await client(gw).chat.completions.create(model=MODEL, messages=MSGS)
    assert "UnrecognizedClientException" in message(ei.value)


# ---------------------------------------------------------------------------- streaming


async def test_stream_split_across_reads(gw: RunningGateway, fake: FakeBedrock) -> None:
    stream = await client(gw).chat.completions.create(model=MODEL, messages=MSGS, stream=True,
                                                      stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    assert fake.raw_paths == [RAW_PATH.replace("/converse", "/converse-stream")]
    assert fake.signature_checks == [("AKIDTEST", True)]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from anthropic.claude-3-5-haiku-20241022-v1:0!"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 17
    await gw.gateway.ledger.flush()
    rec = gw.gateway.ledger.recent[-1]
    assert rec.usage_known and rec.prompt_tokens == 12 and rec.completion_tokens == 5


async def test_stream_byte_by_byte(start_gateway: GatewayFactory, fake: FakeBedrock) -> None:
    fake.piece_sizes = [1]
    gw = await start_gateway(env=env_for(fake))
    stream = await client(gw).chat.completions.create(model="bedrock/test.reasoning-v1:0", messages=MSGS, stream=True)
    chunks = [c async for c in stream]
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(getattr(d, "reasoning_content", None) or "" for d in deltas) == "Thinking it over."
    assert "".join(d.content or "" for d in deltas) == "42"
    assert all(c.choices for c in chunks), "usage-only chunk leaked to a client that did not ask"


async def test_mid_stream_exception_frame(gw: RunningGateway) -> None:
    stream = await client(gw).chat.completions.create(
        model="bedrock/test.midstream-throttlingException-v1:0", messages=MSGS, stream=True)
    text = ""
    with pytest.raises(openai.APIError) as ei:
        async for c in stream:
            text += (c.choices[0].delta.content or "") if c.choices else ""
    assert text == "Hello"  # the chunks before the failure got through
    assert "ThrottlingException" in message(ei.value) and "fake stream failure" in message(ei.value)


async def test_truncated_stream_is_an_error(gw: RunningGateway) -> None:
    stream = await client(gw).chat.completions.create(model="bedrock/test.drop-v1:0", messages=MSGS, stream=True)
    with pytest.raises(openai.APIError) as ei:
        async for _ in stream:
            pass
    assert message(ei.value).startswith("bedrock:")


# ---------------------------------------------------------------------------- tools


async def test_tool_call_and_round_trip(gw: RunningGateway, fake: FakeBedrock) -> None:
    c = client(gw)
    r = await c.chat.completions.create(model="bedrock/test.tools-v1:0", messages=MSGS, tools=[WEATHER_TOOL],
                                        tool_choice="required")
    msg = r.choices[0].message
    assert r.choices[0].finish_reason == "tool_calls"
    assert msg.content == "Let me check."
    assert msg.tool_calls is not None and len(msg.tool_calls) == 1
    call = msg.tool_calls[0]
    assert (call.id, call.function.name, orjson.loads(call.function.arguments)) == (
        "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "get_weather", {"city": "Paris"})
    assert fake.last.json["toolConfig"] == {
        "tools": [{"toolSpec": {"name": "get_weather", "description": "Weather for a city",
                                "inputSchema": {"json": WEATHER_TOOL["function"]["parameters"]}}}],
        "toolChoice": {"any": {}},
    }
    # second turn: the call from the answer, plus one with an id Converse would reject, answered
    # by two consecutive tool messages -> one user turn of toolResults, ids rewritten alike
    odd_id = "call/with spaces&symbols"
    history = [*MSGS,
               {"role": "assistant", "content": "Let me check.", "tool_calls": [
                   {"id": call.id, "type": "function", "function": {"name": "get_weather", "arguments": call.function.arguments}},
                   {"id": odd_id, "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
               {"role": "tool", "tool_call_id": call.id, "content": "18C, sunny"},
               {"role": "tool", "tool_call_id": odd_id, "content": [{"type": "text", "text": "3C, snow"}]}]
    r2 = await c.chat.completions.create(model=MODEL, messages=history, tools=[WEATHER_TOOL],
                                         tool_choice={"type": "function", "function": {"name": "get_weather"}})
    assert r2.choices[0].finish_reason == "tool_calls"  # a forced client tool stays a tool call
    sent = fake.last.json
    assert sent["toolConfig"]["toolChoice"] == {"tool": {"name": "get_weather"}}
    assistant, results = sent["messages"][1], sent["messages"][2]
    uses = [b["toolUse"] for b in assistant["content"] if "toolUse" in b]
    assert assistant["role"] == "assistant" and assistant["content"][0] == {"text": "Let me check."}
    assert uses[0] == {"toolUseId": call.id, "name": "get_weather", "input": {"city": "Paris"}}
    rewritten = uses[1]["toolUseId"]
    assert rewritten != odd_id and len(rewritten) <= 64 and all(ch.isalnum() or ch in "_.:-" for ch in rewritten)
    assert results == {"role": "user", "content": [
        {"toolResult": {"toolUseId": call.id, "content": [{"text": "18C, sunny"}]}},
        {"toolResult": {"toolUseId": rewritten, "content": [{"text": "3C, snow"}]}}]}
    assert len(sent["messages"]) == 3


async def test_forced_client_tool_is_a_tool_call(gw: RunningGateway) -> None:
    r = await client(gw).chat.completions.create(
        model=MODEL, messages=MSGS, tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    assert r.choices[0].finish_reason == "tool_calls"
    assert r.choices[0].message.tool_calls and r.choices[0].message.tool_calls[0].function.name == "get_weather"


async def test_stream_tool_input_fragments(gw: RunningGateway, fake: FakeBedrock) -> None:
    stream = await client(gw).chat.completions.create(model="bedrock/test.tools-v1:0", messages=MSGS,
                                                      tools=[WEATHER_TOOL], stream=True)
    starts: list[tuple[int, str | None, str | None]] = []
    fragments: list[str] = []
    text = ""
    finish = None
    async for c in stream:
        if not c.choices:
            continue
        d = c.choices[0].delta
        text += d.content or ""
        for tc in d.tool_calls or []:
            if tc.id:
                starts.append((tc.index, tc.id, tc.function.name if tc.function else None))
            if tc.function and tc.function.arguments:
                fragments.append(tc.function.arguments)
        finish = c.choices[0].finish_reason or finish
    assert text == "Let me check."
    assert starts == [(0, "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "get_weather")]
    assert len(fragments) > 1 and orjson.loads("".join(fragments)) == {"city": "Paris"}
    assert finish == "tool_calls"


# ---------------------------------------------------------------------------- vision


async def test_vision_base64_image(gw: RunningGateway, fake: FakeBedrock) -> None:
    content = [{"type": "text", "text": "What is this?"},
               {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"}}]
    r = await client(gw).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}])
    assert r.choices[0].message.content
    assert fake.last.json["messages"][0]["content"] == [
        {"text": "What is this?"}, {"image": {"format": "png", "source": {"bytes": PNG}}}]


async def test_http_image_url_is_a_clear_400(gw: RunningGateway, fake: FakeBedrock) -> None:
    content = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    with pytest.raises(openai.BadRequestError) as ei:
        await client(gw).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}])
    assert ei.value.code == "unsupported_feature"
    assert "cannot fetch image URLs" in message(ei.value) and "data:image/png;base64" in message(ei.value)
    assert fake.requests == []


# ---------------------------------------------------------------------------- structured output

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "temp_c": {"type": "integer"}},
          "required": ["city", "temp_c"], "additionalProperties": False}
RF = {"type": "json_schema", "json_schema": {"name": "weather", "schema": SCHEMA, "strict": True}}


async def test_json_schema_through_a_forced_tool(gw: RunningGateway, fake: FakeBedrock) -> None:
    r = await client(gw).chat.completions.create(model=MODEL, messages=MSGS, response_format=RF)  # type: ignore[arg-type]
    assert orjson.loads(r.choices[0].message.content or "") == {"city": "Paris", "temp_c": 21}
    assert r.choices[0].finish_reason == "stop" and not r.choices[0].message.tool_calls
    tc = fake.last.json["toolConfig"]
    assert tc["toolChoice"] == {"tool": {"name": "unigate_structured_output"}}
    assert tc["tools"][0]["toolSpec"]["inputSchema"] == {"json": SCHEMA}
    # and streamed: the tool input fragments arrive as content
    stream = await client(gw).chat.completions.create(model=MODEL, messages=MSGS, response_format=RF, stream=True)  # type: ignore[arg-type]
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert orjson.loads(text) == {"city": "Paris", "temp_c": 21}
    assert not any(c.choices[0].delta.tool_calls for c in chunks if c.choices)
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]


async def test_json_schema_through_output_config(start_gateway: GatewayFactory, fake: FakeBedrock) -> None:
    gw = await start_gateway({"providers": {"bedrock": {"options": {"structured_output": "output_config"}}}},
                             env=env_for(fake))
    r = await client(gw).chat.completions.create(model=MODEL, messages=MSGS, response_format=RF)  # type: ignore[arg-type]
    assert orjson.loads(r.choices[0].message.content or "") == {"city": "Paris", "temp_c": 21}
    oc = fake.last.json["outputConfig"]["textFormat"]
    assert oc["type"] == "json_schema" and oc["structure"]["jsonSchema"]["name"] == "weather"
    assert orjson.loads(oc["structure"]["jsonSchema"]["schema"]) == SCHEMA  # a JSON *string* on the wire
    assert "toolConfig" not in fake.last.json
    assert fake.signature_checks[-1] == ("AKIDTEST", True)


# ---------------------------------------------------------------------------- stop reasons, usage


@pytest.mark.parametrize(("reason", "finish"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
    ("guardrail_intervened", "content_filter"), ("content_filtered", "content_filter"),
    ("model_context_window_exceeded", "length"),
])
async def test_stop_reasons(gw: RunningGateway, reason: str, finish: str) -> None:
    model = f"bedrock/test.stop-{reason}-v1:0"
    r = await client(gw).chat.completions.create(model=model, messages=MSGS)
    assert r.choices[0].finish_reason == finish
    stream = await client(gw).chat.completions.create(model=model, messages=MSGS, stream=True)
    assert [c.choices[0].finish_reason async for c in stream if c.choices and c.choices[0].finish_reason] == [finish]


async def test_cache_usage_and_reasoning(gw: RunningGateway) -> None:
    r = await client(gw).chat.completions.create(model="bedrock/test.cache-v1:0", messages=MSGS)
    u = r.usage
    assert u is not None and (u.prompt_tokens, u.completion_tokens, u.total_tokens) == (1104, 5, 1109)
    assert u.prompt_tokens_details is not None and u.prompt_tokens_details.cached_tokens == 1000
    r = await client(gw).chat.completions.create(model="bedrock/test.reasoning-v1:0", messages=MSGS)
    assert r.choices[0].message.content == "42"
    assert r.choices[0].message.reasoning_content == "Thinking it over."


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("code", "exc", "status"), [
    ("ThrottlingException", openai.RateLimitError, 429),
    ("ModelNotReadyException", openai.RateLimitError, 429),
    ("ValidationException", openai.BadRequestError, 400),
    ("AccessDeniedException", openai.PermissionDeniedError, 403),
    ("ResourceNotFoundException", openai.NotFoundError, 404),
    ("ModelTimeoutException", openai.InternalServerError, 504),
    ("ServiceUnavailableException", openai.InternalServerError, 503),
    ("ModelErrorException", openai.InternalServerError, 502),
    ("InternalServerException", openai.InternalServerError, 502),
])
async def test_error_mapping(gw: RunningGateway, code: str, exc: type[openai.APIStatusError], status: int) -> None:
    for stream in (False, True):
        with pytest.raises(exc) as ei:
            await client(gw).chat.completions.create(model=f"bedrock/test.error-{code}-v1:0", messages=MSGS,
                                                     stream=stream)
        assert ei.value.status_code == status
        assert message(ei.value).startswith(f"bedrock: {code}: fake {code}")


async def test_n_above_one_is_a_400(gw: RunningGateway, fake: FakeBedrock) -> None:
    with pytest.raises(openai.BadRequestError) as ei:
        await client(gw).chat.completions.create(model=MODEL, messages=MSGS, n=2)
    assert ei.value.code == "unsupported_feature" and ei.value.param == "n"
    assert fake.requests == []


# ------------------------------------------------------------------ count_tokens (Anthropic surface)


async def test_count_tokens_is_bedrocks_own_count_where_it_has_one(gw: RunningGateway, fake: FakeBedrock) -> None:
    """`/v1/messages/count_tokens` on a Bedrock model: CountTokens (signed, free) on the Converse
    translation, marked exact; a model Bedrock does not count (Nova, inference profiles) gets the
    gateway's estimate, marked as one, instead of an error."""
    import anthropic

    c = anthropic.AsyncAnthropic(base_url=gw.url, api_key="unused", max_retries=0)
    tool: Any = {"name": "get_time", "description": "Now", "input_schema": {"type": "object", "properties": {}}}
    raw = await c.messages.with_raw_response.count_tokens(
        model=MODEL, system="Be very brief.", tools=[tool], messages=[{"role": "user", "content": "What time is it?"}])
    assert raw.headers["x-unigate-token-count"] == "exact"
    assert (await raw.parse()).input_tokens == 3 + 4 + 10  # the fake: a token per word, 10 per tool
    assert fake.raw_paths[-1] == "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/count-tokens"
    converse = fake.last.json["input"]["converse"]
    assert set(converse) == {"messages", "system", "toolConfig"} and converse["system"] == [{"text": "Be very brief."}]
    assert converse["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_time"
    assert fake.signature_checks and fake.signature_checks[-1] == ("AKIDTEST", True)
    for model in ("bedrock/amazon.nova-lite-v1:0", "bedrock/us.anthropic.claude-3-5-haiku-20241022-v1:0"):
        raw = await c.messages.with_raw_response.count_tokens(model=model, messages=[{"role": "user", "content": "hi"}])
        assert raw.headers["x-unigate-token-count"] == "estimate", model
        assert (await raw.parse()).input_tokens == 1
        assert fake.raw_paths[-1].endswith("/count-tokens")  # asked first, then estimated
