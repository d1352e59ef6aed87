"""Every bad input and upstream failure gets the documented status and the OpenAI envelope."""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
import openai
import pytest

from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.openai import FakeOpenAI

KEY = {"Authorization": "Bearer sk-master-test"}
MSGS = [{"role": "user", "content": "hi"}]


async def post(gw: RunningGateway, body: Any, headers: dict[str, str] | None = None, path: str = "/v1/chat/completions",
               raw: bytes | None = None) -> tuple[int, dict[str, Any], Any]:
    async with aiohttp.ClientSession() as s:
        data = raw if raw is not None else None
        kw: dict[str, Any] = {"data": data} if raw is not None else {"json": body}
        async with s.post(gw.url + path, headers={**KEY, **(headers or {})}, **kw) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, await r.json(content_type=None)


def assert_envelope(body: Any, status: int, expected_status: int, code: str | None = None, param: str | None = None) -> None:
    assert status == expected_status, body
    assert set(body) == {"error"}
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert isinstance(err["message"], str) and err["message"]
    assert "Traceback" not in err["message"]
    if code is not None:
        assert err["code"] == code
    if param is not None:
        assert err["param"] == param


@pytest.mark.parametrize(
    "raw, param",
    [
        (b"{not json", None),
        (b"", None),
        (b"[1, 2]", None),
        (b'"a string"', None),
    ],
)
async def test_malformed_json_is_400(gw_openai: RunningGateway, raw: bytes, param: str | None) -> None:
    status, headers, body = await post(gw_openai, None, raw=raw, headers={"Content-Type": "application/json"})
    assert_envelope(body, status, 400, param=param)
    assert headers["x-request-id"]


@pytest.mark.parametrize(
    "body, param",
    [
        ({"messages": MSGS}, "model"),
        ({"model": "openai/gpt-4o-mini"}, "messages"),
        ({"model": 5, "messages": MSGS}, "model"),
        ({"model": "openai/gpt-4o-mini", "messages": "hi"}, "messages"),
        ({"model": "openai/gpt-4o-mini", "messages": []}, "messages"),
        ({"model": "openai/gpt-4o-mini", "messages": [{"content": "x"}]}, "messages[0].role"),
        ({"model": "openai/gpt-4o-mini", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"model": "openai/gpt-4o-mini", "messages": [{"role": ["user"], "content": "x"}]}, "messages[0].role"),
        ({"model": "openai/gpt-4o-mini", "messages": [*MSGS, "hi"]}, "messages[1]"),
        ({"model": "openai/gpt-4o-mini", "messages": [*MSGS, {"role": "system"}]}, "messages[1].content"),
        ({"model": "openai/gpt-4o-mini", "messages": [*MSGS, {"role": "tool", "content": "42"}]}, "messages[1].tool_call_id"),
        ({"model": "openai/gpt-4o-mini", "messages": MSGS, "top_p": 1.5}, "top_p"),
        ({"model": "openai/gpt-4o-mini", "messages": MSGS, "response_format": "json"}, "response_format"),
        ({"model": "openai/gpt-4o-mini", "messages": MSGS, "stream_options": True}, "stream_options"),
        ({"model": "openai/gpt-4o-mini", "messages": MSGS, "user": 7}, "user"),
        ({"model": "openai/gpt-4o-mini", "messages": MSGS, "temperature": "hot"}, "temperature"),
        ({"model": "openai/gpt-4o-mini", "messages": MSGS, "temperature": 3}, "temperature"),
        ({"model": "openai/gpt-4o-mini", "messages": MSGS, "max_tokens": "10"}, "max_tokens"),
        ({"model": "openai/gpt-4o-mini", "messages": MSGS, "stream": "yes"}, "stream"),
        ({"model": "openai/gpt-4o-mini", "messages": MSGS, "n": True}, "n"),
        ({"model": "openai/gpt-4o-mini", "messages": MSGS, "stop": [1]}, "stop"),
        ({"model": "openai/gpt-4o-mini", "messages": MSGS, "tools": [{"type": "function"}]}, "tools[0].function.name"),
        ({"model": "openai/gpt-4o-mini", "messages": MSGS, "response_format": {"type": "yaml"}}, "response_format.type"),
    ],
)
async def test_invalid_chat_bodies_are_400(gw_openai: RunningGateway, openai_fake: FakeOpenAI, body: Any, param: str) -> None:
    status, _, resp = await post(gw_openai, body)
    assert_envelope(resp, status, 400, param=param)
    assert openai_fake.requests == [], "an invalid request must not reach the upstream"


@pytest.mark.parametrize(
    "path, body, param",
    [
        ("/v1/embeddings", {"model": "openai/e"}, "input"),
        ("/v1/embeddings", {"model": "openai/e", "input": [1.5]}, "input"),
        ("/v1/completions", {"model": "openai/c"}, "prompt"),
    ],
)
async def test_invalid_other_bodies_are_400(gw_openai: RunningGateway, path: str, body: Any, param: str) -> None:
    status, _, resp = await post(gw_openai, body, path=path)
    assert_envelope(resp, status, 400, param=param)


