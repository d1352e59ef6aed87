"""Hostile client input, one test per class (issue 16): path escapes through the model id, header
values echoed by the HTTP parser, the Server header, bodies that do not decode, JSON too deep to
forward, wrong types in nested fields that translators read. Hostile upstreams are in
test_faults.py; the fuzz test is test_fuzz.py."""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio

from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.gemini import API_KEY as GEMINI_KEY
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI

MASTER = "sk-master-hardening-7f3a"
AUTH = {"Authorization": f"Bearer {MASTER}"}
MSGS = [{"role": "user", "content": "hi"}]


@pytest_asyncio.fixture
async def fakes() -> AsyncIterator[tuple[FakeOpenAI, FakeAnthropic, FakeGemini]]:
    o, a, g = FakeOpenAI(), FakeAnthropic(), FakeGemini()
    for f in (o, a, g):
        await f.start()
    yield o, a, g
    for f in (o, a, g):
        await f.stop()


@pytest_asyncio.fixture
async def gw(start_gateway: GatewayFactory, fakes: tuple[FakeOpenAI, FakeAnthropic, FakeGemini]) -> RunningGateway:
    o, a, g = fakes
    return await start_gateway(env={"OPENAI_API_KEY": "sk-upstream-openai-1", "OPENAI_BASE_URL": o.url + "/v1",
                                    "ANTHROPIC_API_KEY": a.api_key, "ANTHROPIC_BASE_URL": a.url,
                                    "GEMINI_API_KEY": GEMINI_KEY, "GEMINI_BASE_URL": g.url,
                                    "UNIGATE_MASTER_KEY": MASTER})


