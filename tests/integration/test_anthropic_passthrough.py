"""Anthropic in, Anthropic out: a request Claude Code sent, replayed through `/v1/messages` to an
Anthropic upstream, arrives as it was sent (every body field, the anthropic-beta header), and
the answer comes back as the upstream sent it, its usage still counted. Translations to other
dialects name what they drop, on both surfaces, and every request leaves one access-log line."""

from __future__ import annotations

import copy
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio
from aiohttp import web

from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.bedrock import FakeBedrock
from tests.fakes.cohere import FakeCohere
from tests.fakes.gemini import API_KEY as GEMINI_KEY
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeUpstream

MASTER = "sk-master-test"
UPSTREAM_KEY = "sk-ant-upstream-test"
MODEL = "claude-sonnet-4-5-20250929"
BETAS = ("claude-code-20250219,context-1m-2025-08-07,interleaved-thinking-2025-05-14,"
         "context-management-2025-06-27,effort-2025-11-24")
#: the headers Claude Code sends with each /v1/messages call (the key aside)
CLAUDE_CODE_HEADERS = {"anthropic-version": "2023-06-01", "anthropic-beta": BETAS, "x-app": "cli",
                       "user-agent": "claude-cli/2.0.14 (external, cli)", "content-type": "application/json",
                       "anthropic-dangerous-direct-browser-access": "true"}
#: a recorded Claude Code request, with everything the canonical form cannot hold
CLAUDE_CODE_BODY: dict[str, Any] = {
    "model": MODEL,
    "max_tokens": 32000,
    "system": [
        {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.",
         "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Working directory: /home/dev/project\nIs directory a git repo: Yes"},
    ],
    "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>CLAUDE.md says: run make test</system-reminder>"},
            {"type": "text", "text": "fix the failing test", "cache_control": {"type": "ephemeral"}}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "I should run the tests first.",
             "signature": "EqQBCkYIBxgCKkBq1Fake+Signature/AAAA=="},
            {"type": "tool_use", "id": "toolu_01AbCdEf", "name": "Bash",
             "input": {"command": "make test", "description": "Run the tests"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01AbCdEf", "is_error": True,
             "content": [{"type": "text", "text": "FAILED tests/test_x.py::test_y"}],
             "cache_control": {"type": "ephemeral"}}]},
        {"role": "system", "content": "The user has switched to plan mode."},
        {"role": "user", "content": "go on"},
    ],
    "tools": [{"name": "Bash", "description": "Run a shell command",
               "input_schema": {"type": "object", "properties": {"command": {"type": "string"},
                                                                 "description": {"type": "string"}},
                                "required": ["command"], "additionalProperties": False,
                                "$schema": "http://json-schema.org/draft-07/schema#"},
               "cache_control": {"type": "ephemeral"}}],
    "tool_choice": {"type": "auto"},
    "metadata": {"user_id": "user_3f2a_account_9c1d_session_77e0"},
    "thinking": {"type": "enabled", "budget_tokens": 31999},
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    "output_config": {"effort": "high"},
    "temperature": 1,
}
ANSWER = {"id": "msg_01XyZ", "type": "message", "role": "assistant", "model": MODEL,
          "content": [{"type": "thinking", "thinking": "The assertion is off by one.", "signature": "EqNewSig=="},
                      {"type": "text", "text": "Fixed."}],
          "stop_reason": "end_turn", "stop_sequence": None, "container": None,
          "context_management": {"applied_edits": []},
          "usage": {"input_tokens": 40, "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 20000,
                    "output_tokens": 77, "service_tier": "standard"}}


def sse(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


STREAM = b"".join([
    sse("message_start", {"type": "message_start", "message": {**ANSWER, "content": [], "stop_reason": None,
                                                               "usage": {**ANSWER["usage"], "output_tokens": 1}}}),
    sse("ping", {"type": "ping"}),
    sse("content_block_start", {"type": "content_block_start", "index": 0,
                                "content_block": {"type": "text", "text": ""}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                "delta": {"type": "text_delta", "text": "Fixed."}}),
    sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
    sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                          "context_management": {"applied_edits": []}, "usage": {"output_tokens": 77}}),
    sse("message_stop", {"type": "message_stop"}),
])