async def test_unknown_model_is_404(gw_openai: RunningGateway) -> None:
    status, _, body = await post(gw_openai, {"model": "nosuch/model", "messages": MSGS})
    assert_envelope(body, status, 404, code="model_not_found", param="model")
    status, _, body = await post(gw_openai, {"model": "groq/llama", "messages": MSGS})
    assert_envelope(body, status, 404, code="model_not_found")
    assert "GROQ_API_KEY" in body["error"]["message"]


async def test_missing_and_bad_key_are_401(gw_openai: RunningGateway) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(gw_openai.url + "/v1/chat/completions", json={"model": "openai/x", "messages": MSGS}) as r:
            assert_envelope(await r.json(), r.status, 401)
    status, _, body = await post(gw_openai, {"model": "openai/x", "messages": MSGS}, headers={"Authorization": "Bearer wrong"})
    assert_envelope(body, status, 401, code="invalid_api_key")
    c = openai.AsyncOpenAI(base_url=gw_openai.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        await c.chat.completions.create(model="openai/x", messages=MSGS)  # type: ignore[arg-type]


async def test_body_over_limit_is_413(start_gateway: GatewayFactory, openai_fake: FakeOpenAI) -> None:
    gw = await start_gateway({"server": {"max_body_bytes": 2048}},
                             env={"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": openai_fake.url + "/v1"})
    big = {"model": "openai/x", "messages": [{"role": "user", "content": "x" * 5000}]}
    status, _, body = await post(gw, big)
    assert_envelope(body, status, 413, code="request_too_large")
    # chunked upload (no Content-Length) is refused too
    async def gen():  # type: ignore[no-untyped-def]
        yield b'{"model": "openai/x", "messages": [{"role": "user", "content": "'
        yield b"y" * 5000
        yield b'"}]}'
    async with aiohttp.ClientSession() as s, s.post(gw.url + "/v1/chat/completions", data=gen()) as r:
        assert_envelope(await r.json(), r.status, 413)


@pytest.mark.parametrize("upstream_status, expected, code", [
    (429, 429, "fake_429"), (500, 502, "fake_500"), (502, 502, None), (503, 503, None),
    (400, 400, "fake_400"), (401, 401, None), (404, 404, None),
])
async def test_upstream_errors_are_mapped(gw_openai: RunningGateway, upstream_status: int, expected: int, code: str | None) -> None:
    status, headers, body = await post(gw_openai, {"model": f"openai/error-{upstream_status}", "messages": MSGS})
    assert_envelope(body, status, expected, code=code)
    assert "fake upstream error" in body["error"]["message"]
    if upstream_status == 429:
        assert headers["retry-after"] == "7"


async def test_upstream_errors_in_streams_are_mapped_before_first_byte(gw_openai: RunningGateway) -> None:
    status, headers, body = await post(gw_openai, {"model": "openai/error-429", "messages": MSGS, "stream": True})
    assert_envelope(body, status, 429)
    assert headers["retry-after"] == "7"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_connection_failure_is_502(start_gateway: GatewayFactory) -> None:
    gw = await start_gateway(env={"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": f"http://127.0.0.1:{_free_port()}/v1"})
    status, _, body = await post(gw, {"model": "openai/x", "messages": MSGS})
    assert_envelope(body, status, 502, code="upstream_unavailable")


async def test_timeout_is_504(start_gateway: GatewayFactory, openai_fake: FakeOpenAI) -> None:
    gw = await start_gateway(
        {"providers": {"openai": {"timeouts": {"connect": 1, "first_byte": 0.2, "total": 5}}}},
        env={"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": openai_fake.url + "/v1"},
    )
    status, _, body = await post(gw, {"model": "openai/slow-1500", "messages": MSGS})
    assert_envelope(body, status, 504, code="upstream_timeout")


async def test_stream_broken_mid_way_ends_with_error_event(gw_openai: RunningGateway) -> None:
    c = openai.AsyncOpenAI(base_url=gw_openai.url + "/v1", api_key="sk-master-test", max_retries=0)
    got = []
    with pytest.raises(openai.APIError):
        stream = await c.chat.completions.create(model="openai/drop", messages=MSGS, stream=True)  # type: ignore[arg-type]
        async for ch in stream:
            got.append(ch)
    assert got, "chunks before the break reach the client"


async def test_unknown_path_and_method(gw_openai: RunningGateway) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(gw_openai.url + "/v2/nothing") as r:
            assert_envelope(await r.json(), r.status, 404)
            assert r.headers["x-request-id"]
        async with s.get(gw_openai.url + "/v1/chat/completions", headers=KEY) as r:
            assert_envelope(await r.json(), r.status, 405)


async def test_request_id_is_echoed_or_made(gw_openai: RunningGateway) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(gw_openai.url + "/v1/chat/completions", headers={**KEY, "x-request-id": "abc-123"},
                          json={"model": "openai/x", "messages": MSGS}) as r:
            assert r.status == 200 and r.headers["x-request-id"] == "abc-123"
        async with s.post(gw_openai.url + "/v1/chat/completions", headers=KEY, json={"model": "openai/x", "messages": MSGS, "stream": True}) as r:
            assert r.headers["x-request-id"].startswith("req_")
            await r.read()