async def post(gw: RunningGateway, path: str, body: Any = None, *, raw: bytes | None = None,
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    data = raw if raw is not None else orjson.dumps(body)
    async with aiohttp.ClientSession() as s:
        async with s.post(gw.url + path, data=data, headers={**AUTH, "Content-Type": "application/json",
                                                               **(headers or {})}) as r:
            return r.status, dict(r.headers), await r.json(content_type=None)


async def raw_http(port: int, request: bytes) -> bytes:
    """One request written byte for byte (aiohttp's client refuses to send a NUL in a header)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(65536), 5)
    finally:
        writer.close()


# ------------------------------------------------------------------ path escape through the model id


@pytest.mark.parametrize("model", ["gemini/../../v1beta/cachedContents#", "gemini/x/../../../admin",
                                   "gemini/gemini-2.0-flash?alt=json", "gemini/a%2f..%2fb", "gemini/ok/./x",
                                   "gemini/x\\..\\y", "gemini/x y", "gemini/models//x"])
async def test_a_model_id_cannot_leave_its_url_path(gw: RunningGateway, fakes: Any, model: str) -> None:
    status, _, body = await post(gw, "/v1/chat/completions", {"model": model, "messages": MSGS})
    assert status == 400 and body["error"]["param"] == "model", body
    status, _, body = await post(gw, "/v1/messages", {"model": model, "max_tokens": 5, "messages": MSGS})
    assert status == 400 and body["type"] == "error", body
    assert fakes[2].requests == []  # the Gemini key went nowhere


def test_a_configured_deployment_with_an_escaping_model_stops_start_up() -> None:
    from unigate.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match=r"\$\.deployments\[0\]\.model"):
        parse_config({"deployments": [{"name": "x", "model": "gemini/../../admin"}]}, where="<test>")


# ------------------------------------------------------------------ header values never echoed


async def test_a_malformed_header_is_refused_without_quoting_it(gw: RunningGateway,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    answer = await raw_http(gw.port, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                            b"Authorization: Bearer " + MASTER.encode() + b"\x00junk\r\nContent-Length: 2\r\n\r\n{}")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and b" 400 " in head.split(b"\r\n")[0], answer
    assert MASTER.encode() not in answer and b"junk" not in answer
    err = orjson.loads(body)["error"]
    assert err["type"] == "invalid_request_error" and err["code"] == "bad_http_request"
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert MASTER not in logged and "junk" not in logged
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_the_server_header_names_no_versions(gw: RunningGateway) -> None:
    async with aiohttp.ClientSession() as s:
        for path in ("/health/live", "/v1/models", "/nope"):
            async with s.get(gw.url + path, headers=AUTH) as r:
                assert r.headers["Server"] == "unigate"
    answer = await raw_http(gw.port, b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
    assert b"aiohttp" not in answer and b"Python/" not in answer


# ------------------------------------------------------------------ bodies that do not decode


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/messages",
                                  "/v1/messages/count_tokens", "/chat/completions"])
@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd", "x-unknown"])
async def test_a_body_that_is_not_its_content_encoding_is_a_400(gw: RunningGateway, path: str, encoding: str) -> None:
    status, _, body = await post(gw, path, raw=b'{"model": "x"}', headers={"Content-Encoding": encoding})
    assert status == 400, body
    message = body["error"]["message"]
    assert "Traceback" not in message and MASTER not in message


async def test_a_real_gzip_body_is_read(gw: RunningGateway) -> None:
    raw = gzip.compress(orjson.dumps({"model": "openai/gpt-4o-mini", "messages": MSGS}))
    status, _, body = await post(gw, "/v1/chat/completions", raw=raw, headers={"Content-Encoding": "gzip"})
    assert status == 200 and body["choices"][0]["message"]["content"], body


# ------------------------------------------------------------------ JSON too deep to forward


@pytest.mark.parametrize("depth", [65, 254, 255, 600, 1023])
async def test_json_nested_deeper_than_the_limit_is_a_400(gw: RunningGateway, depth: int) -> None:
    nested = "[" * depth + "]" * depth
    for path in ("/v1/chat/completions", "/v1/messages", "/v1/embeddings"):
        raw = ('{"model": "openai/gpt-4o-mini", "max_tokens": 5, "input": "x", "messages": [{"role": "user", '
               '"content": "hi"}], "metadata": {"deep": ' + nested + "}}").encode()
        status, _, body = await post(gw, path, raw=raw)
        assert status == 400, (path, body)
        # past 1,023 levels orjson itself refuses to read it; below, the gateway's limit does
        assert "levels deep" in str(body) or "depth limit" in str(body), body


async def test_json_within_the_limit_and_many_brackets_in_strings_pass(gw: RunningGateway) -> None:
    text = "{[" * 5000  # brackets inside a string are not nesting
    nested: Any = {"a": 1}
    for _ in range(60):
        nested = {"n": nested}
    status, _, body = await post(gw, "/v1/chat/completions", {"model": "openai/gpt-4o-mini", "metadata": nested,
                                                             "messages": [{"role": "user", "content": text}]})
    assert status == 200, body


# ------------------------------------------------------------------ wrong types in nested fields


_BAD_NESTED: list[tuple[dict[str, Any], str]] = [
    *[({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None, "tool_calls": v}]},
       "messages[1].tool_calls") for v in (1, True, 1.5, "x", {"a": 1})],
    ({"messages": [{"role": "assistant", "content": "", "tool_calls": [1]}]}, "messages[0].tool_calls[0]"),
    ({"messages": [{"role": "assistant", "content": "", "tool_calls": [{"function": "f"}]}]},
     "messages[0].tool_calls[0].function"),
    ({"messages": [{"role": "assistant", "content": "", "tool_calls": [{"id": "c", "function": {"name": "f",
                                                                                               "arguments": {}}}]}]},
     "messages[0].tool_calls[0].function.arguments"),
    *[({"reasoning_effort": v}, "reasoning_effort") for v in ([], {}, 3, "extreme")],
    ({"messages": [{"role": "user", "content": [1]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [{"type": 5}]}]}, "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": ["a"]}]}]}, "messages[0].content[0].text"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": 7}}]}]},
     "messages[0].content[0].image_url.url"),
    ({"messages": [{"role": "user", "content": "hi", "name": 5}]}, "messages[0].name"),
    ({"messages": [{"role": "tool", "content": "r", "tool_call_id": ["x"]}]}, "messages[0].tool_call_id"),
    ({"tool_choice": 5}, "tool_choice"),
    ({"tool_choice": "sometimes"}, "tool_choice"),
    ({"tool_choice": {"type": "function", "function": "f"}}, "tool_choice.function.name"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": "x"}}]}, "tools[0].function.parameters"),
    ({"stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": []}}},
     "response_format.json_schema.schema"),
]


@pytest.mark.parametrize("model", ["anthropic/claude-3-5-haiku-latest", "gemini/gemini-2.0-flash", "openai/gpt-4o-mini"])
@pytest.mark.parametrize("patch, param", _BAD_NESTED)
async def test_wrong_nested_types_are_a_400_naming_the_field(gw: RunningGateway, fakes: Any, model: str,
                                                             patch: dict[str, Any], param: str) -> None:
    body = {"model": model, "messages": MSGS, **patch}
    status, _, answer = await post(gw, "/v1/chat/completions", body)
    assert status == 400, answer
    assert answer["error"]["param"] == param, answer
    assert all(not f.requests for f in fakes)  # refused before any upstream was called


async def test_the_anthropic_surface_checks_the_canonical_request_too(gw: RunningGateway, fakes: Any) -> None:
    body = {"model": "gemini/gemini-2.0-flash", "max_tokens": 5,
            "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": 5}}]}]}
    status, _, answer = await post(gw, "/v1/messages", body)
    assert status == 400 and answer["type"] == "error", answer
    assert not fakes[2].requests


@pytest.mark.parametrize("dims", [[1], {"a": 1}, "8", 0, 1.5])
async def test_embeddings_dimensions_must_be_a_positive_integer(gw: RunningGateway, fakes: Any, dims: Any) -> None:
    status, _, answer = await post(gw, "/v1/embeddings", {"model": "gemini/text-embedding-004", "input": "x",
                                                          "dimensions": dims})
    assert status == 400 and answer["error"]["param"] == "dimensions", answer
    assert not fakes[2].requests


@pytest.mark.parametrize("expect", ["0", "200-ok", "100-continue, x"])
async def test_an_unknown_expectation_gets_the_surfaces_envelope(gw: RunningGateway, expect: str) -> None:
    status, _, answer = await post(gw, "/v1/chat/completions", {"model": "x"}, headers={"Expect": expect})
    assert status == 417 and answer["error"]["code"] == "expectation_failed", answer
    status, _, answer = await post(gw, "/v1/messages", {"model": "x"}, headers={"Expect": expect})
    assert status == 417 and answer["type"] == "error", answer


async def test_a_path_with_a_newline_is_an_enveloped_404(gw: RunningGateway) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(gw.url + "/%0A", headers=AUTH) as r:
            assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"