class RecordingAnthropic(FakeUpstream):
    """An Anthropic Messages upstream that takes any body and answers ANSWER (or STREAM), in
    pieces that split events across reads."""

    def setup(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self.messages)

    async def messages(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("x-api-key") != UPSTREAM_KEY:
            return web.json_response({"type": "error", "error": {"type": "authentication_error",
                                                                  "message": "invalid x-api-key"}}, status=401)
        if orjson.loads(await request.read()).get("stream"):
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            for i in range(0, len(STREAM), 97):
                await resp.write(STREAM[i:i + 97])
            await resp.write_eof()
            return resp
        return web.Response(body=orjson.dumps(ANSWER), content_type="application/json")


@pytest_asyncio.fixture
async def upstream() -> AsyncIterator[RecordingAnthropic]:
    f = RecordingAnthropic()
    await f.start()
    yield f
    await f.stop()


@pytest_asyncio.fixture
async def gw(start_gateway: GatewayFactory, upstream: RecordingAnthropic) -> RunningGateway:
    return await start_gateway(env={"ANTHROPIC_API_KEY": UPSTREAM_KEY, "ANTHROPIC_BASE_URL": upstream.url,
                                    "UNIGATE_MASTER_KEY": MASTER}, access_log=True)


async def post(gw: RunningGateway, body: dict[str, Any], headers: dict[str, str] | None = None,
               path: str = "/v1/messages") -> tuple[int, dict[str, str], bytes]:
    h = {**(headers if headers is not None else CLAUDE_CODE_HEADERS), "x-api-key": MASTER}
    async with aiohttp.ClientSession() as s, s.post(gw.url + path, data=orjson.dumps(body), headers=h) as r:
        return r.status, dict(r.headers), await r.read()


@pytest.mark.parametrize("stream", [False, True])
async def test_a_claude_code_request_arrives_as_it_was_sent(gw: RunningGateway, upstream: RecordingAnthropic,
                                                            stream: bool) -> None:
    body = {**copy.deepcopy(CLAUDE_CODE_BODY), "stream": stream}
    status, headers, answer = await post(gw, body)
    assert status == 200, answer
    got = upstream.last
    assert got.json == body  # every field, nested ones included, as the client wrote it
    assert list(got.json) == list(body)  # in the client's order
    assert got.headers["anthropic-beta"] == BETAS
    assert got.headers["x-api-key"] == UPSTREAM_KEY and MASTER not in str(got.headers)
    assert "x-unigate-dropped-params" not in headers
    assert headers["x-unigate-model"] == f"anthropic/{MODEL}"
    # the answer as the upstream sent it (thinking signature, context_management, service_tier)
    assert answer == (STREAM if stream else orjson.dumps(ANSWER))
    await gw.gateway.ledger.flush()
    rec = gw.gateway.ledger.recent[-1]
    # usage still read for the ledger: Anthropic's input_tokens exclude the cached ones
    assert rec.usage_known and rec.stream is stream
    assert (rec.prompt_tokens, rec.completion_tokens, rec.cached_tokens, rec.cache_write_tokens) == (
        21040, 77, 20000, 1000)
    assert rec.cost_usd is not None and rec.cost_usd > 0


async def test_the_model_is_the_deployments(gw: RunningGateway, upstream: RecordingAnthropic) -> None:
    """Only the model changes: a bare name with Claude Code's [1m] selector, or our provider/model id."""
    for asked in (f"{MODEL}[1m]", f"anthropic/{MODEL}"):
        status, _, _ = await post(gw, {**CLAUDE_CODE_BODY, "model": asked})
        assert status == 200
        assert upstream.last.json == CLAUDE_CODE_BODY


async def test_operator_betas_join_the_clients(start_gateway: GatewayFactory, upstream: RecordingAnthropic) -> None:
    gw = await start_gateway({"providers": {"anthropic": {"headers": {"anthropic-beta": "token-efficient-tools-2025-02-19"}}}},
                             env={"ANTHROPIC_API_KEY": UPSTREAM_KEY, "ANTHROPIC_BASE_URL": upstream.url,
                                  "UNIGATE_MASTER_KEY": MASTER})
    await post(gw, CLAUDE_CODE_BODY)
    assert upstream.last.headers["anthropic-beta"] == "token-efficient-tools-2025-02-19," + BETAS
    await post(gw, CLAUDE_CODE_BODY, {"anthropic-version": "2023-06-01"})  # no client betas
    assert upstream.last.headers["anthropic-beta"] == "token-efficient-tools-2025-02-19"


async def test_an_in_stream_error_after_events_is_relayed_then_rendered(start_gateway: GatewayFactory) -> None:
    """Events before an upstream's `event: error` reach the client as they were; the error is
    the gateway's (redacted) rendering, and nothing follows it."""

    class Failing(RecordingAnthropic):
        async def messages(self, request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            await resp.write(STREAM.split(b"event: content_block_delta")[0] + sse("error", {
                "type": "error", "error": {"type": "overloaded_error", "message": f"Overloaded ({UPSTREAM_KEY})"}}))
            await resp.write_eof()
            return resp

    up = Failing()
    await up.start()
    try:
        gw = await start_gateway(env={"ANTHROPIC_API_KEY": UPSTREAM_KEY, "ANTHROPIC_BASE_URL": up.url,
                                      "UNIGATE_MASTER_KEY": MASTER})
        status, _, answer = await post(gw, {**CLAUDE_CODE_BODY, "stream": True})
    finally:
        await up.stop()
    assert status == 200
    head, _, last = answer.rstrip(b"\n").rpartition(b"\n\n")
    assert head + b"\n\n" == STREAM.split(b"event: content_block_delta")[0]
    assert last.startswith(b"event: error\n") and b"overloaded_error" in last and UPSTREAM_KEY.encode() not in last


# ------------------------------------------------------------------ translations name their drops


@pytest_asyncio.fixture
async def others() -> AsyncIterator[dict[str, FakeUpstream]]:
    made: dict[str, FakeUpstream] = {"openai": FakeOpenAI(), "gemini": FakeGemini(), "bedrock": FakeBedrock(),
                                     "cohere": FakeCohere(api_key="co-test-key"), "anthropic": FakeAnthropic()}
    for f in made.values():
        await f.start()
    yield made
    for f in made.values():
        await f.stop()


def env_for(others: dict[str, FakeUpstream]) -> dict[str, str]:
    return {"OPENAI_API_KEY": "sk-upstream-test", "OPENAI_BASE_URL": others["openai"].url + "/v1",
            "GEMINI_API_KEY": GEMINI_KEY, "GEMINI_BASE_URL": others["gemini"].url,
            "AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_REGION": "us-west-2",
            "BEDROCK_BASE_URL": others["bedrock"].url,
            "COHERE_API_KEY": "co-test-key", "COHERE_BASE_URL": others["cohere"].url,
            "ANTHROPIC_API_KEY": FakeAnthropic.api_key, "ANTHROPIC_BASE_URL": others["anthropic"].url,
            "UNIGATE_MASTER_KEY": MASTER}


#: the Claude Code request without what no other dialect can take at all (thinking blocks need a
#: signature's model; the server-side tools), plus Anthropic-only serving options
ANTHROPIC_SURFACE_BODY: dict[str, Any] = {
    **{k: v for k, v in CLAUDE_CODE_BODY.items() if k not in ("thinking", "temperature")},
    "thinking": {"type": "adaptive"},
    "top_k": 40,
    "service_tier": "auto",
    "metadata": {"user_id": "u-1", "session": "s-9"},
}
#: what the Anthropic surface's translation leaves out, whatever the dialect
SURFACE_DROPS = ["context_management", "service_tier", "thinking", "metadata", "cache_control", "thinking blocks"]


@pytest.mark.parametrize(("model", "dialect_drops"), [
    ("openai/o4-mini", []),  # top_k: OpenAI has none, so the surface drops it too
    ("gemini/gemini-2.5-flash", ["user"]),  # metadata.user_id became the canonical user
    ("bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0", ["user"]),
    ("cohere/command-a-reasoning-08-2025", ["user"]),
])
@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_surface_names_every_drop(start_gateway: GatewayFactory, others: dict[str, FakeUpstream],
                                                  model: str, dialect_drops: list[str], stream: bool) -> None:
    gw = await start_gateway(env=env_for(others))
    body = {**copy.deepcopy(ANTHROPIC_SURFACE_BODY), "model": model, "stream": stream}
    del body["messages"][3]  # no system turn mid-conversation for dialects whose fakes refuse it
    status, headers, answer = await post(gw, body)
    assert status == 200, answer
    named = headers["x-unigate-dropped-params"].split(",")
    surface = [*SURFACE_DROPS, *([] if model.startswith(("gemini/", "cohere/")) else ["top_k"])]
    assert sorted(named) == sorted({*surface, *dialect_drops}), named
    # output_config.effort is carried as reasoning_effort to these reasoning models
    assert "output_config.effort" not in named


async def test_effort_for_a_model_that_does_not_reason_is_named(start_gateway: GatewayFactory,
                                                                others: dict[str, FakeUpstream]) -> None:
    gw = await start_gateway(env=env_for(others))
    body = {"model": "openai/gpt-4.1-mini", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}],
            "output_config": {"effort": "low"}}
    status, headers, _ = await post(gw, body)
    assert status == 200 and headers["x-unigate-dropped-params"] == "output_config.effort"
    assert "reasoning_effort" not in others["openai"].last.json
    status, headers, _ = await post(gw, {**body, "model": "openai/o4-mini"})
    assert status == 200 and "x-unigate-dropped-params" not in headers
    assert others["openai"].last.json["reasoning_effort"] == "low"


