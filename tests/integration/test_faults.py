"""Fault injection: every way an upstream can misbehave, through every client surface.

One gateway serves all five dialects (openai, anthropic, gemini, cohere, bedrock) from one
misbehaving fake upstream (tests/fakes/faulty.py), which picks its fault from the requested model
name. Each fault runs against each dialect, through the OpenAI surface (/v1/chat/completions,
and /v1/completions + /v1/embeddings where the dialect has them) and the Anthropic surface
(/v1/messages, and /v1/messages/count_tokens for Anthropic upstreams), streamed and not where
the fault applies. The expectations are the hardening contract (issue 16):

    1  a 200 with malformed or wrongly shaped JSON           -> 502 in the surface's envelope
    2  a stream asked for, something else answered           -> 502 in the envelope
    3  a stream that goes bad after it started               -> 200, normal events, ONE error event
                                                                in the surface's format, clean EOF
    4  error bodies echoing credentials, 50 MiB, HTML        -> mapped status, no secret, message
                                                                <= 2000 chars, no HTML, gateway up
    5  upstream port closed                                  -> 502 naming no address or port
    6  429 with an absurd Retry-After                        -> 429 in the envelope, Retry-After
                                                                absent or an integer 0..86400
    7  a success body / stream event over the configured     -> 502 / in-stream error event
       limits (64 KiB here)

Every reply, whatever the fault, must be free of secrets (upstream keys, the master key),
"Traceback", "HTTP/1.1", "<html" and "127.0.0.1", and never be a 5xx other than 502/503/504.
A healthy-baseline test per endpoint x dialect x mode shows that the fake itself speaks
each dialect correctly, so a failure elsewhere is the gateway's.

The client is plain aiohttp, reading the raw bytes to EOF (a broken chunked body or a second
response written into the first shows up as such, not as a parse error in an SDK).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio
from aiohttp import web

from tests.fakes.faulty import HUGE_LINE_BYTES, FaultyUpstream
from unigate.app import create_app
from unigate.config import _apply_env, parse_config

# ---------------------------------------------------------------------------- the set-up

KEYS = {"openai": "sk-openai-SECRET-1a2b", "anthropic": "sk-ant-SECRET-3c4d", "gemini": "gem-SECRET-5e6f",
        "cohere": "co-SECRET-7a8b"}
AWS_KEY_ID, AWS_SECRET = "AKIDSECRET9C0D", "aws-SECRET-e1f2"
MASTER = "sk-master-SECRET-3a4b"
SECRETS = (*KEYS.values(), AWS_KEY_ID, AWS_SECRET, MASTER)
LIMIT = 65536
CONFIG = {"server": {"max_upstream_body_bytes": LIMIT, "max_stream_event_bytes": LIMIT}}
#: a closed port: nothing listens on discard
CLOSED = "http://127.0.0.1:9"
MAX_MESSAGE = 2000
#: the client stops reading past this: a gateway relaying a 50 MiB message or a 64 MiB line
#: has failed anyway, and the test process stays small
READ_CAP = 4 * 1024 * 1024
CLIENT_TIMEOUT = 20.0

DIALECTS = ("openai", "anthropic", "gemini", "cohere", "bedrock")


def provider_env(base: str | None) -> dict[str, str]:
    """Zero-config providers for all five dialects at `base` (the fake), or at a closed port."""
    root = base or CLOSED
    return {"OPENAI_API_KEY": KEYS["openai"], "OPENAI_BASE_URL": root + "/v1",
            "ANTHROPIC_API_KEY": KEYS["anthropic"], "ANTHROPIC_BASE_URL": root,
            "GEMINI_API_KEY": KEYS["gemini"], "GEMINI_BASE_URL": root,
            "COHERE_API_KEY": KEYS["cohere"], "COHERE_BASE_URL": root,
            "AWS_ACCESS_KEY_ID": AWS_KEY_ID, "AWS_SECRET_ACCESS_KEY": AWS_SECRET, "AWS_REGION": "us-west-2",
            "BEDROCK_BASE_URL": root, "UNIGATE_MASTER_KEY": MASTER, "UNIGATE_LOCAL": "off"}


async def start_gateway(env: dict[str, str], client: str) -> tuple[web.AppRunner, str]:
    """What conftest's start_gateway does, but for a module-scoped gateway."""
    config = {**CONFIG, "server": {**CONFIG["server"], "upstream_client": client}}
    cfg = _apply_env(parse_config(config, where="<test_faults>", env=env), env)
    runner = web.AppRunner(create_app(cfg, env), access_log=None, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@pytest_asyncio.fixture(scope="module")
async def fake() -> AsyncIterator[FaultyUpstream]:
    f = FaultyUpstream()
    await f.start()
    yield f
    await f.stop()


#: every fault against both upstream clients: the lean one (the default) and aiohttp's
@pytest.fixture(scope="module", params=["lean", "aiohttp"])
def client(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest_asyncio.fixture(scope="module")
async def gw(fake: FaultyUpstream, client: str) -> AsyncIterator[str]:
    runner, url = await start_gateway(provider_env(fake.url), client)
    yield url
    await runner.cleanup()


@pytest_asyncio.fixture(scope="module")
async def gw_closed(client: str) -> AsyncIterator[str]:
    """Every provider's base URL is a port nobody listens on."""
    runner, url = await start_gateway(provider_env(None), client)
    yield url
    await runner.cleanup()


# ---------------------------------------------------------------------------- endpoints and faults


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    surface: str  # "openai" | "anthropic": whose envelope and stream format the client gets
    dialects: tuple[str, ...]
    streams: tuple[bool, ...]

    def body(self, model: str, stream: bool) -> dict[str, Any]:
        msgs = [{"role": "user", "content": "hi"}]
        if self.name == "embeddings":
            return {"model": model, "input": "hi"}
        if self.name == "count_tokens":
            return {"model": model, "messages": msgs}
        if self.name == "completions":
            return {"model": model, "prompt": "hi", "max_tokens": 16, "stream": stream}
        return {"model": model, "messages": msgs, "max_tokens": 16, "stream": stream}

    def headers(self) -> dict[str, str]:
        if self.surface == "anthropic":
            return {"x-api-key": MASTER, "anthropic-version": "2023-06-01"}
        return {"Authorization": f"Bearer {MASTER}"}


ENDPOINTS = (
    Endpoint("chat", "/v1/chat/completions", "openai", DIALECTS, (False, True)),
    Endpoint("messages", "/v1/messages", "anthropic", DIALECTS, (False, True)),
    Endpoint("completions", "/v1/completions", "openai", ("openai",), (False, True)),
    Endpoint("embeddings", "/v1/embeddings", "openai", ("openai", "gemini"), (False,)),
    Endpoint("count_tokens", "/v1/messages/count_tokens", "anthropic", ("anthropic",), (False,)),
)


@dataclass(frozen=True)
class Case:
    endpoint: Endpoint
    dialect: str
    fault: str
    stream: bool

    @property
    def model(self) -> str:
        """The model id the client sends (provider ids are the dialect names), also the fake's
        `outcomes` key."""
        return f"{self.dialect}/{self.fault}"


def cases(faults: Iterable[str], streams: tuple[bool, ...]) -> list[Any]:
    """pytest params for each fault x endpoint x dialect x stream mode that applies."""
    return [pytest.param(Case(ep, dialect, fault, stream),
                         id=f"{ep.name}-{dialect}-{fault}-{'stream' if stream else 'json'}")
            for fault in faults
            for ep in ENDPOINTS
            for stream in ep.streams if stream in streams
            for dialect in ep.dialects]


BOTH, JSON_ONLY, STREAM_ONLY = (False, True), (False,), (True,)

#: items 1 and 7: a 200 whose body is unusable (-> 502)
BAD_BODIES = ("badjson", "wronglist", "wrongshape", "bigbody")
#: item 2: a stream asked for, not a stream answered (-> 502)
NOT_A_STREAM = ("jsonfor-stream", "html-for-stream", "text-for-stream")
#: items 3, 4 and 7: the stream goes bad after it started (-> one in-stream error)
BAD_STREAMS = ("garbage-stream", "listevent-stream", "badindex-stream", "bigevent-stream", "hugeline-stream",
               "echo-creds-stream")
#: item 4: error answers -> the status the client must get
ERROR_BODIES = {"echo-creds-401": 401, "huge-error-500": 502, "html-error-400": 400, "html-error-502": 502,
                "html-error-503": 503}
#: item 6 (-> 429)
BAD_RETRY_AFTER = tuple(f"retry-{k}" for k in ("inf", "nan", "ms-nan", "neg", "huge", "garbage"))


# ---------------------------------------------------------------------------- the client


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes
    #: trouble reading the reply (protocol error, timeout, over READ_CAP), None when read to EOF
    problem: str | None

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def describe(self) -> str:
        return f"HTTP {self.status} {self.content_type!r} problem={self.problem} body={self.body[:600]!r}"


async def send(base: str, case: Case) -> Reply:
    ep = case.endpoint
    status, headers = 0, dict[str, str]()
    chunks: list[bytes] = []
    problem: str | None = None
    try:
        async with asyncio.timeout(CLIENT_TIMEOUT), aiohttp.ClientSession() as s:
            body = ep.body(case.model, case.stream)
            async with s.post(base + ep.path, json=body, headers=ep.headers()) as r:
                status, headers = r.status, {k.lower(): v for k, v in r.headers.items()}
                size = 0
                async for piece in r.content.iter_any():
                    chunks.append(piece)
                    size += len(piece)
                    if size > READ_CAP:
                        problem = f"the reply is over {READ_CAP} bytes"
                        break
    except TimeoutError:
        problem = f"no end of the reply within {CLIENT_TIMEOUT} s"
    except aiohttp.ClientError as e:
        problem = f"protocol error reading the reply: {type(e).__name__}: {e}"
    return Reply(status, headers, b"".join(chunks), problem)


# ---------------------------------------------------------------------------- what every reply must be

_PORT_9 = re.compile(r":9(?!\d)")


def assert_clean(reply: Reply) -> None:
    """What no reply may ever contain, whatever went wrong upstream."""
    blob = reply.body + b"\n".join(f"{k}: {v}".encode() for k, v in reply.headers.items())
    for secret in SECRETS:
        assert secret.encode() not in blob, f"secret {secret!r} leaked: {reply.describe()}"
    for bad in (b"Traceback", b"HTTP/1.1", b"127.0.0.1"):
        assert bad not in blob, f"{bad!r} in the reply: {reply.describe()}"
    assert b"<html" not in blob.lower(), f"HTML in the reply: {reply.describe()}"
    assert not (reply.status >= 500 and reply.status not in (502, 503, 504)), reply.describe()


def assert_message(message: Any, reply: Reply) -> str:
    assert isinstance(message, str) and message, f"no error message: {reply.describe()}"
    assert len(message) <= MAX_MESSAGE, f"error message of {len(message)} chars: {message[:300]!r}"
    return message


def assert_envelope(reply: Reply, surface: str, status: int) -> str:
    """An error answered before any byte of a body: `status` in the surface's envelope. The message."""
    assert reply.problem is None, reply.describe()
    assert reply.status == status, f"expected {status}: {reply.describe()}"
    assert reply.content_type.startswith("application/json"), reply.describe()
    try:
        body = orjson.loads(reply.body)
    except orjson.JSONDecodeError:
        pytest.fail(f"the error body is not JSON: {reply.describe()}")
    if surface == "openai":
        assert isinstance(body, dict) and set(body) == {"error"}, reply.describe()
        fields = {"message", "type", "param", "code"}
        assert isinstance(body["error"], dict) and set(body["error"]) == fields, reply.describe()
    else:
        assert isinstance(body, dict) and set(body) == {"type", "error", "request_id"}, reply.describe()
        assert body["type"] == "error", reply.describe()
        assert isinstance(body["error"], dict) and set(body["error"]) == {"type", "message"}, reply.describe()
    return assert_message(body["error"]["message"], reply)


# ---------------------------------------------------------------------------- streams


@dataclass
class Event:
    kind: str  # "chunk" | "error" | "done" | "bad"
    obj: Any
    raw: str


def parse_sse(body: bytes) -> list[tuple[str, str]]:
    """(event name, data) per event; comment lines skipped, multi-line data joined."""
    out: list[tuple[str, str]] = []
    for block in body.replace(b"\r\n", b"\n").split(b"\n\n"):
        name, data = "", list[str]()
        for line in block.decode("utf-8", "replace").split("\n"):
            if not line or line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        if name or data:
            out.append((name, "\n".join(data)))
    return out


_ANTHROPIC_EVENTS = {"message_start", "content_block_start", "content_block_delta", "content_block_stop",
                     "message_delta", "ping"}


def classify(name: str, data: str, surface: str) -> Event:
    if surface == "openai" and data == "[DONE]":
        return Event("done", None, data)
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return Event("bad", None, f"not JSON: {data[:200]!r}")
    if not isinstance(obj, dict):
        return Event("bad", obj, f"not an object: {data[:200]!r}")
    if surface == "openai":
        if "error" in obj:
            ok = isinstance(obj["error"], dict) and set(obj["error"]) >= {"message", "type"}
            return Event("error" if ok else "bad", obj, data[:300])
        ok = (obj.get("object") in ("chat.completion.chunk", "text_completion")
              and isinstance(obj.get("choices"), list))
        return Event("chunk" if ok else "bad", obj, data[:300])
    if name != obj.get("type"):
        return Event("bad", obj, f"event {name!r} with data.type {obj.get('type')!r}")
    if name == "error":
        ok = isinstance(obj.get("error"), dict) and set(obj["error"]) >= {"type", "message"}
        return Event("error" if ok else "bad", obj, data[:300])
    if name == "message_stop":
        return Event("done", obj, data[:300])
    return Event("chunk" if name in _ANTHROPIC_EVENTS else "bad", obj, data[:300])


def stream_events(reply: Reply, surface: str) -> list[Event]:
    """The events of a 200 stream read to a clean EOF; fails on anything malformed."""
    assert reply.problem is None, reply.describe()
    assert reply.status == 200 and reply.content_type.startswith("text/event-stream"), reply.describe()
    events = [classify(n, d, surface) for n, d in parse_sse(reply.body)]
    bad = [e.raw for e in events if e.kind == "bad"]
    assert not bad, f"malformed events {bad} in {reply.describe()}"
    return events


def text_of(events: list[Event], surface: str) -> str:
    out: list[str] = []
    for e in events:
        if e.kind != "chunk":
            continue
        if surface == "openai":
            for c in e.obj["choices"]:
                out.append((c.get("delta") or {}).get("content") or c.get("text") or "")
        elif e.obj["type"] == "content_block_delta":
            out.append(e.obj["delta"].get("text") or "")
    return "".join(out)


def assert_one_error_at_end(reply: Reply, surface: str) -> str:
    """200, normal events, then exactly one error event and the end. The error's message."""
    events = stream_events(reply, surface)
    kinds = [e.kind for e in events]
    assert kinds.count("error") == 1, f"expected one error event, got {kinds}: {reply.describe()}"
    assert kinds[-1] == "error", f"the error event is not the last: {kinds}: {reply.describe()}"
    assert "done" not in kinds, f"a failed stream was also marked complete: {kinds}"
    return assert_message(events[-1].obj["error"]["message"], reply)


# ---------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("case", cases(["ok"], BOTH))
async def test_healthy_baseline(gw: str, case: Case) -> None:
    """The fake speaks each dialect well enough for the gateway: what the faults are measured against."""
    reply = await send(gw, case)
    assert_clean(reply)
    surface, ep = case.endpoint.surface, case.endpoint.name
    if case.stream:
        events = stream_events(reply, surface)
        assert [e.kind for e in events if e.kind != "chunk"] == ["done"], reply.describe()
        assert events[-1].kind == "done", reply.describe()
        assert text_of(events, surface) == "Hello from ok!", reply.describe()
        return
    assert reply.problem is None and reply.status == 200, reply.describe()
    body = orjson.loads(reply.body)
    if ep == "embeddings":
        assert body["data"][0]["embedding"][:1] == [0.1], reply.describe()
    elif ep == "count_tokens":
        assert body == {"input_tokens": 12}
    elif ep == "completions":
        assert body["choices"][0]["text"] == "Hello from ok!"
    elif surface == "openai":
        assert body["choices"][0]["message"]["content"] == "Hello from ok!"
    else:
        assert body["content"] == [{"type": "text", "text": "Hello from ok!"}]


@pytest.mark.parametrize("case", [*cases(BAD_BODIES, JSON_ONLY), *cases(NOT_A_STREAM, STREAM_ONLY)])
async def test_unusable_200_is_502(gw: str, case: Case) -> None:
    """Items 1, 2, 7: nothing has gone to the client yet, so the answer is an error in the envelope."""
    reply = await send(gw, case)
    assert_clean(reply)
    assert_envelope(reply, case.endpoint.surface, 502)


@pytest.mark.parametrize("case", cases(BAD_STREAMS, STREAM_ONLY))
async def test_stream_gone_bad_ends_with_one_error_event(gw: str, fake: FaultyUpstream, case: Case) -> None:
    """Items 3, 4 (in-stream error echoing credentials), 7 (event over the limit)."""
    fake.outcomes.pop(case.model, None)
    reply = await send(gw, case)
    if case.fault == "hugeline-stream":
        # checked first: a gateway that reads the whole line only gets an error event because
        # the fake hung up on it
        outcome = fake.outcomes.get(case.model)
        assert outcome not in ("gave_up", "completed"), (
            f"the gateway kept reading the {HUGE_LINE_BYTES >> 20} MiB line (the fake's write {outcome})")
    assert_clean(reply)
    if case.fault in RELAYED_UNPARSED and byte_relay(case):
        # a surface relays an upstream of its own dialect without parsing every event (the
        # gateway's fast path and the Anthropic pass-through, docs/decisions.md): a well-framed
        # event of the wrong content reaches the client as the upstream wrote it, and the
        # stream still ends as it did
        assert reply.problem is None and reply.status == 200, reply.describe()
        end = b"data: [DONE]\n\n" if case.dialect == "openai" else b'{"type":"message_stop"}\n\n'
        assert reply.body.endswith(end), reply.describe()
        return
    assert_one_error_at_end(reply, case.endpoint.surface)


def byte_relay(case: Case) -> bool:
    return case.dialect == case.endpoint.surface and case.dialect in ("openai", "anthropic")


#: well-framed events whose JSON is wrong: relayed untouched by the byte relay (see above)
RELAYED_UNPARSED = ("garbage-stream", "listevent-stream", "badindex-stream")


@pytest.mark.parametrize("case", cases(ERROR_BODIES, BOTH))
async def test_upstream_error_bodies(gw: str, fake: FaultyUpstream, case: Case) -> None:
    """Item 4: mapped status, no credentials, a bounded message without HTML, and the gateway stays up."""
    fake.outcomes.pop(case.model, None)
    reply = await send(gw, case)
    assert_clean(reply)
    assert_envelope(reply, case.endpoint.surface, ERROR_BODIES[case.fault])
    if case.fault == "huge-error-500":
        assert fake.outcomes.get(case.model) != "completed", \
            "the gateway read the whole 50 MiB error body"
        after = await send(gw, Case(case.endpoint, case.dialect, "ok", case.stream))
        assert after.status == 200 and after.problem is None, f"after the huge error: {after.describe()}"


@pytest.mark.parametrize("case", cases(BAD_RETRY_AFTER, BOTH))
async def test_bad_retry_after(gw: str, case: Case) -> None:
    """Item 6: still a 429 in the envelope; any Retry-After the client gets is a sane integer."""
    reply = await send(gw, case)
    assert_clean(reply)
    assert_envelope(reply, case.endpoint.surface, 429)
    value = reply.headers.get("retry-after")
    if value is not None:
        assert value.isdigit() and int(value) <= 86400, f"Retry-After {value!r}"


@pytest.mark.parametrize("case", cases(["ok"], BOTH))
async def test_connection_refused(gw_closed: str, case: Case) -> None:
    """Item 5: a 502 that tells the client nothing about where the upstream lives."""
    reply = await send(gw_closed, case)
    assert_clean(reply)
    message = assert_envelope(reply, case.endpoint.surface, 502)
    assert "127.0.0.1" not in message and not _PORT_9.search(message), message
    assert "Connect call failed" not in message, message