#: every OpenAI chat field a client may set, at a value that is not the default
OPENAI_BODY: dict[str, Any] = {
    "messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 50, "temperature": 0.5,
    "top_p": 0.9, "stop": ["END"], "seed": 7, "presence_penalty": 0.1, "frequency_penalty": 0.2,
    "logit_bias": {"50256": -100}, "user": "u-1", "safety_identifier": "s-1", "metadata": {"k": "v"},
    "store": True, "service_tier": "flex", "prompt_cache_key": "pk", "verbosity": "low",
    "parallel_tool_calls": False, "prediction": {"type": "content", "content": "x"},
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}],
    "tool_choice": "auto",
}


@pytest.mark.parametrize(("model", "dropped"), [
    ("anthropic/claude-haiku-4-5", ["seed", "presence_penalty", "frequency_penalty", "logit_bias", "metadata", "store",
                                    "service_tier", "prompt_cache_key", "verbosity", "prediction"]),
    ("gemini/gemini-2.5-flash", ["logit_bias", "user", "safety_identifier", "metadata", "store", "service_tier",
                                 "prompt_cache_key", "verbosity", "parallel_tool_calls", "prediction"]),
    ("bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0", [
        "seed", "presence_penalty", "frequency_penalty", "logit_bias", "user", "safety_identifier", "metadata",
        "store", "service_tier", "prompt_cache_key", "verbosity", "parallel_tool_calls", "prediction"]),
    ("cohere/command-a-03-2025", ["logit_bias", "user", "safety_identifier", "metadata", "store", "service_tier",
                                  "prompt_cache_key", "verbosity", "parallel_tool_calls", "prediction"]),
])
async def test_openai_surface_names_every_drop(start_gateway: GatewayFactory, others: dict[str, FakeUpstream],
                                               model: str, dropped: list[str]) -> None:
    gw = await start_gateway(env=env_for(others))
    status, headers, answer = await post(gw, {**OPENAI_BODY, "model": model}, {}, "/v1/chat/completions")
    assert status == 200, answer
    assert sorted(headers["x-unigate-dropped-params"].split(",")) == sorted(dropped)


async def test_openai_surface_to_openai_drops_nothing(start_gateway: GatewayFactory,
                                                      others: dict[str, FakeUpstream]) -> None:
    gw = await start_gateway(env=env_for(others))
    status, headers, _ = await post(gw, {**OPENAI_BODY, "model": "openai/gpt-4.1-mini"}, {}, "/v1/chat/completions")
    assert status == 200 and "x-unigate-dropped-params" not in headers
    assert others["openai"].last.json == {**OPENAI_BODY, "model": "gpt-4.1-mini"}


# ------------------------------------------------------------------ one line per request


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [orjson.loads(r.getMessage()) for r in caplog.records if r.name == "unigate.access"]


async def test_one_structured_access_line_per_request(gw: RunningGateway, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="unigate.access")
    await post(gw, CLAUDE_CODE_BODY)
    await post(gw, {**CLAUDE_CODE_BODY, "stream": True})
    await post(gw, {**CLAUDE_CODE_BODY, "model": "no-such-model"})
    await post(gw, {"model": MODEL}, CLAUDE_CODE_HEADERS)  # no max_tokens: a 400
    async with aiohttp.ClientSession() as s:
        async with s.get(gw.url + "/v1/assistants", headers={"Authorization": f"Bearer {MASTER}"}) as r:
            assert r.status == 404
        async with s.post(gw.url + "/v1/messages", headers={"x-api-key": "sk-wrong-key"}, data=b"{}") as r:
            assert r.status == 401
    lines = access_lines(caplog)
    assert [(x["method"], x["path"], x["status"]) for x in lines] == [
        ("POST", "/v1/messages", 200), ("POST", "/v1/messages", 200), ("POST", "/v1/messages", 404),
        ("POST", "/v1/messages", 400), ("GET", "/v1/assistants", 404), ("POST", "/v1/messages", 401)]
    ok = lines[0]
    assert ok["model"] == MODEL and ok["served"] == f"anthropic/{MODEL}" and ok["deployment"] == f"anthropic/{MODEL}"
    assert ok["request_id"].startswith("req_") and ok["latency_ms"] > 0
    assert lines[1]["served"] == f"anthropic/{MODEL}"  # a stream's line comes at its end
    assert lines[2]["model"] == "no-such-model" and lines[2]["served"] is None and lines[2]["request_id"]
    text = " ".join(r.getMessage() for r in caplog.records)
    assert MASTER not in text and UPSTREAM_KEY not in text and "sk-wrong-key" not in text


async def test_access_log_can_be_switched_off(start_gateway: GatewayFactory, upstream: RecordingAnthropic,
                                              caplog: pytest.LogCaptureFixture) -> None:
    from unigate.config import parse_config

    assert parse_config({"server": {"access_log": False}}, where="t", env={}).server.access_log is False
    caplog.set_level(logging.WARNING, logger="unigate.access")  # above info: no line is even built
    gw = await start_gateway(env={"ANTHROPIC_API_KEY": UPSTREAM_KEY, "ANTHROPIC_BASE_URL": upstream.url,
                                  "UNIGATE_MASTER_KEY": MASTER}, access_log=True)
    await post(gw, CLAUDE_CODE_BODY)
    assert access_lines(caplog) == []


async def test_unknown_paths_get_a_true_404(gw: RunningGateway) -> None:
    async with aiohttp.ClientSession() as s:
        for path in ("/v1/assistants", "/v1/images/generations", "/nope"):
            async with s.post(gw.url + path, headers={"Authorization": f"Bearer {MASTER}"}, json={}) as r:
                assert r.status == 404
                err = (await r.json())["error"]
                assert err["message"].startswith(f"Unknown path {path}: this gateway does not serve it.")
                assert "/v1/chat/completions" in err["message"] and "/v1/messages" in err["message"]
                assert ("under /v1" in err["message"]) is (not path.startswith("/v1/"))
