"""Property-based fuzzing of every endpoint's request body and headers (issue 16).

One gateway and three fake upstreams (OpenAI, Anthropic, Gemini) run for the whole module on a
background thread's event loop; hypothesis drives requests at it from the (synchronous) test
functions through `asyncio.run_coroutine_threadsafe`. That keeps hypothesis' own loop of
examples out of pytest-asyncio's session loop, which it does not mix well with.

The properties, for every generated request:

- the status is below 500 (the upstreams are healthy, so 502/503/504 would be wrong too);
- the body is JSON in the surface's error envelope (4xx) or the endpoint's answer (200), or
  for a 200 stream a well-formed SSE body that ends cleanly;
- no "Traceback", no master key and no upstream key in the body or the headers;
- the gateway still answers /health/live afterwards;
- every fake upstream only ever received requests on its own API paths (the path-escape
  check for model ids that end up in a URL, like Gemini's), never with the client's key.

Every distinct finding so far is pinned as an @example (see "regression examples"), so each
run checks it whatever the random draws; hypothesis runs those first and, if one fails, reports
it without going on to the generated examples.

Bounded for CI: each test has a fixed `max_examples` (2,350 generated examples plus 434 fixed
path-escape requests: about 25 s here when every property holds, a few seconds when an explicit
example fails);
UNIGATE_FUZZ_EXAMPLES=<n> sets every test's count to n for a longer local run. Under CI
(CI=true) the examples are derandomized, so a CI failure reproduces locally with CI=true.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import warnings
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, unquote

import aiohttp
import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict
from yarl import URL

from tests import fuzz_strategies as fs
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.anthropic import error_body as anthropic_error_body
from tests.fakes.gemini import API_KEY as GEMINI_KEY
from tests.fakes.gemini import FakeGemini, google_error
from tests.fakes.openai import FakeOpenAI
from unigate.app import create_app
from unigate.config import _apply_env, parse_config

T = TypeVar("T")

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# distinctive secrets: any of them in a client-visible byte is a leak
MASTER = "sk-master-FUZZ-c0ffee42d00d"
OPENAI_KEY = "sk-upstream-openai-FUZZ-5e1f"
ANTHROPIC_KEY = "sk-ant-upstream-FUZZ-9d8c"
SECRETS: tuple[str, ...] = (MASTER, OPENAI_KEY, ANTHROPIC_KEY, GEMINI_KEY)
#: a value put in non-credential headers by the raw-socket test: it must not be echoed either
MARKER = "zq-header-marker-7731"
#: small, so the over-limit cases are cheap (the gzip bomb inflates to 4 MiB)
MAX_BODY = 256 * 1024


def _examples(n: int) -> int:
    override = os.environ.get("UNIGATE_FUZZ_EXAMPLES")
    return int(override) if override else n


def fuzz_settings(n: int) -> Callable[[T], T]:
    return settings(
        max_examples=_examples(n),
        deadline=None,  # a request's latency is not the property
        derandomize=IN_CI,  # reproducible in CI
        database=None,  # no example database to keep: a failure prints a @reproduce_failure blob
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                               HealthCheck.large_base_example],
        print_blob=True,
    )


# ---------------------------------------------------------------------------------- healthy fakes
#
# The fakes are strict like the real APIs and answer 400 to a bad native request: fine. But they
# index into the request body without checks (a `tools: [5]` the gateway forwards makes
# FakeAnthropic raise), and aiohttp turns that into a 500, which the gateway would rightly map to
# 502. A real API answers such a request with a 400, so these subclasses do the same, and keep
# the crash in `crashes` (reported as a warning: the gateway forwarded something it could have
# refused itself). They also record the *raw* path and query, for the path-escape check
# (`Received.path` is percent-decoded).


@dataclass
class RawSeen:
    method: str
    raw_path: str
    raw_query: str
    headers: dict[str, str]
    body: bytes


class _Healthy(Protocol):
    raw: list[RawSeen]
    crashes: list[str]


def _guard(fake: _Healthy, native_error: Callable[[str], Any]) -> Any:
    @web.middleware
    async def guard(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        fake.raw.append(RawSeen(request.method, request.url.raw_path, request.url.raw_query_string,
                                dict(request.headers), await request.read()))
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception as e:  # noqa: BLE001 - the fake's own bug on an odd request: answer like the real API
            fake.crashes.append(f"{type(fake).__name__} {request.path}: {type(e).__name__}: {e}"[:300])
            return web.json_response(native_error(f"fake could not read the request: {type(e).__name__}"), status=400)

    return guard


@dataclass
class HealthyOpenAI(FakeOpenAI):
    raw: list[RawSeen] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)

    def setup(self, app: web.Application) -> None:
        super().setup(app)
        app.middlewares.append(_guard(self, lambda m: {"error": {"message": m, "type": "invalid_request_error",
                                                                 "param": None, "code": None}}))

    async def _prelude(self, model: str) -> web.Response | None:
        return None  # no error-<status> / slow-<ms> behaviours: this upstream is always healthy


@dataclass
class HealthyAnthropic(FakeAnthropic):
    raw: list[RawSeen] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)

    def setup(self, app: web.Application) -> None:
        super().setup(app)  # FakeAnthropic's routes, count_tokens too (this class's own answer)
        app.middlewares.append(_guard(self, lambda m: anthropic_error_body("invalid_request_error", m)))

    async def count_tokens(self, request: web.Request) -> web.Response:
        """A fixed count for any well-formed body (FakeAnthropic's own refuses more)."""
        if request.headers.get("x-api-key") != self.api_key:
            return web.json_response(anthropic_error_body("authentication_error", "invalid x-api-key"), status=401)
        body = orjson.loads(await request.read())
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not isinstance(body.get("model"), str):
            return web.json_response(anthropic_error_body("invalid_request_error", "messages and model are required"), status=400)
        return web.json_response({"input_tokens": 12})


@dataclass
class HealthyGemini(FakeGemini):
    raw: list[RawSeen] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)

    def setup(self, app: web.Application) -> None:
        super().setup(app)
        app.middlewares.append(_guard(self, lambda m: google_error(400, m)))


#: what each upstream's API is: raw path (query apart) -> allowed
OPENAI_UPSTREAM_PATHS = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models"})
ANTHROPIC_UPSTREAM_PATHS = frozenset({"/v1/messages", "/v1/messages/count_tokens"})
GEMINI_UPSTREAM_PATH = re.compile(
    r"^/(v1|v1beta)/(models|tunedModels)/(?P<model>[^/?#]+):(generateContent|streamGenerateContent|batchEmbedContents|countTokens)$"
)


def _upstream_problems(name: str, seen: RawSeen) -> list[str]:
    out: list[str] = []
    if name == "gemini":
        m = GEMINI_UPSTREAM_PATH.match(seen.raw_path)
        # one path segment, and not one a server could decode into a dot segment
        if m is None or ".." in unquote(m.group("model")).split("/") or unquote(m.group("model")) in (".", ".."):
            out.append(f"gemini upstream got a request outside its API: {seen.method} {seen.raw_path}?{seen.raw_query}")
        elif seen.raw_query not in ("", "alt=sse"):
            out.append(f"gemini upstream got an unexpected query: {seen.raw_path}?{seen.raw_query}")
    else:
        allowed = OPENAI_UPSTREAM_PATHS if name == "openai" else ANTHROPIC_UPSTREAM_PATHS
        if seen.raw_path not in allowed or seen.raw_query:
            out.append(f"{name} upstream got a request outside its API: {seen.method} {seen.raw_path}?{seen.raw_query}")
    blob = repr(seen.headers).encode() + seen.body
    if MASTER.encode() in blob:
        out.append(f"{name} upstream received the client's master key")
    return out


# ---------------------------------------------------------------------------------- the harness


@dataclass
class Answer:
    status: int
    headers: CIMultiDict[str]
    raw_headers: bytes
    body: bytes
    #: the body did not end cleanly (a broken chunked encoding, a reset): str of the error
    body_error: str | None = None

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip().lower()

    def excerpt(self) -> str:
        return f"HTTP {self.status} {self.content_type} {self.body[:400]!r}" + (f" [body error: {self.body_error}]" if self.body_error else "")


class Harness:
    """The gateway and the fakes on a private event loop in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-gateway", daemon=True)
        self.fakes: dict[str, Any] = {}
        self._seen: dict[str, int] = {}
        self.port = 0

    def call(self, coro: Awaitable[T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def start(self) -> None:
        self.thread.start()
        self.call(self._start())

    def stop(self) -> None:
        try:
            self.call(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)

    async def _start(self) -> None:
        self.fakes = {"openai": HealthyOpenAI(), "anthropic": HealthyAnthropic(api_key=ANTHROPIC_KEY), "gemini": HealthyGemini()}
        for f in self.fakes.values():
            await f.start()
        env = {
            "UNIGATE_LOCAL": "off",
            "UNIGATE_MASTER_KEY": MASTER,
            "OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": self.fakes["openai"].url + "/v1",
            "ANTHROPIC_API_KEY": ANTHROPIC_KEY, "ANTHROPIC_BASE_URL": self.fakes["anthropic"].url,
            "GEMINI_API_KEY": GEMINI_KEY, "GEMINI_BASE_URL": self.fakes["gemini"].url,
        }
        # as tests/conftest.py start_gateway does
        cfg = _apply_env(parse_config({"server": {"max_body_bytes": MAX_BODY}}, where="<fuzz>", env=env), env)
        app = create_app(cfg, env)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        # a new connection per request: an answer that leaves the connection broken must not
        # spill into the next example
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True),
                                             timeout=aiohttp.ClientTimeout(total=30), auto_decompress=False)

    async def _stop(self) -> None:
        await self.session.close()
        await self.runner.cleanup()
        for f in self.fakes.values():
            await f.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ requests

    async def _request(self, method: str, path: str, body: bytes | None, headers: list[tuple[str, str]],
                       skip: tuple[str, ...]) -> Answer:
        url = URL(self.url + path, encoded=True)
        try:
            async with self.session.request(method, url, data=body, headers=CIMultiDict(headers), skip_auto_headers=skip,
                                            allow_redirects=False) as r:
                raw_headers = b"\r\n".join(k + b": " + v for k, v in r.raw_headers)
                try:
                    data, err = await r.read(), None
                except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as e:
                    data, err = r.content.read_nowait(), f"{type(e).__name__}: {e}"
                return Answer(r.status, CIMultiDict(r.headers), raw_headers, data, err)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientResponseError) as e:
            # no (parsable) answer at all: the gateway dropped the connection; status 0 says so
            return Answer(0, CIMultiDict(), b"", b"", f"{type(e).__name__}: {e}")

    def request(self, method: str, path: str, body: bytes | None = None, headers: list[tuple[str, str]] | None = None,
                skip: tuple[str, ...] = ()) -> Answer:
        return self.call(self._request(method, path, body, headers or [], skip), timeout=45)

    def post_json(self, path: str, body: Any, headers: list[tuple[str, str]] | None = None) -> Answer:
        headers = headers or []
        if not any(k.lower() == "content-type" for k, _ in headers):  # a junk one replaces it
            headers = [("Content-Type", "application/json"), *headers]
        return self.request("POST", path, fs.dump_json(body), headers, skip=("Content-Type",))

    async def _raw(self, data: bytes) -> bytes:
        """A minimal HTTP/1.1 client: writes `data` as is, reads to EOF (the request says
        Connection: close, and aiohttp closes after refusing a request anyway)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(data)
            await writer.drain()
            return await asyncio.wait_for(reader.read(), 20)
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    def raw(self, data: bytes) -> bytes:
        return self.call(self._raw(data), timeout=30)

    # ------------------------------------------------------------------ after every example

    def still_alive(self) -> None:
        a = self.request("GET", "/health/live")
        assert a.status == 200, f"the gateway stopped answering /health/live: {a.excerpt()}"

    def upstream_problems(self) -> list[str]:
        """Problems in what the fakes received since the last call."""
        out: list[str] = []
        for name, fake in self.fakes.items():
            start = self._seen.get(name, 0)
            for seen in fake.raw[start:]:
                out.extend(_upstream_problems(name, seen))
            self._seen[name] = len(fake.raw)
        return out


@pytest.fixture(scope="module")
def h() -> Iterator[Harness]:
    harness = Harness()
    harness.start()
    try:
        yield harness
    finally:
        crashes = sorted({c for f in harness.fakes.values() for c in f.crashes})
        harness.stop()
        if crashes:
            warnings.warn("the fakes could not read some requests the gateway forwarded (answered as a 400; the "
                          "gateway could have refused them itself):\n  " + "\n  ".join(crashes[:20]), stacklevel=1)


# ---------------------------------------------------------------------------------- properties


def surface_of(method: str, path: str) -> str:
    return "anthropic" if method == "POST" and path in fs.ANTHROPIC_PATHS else "openai"


def check_openai_error(obj: Any, where: str) -> None:
    assert isinstance(obj, dict) and set(obj) == {"error"}, f"{where}: not the OpenAI error envelope: {obj!r:.300}"
    err = obj["error"]
    assert isinstance(err, dict) and set(err) == {"message", "type", "param", "code"}, f"{where}: bad error object {err!r:.300}"
    assert isinstance(err["message"], str) and err["message"], f"{where}: empty error message"
    assert isinstance(err["type"], str), f"{where}: error type {err['type']!r}"


def check_anthropic_error(obj: Any, where: str) -> None:
    assert isinstance(obj, dict) and obj.get("type") == "error", f"{where}: not the Anthropic error envelope: {obj!r:.300}"
    err = obj.get("error")
    assert isinstance(err, dict) and isinstance(err.get("type"), str) and isinstance(err.get("message"), str) \
        and err["message"], f"{where}: bad Anthropic error object {err!r:.300}"


def check_success(method: str, path: str, obj: Any) -> None:
    where = f"200 on {method} {path}"
    if method != "POST":
        if path == "/v1/models" or path == "/models":
            assert isinstance(obj, dict) and obj.get("object") == "list", f"{where}: {obj!r:.300}"
        elif path.startswith("/v1/models/"):
            assert isinstance(obj, dict) and obj.get("object") == "model", f"{where}: {obj!r:.300}"
        return
    if path in ("/v1/chat/completions", "/chat/completions"):
        assert isinstance(obj, dict) and obj.get("object") == "chat.completion" and isinstance(obj.get("choices"), list), \
            f"{where}: not a chat completion: {obj!r:.300}"
    elif path == "/v1/completions":
        assert isinstance(obj, dict) and obj.get("object") == "text_completion", f"{where}: {obj!r:.300}"
    elif path in ("/v1/embeddings", "/embeddings"):
        assert isinstance(obj, dict) and obj.get("object") == "list" and isinstance(obj.get("data"), list), f"{where}: {obj!r:.300}"
    elif path == "/v1/messages":
        assert isinstance(obj, dict) and obj.get("type") == "message" and isinstance(obj.get("content"), list), \
            f"{where}: not an Anthropic message: {obj!r:.300}"
    elif path == "/v1/messages/count_tokens":
        assert isinstance(obj, dict) and type(obj.get("input_tokens")) is int, f"{where}: {obj!r:.300}"


def check_sse(surface: str, body: bytes, where: str) -> None:
    text = body.decode("utf-8")  # raises on invalid UTF-8: a finding
    assert "HTTP/1.1" not in text, f"{where}: a second response inside the stream"
    events = [e for e in re.split(r"\r?\n\r?\n", text) if e.strip()]
    errors = 0
    for i, ev in enumerate(events):
        name, data = None, []
        for line in re.split(r"\r?\n", ev):
            if line.startswith(":"):
                continue
            k, _, v = line.partition(":")
            v = v.removeprefix(" ")
            if k == "event":
                name = v
            elif k == "data":
                data.append(v)
        if not data:
            continue  # only comments (": keep-alive"): nothing to parse
        payload = "\n".join(data)
        if payload == "[DONE]":
            assert surface == "openai", f"{where}: [DONE] on the Anthropic surface"
            continue
        assert errors == 0, f"{where}: events after the error event: {ev!r:.200}"
        obj = orjson.loads(payload)
        if surface == "openai":
            assert isinstance(obj, dict), f"{where}: event {i} is not an object: {payload!r:.200}"
            if "error" in obj:
                check_openai_error(obj, f"{where} in-stream error")
                errors += 1
        else:
            assert isinstance(obj, dict) and obj.get("type") == name, f"{where}: event {name!r} with data {payload!r:.200}"
            if name == "error":
                check_anthropic_error(obj, f"{where} in-stream error")
                errors += 1
    if surface == "anthropic" and errors == 0:
        assert events and "message_stop" in events[-1], f"{where}: the Anthropic stream did not end with message_stop"


#: a Python stack trace, or a frame line of one (the input may contain the bare word; the
#: strategies keep "Traceback" out of generated text, so the bare word is checked too)
_TRACE = re.compile(rb'Traceback|File "[^"]+", line \d+')


def _has_trace(data: bytes) -> bool:
    return _TRACE.search(data) is not None


def check_answer(a: Answer, method: str, path: str, what: str) -> None:
    """The properties every answer must have."""
    where = f"{method} {path} ({what})"
    assert a.status != 0, f"{where}: the gateway closed the connection without an answer ({a.body_error})"
    assert a.status < 500, f"{where}: a 5xx from the gateway against healthy upstreams: {a.excerpt()}"
    blob = a.raw_headers + b"\r\n\r\n" + a.body
    for s in SECRETS:
        assert s.encode() not in blob, f"{where}: the answer contains a secret ({s[:12]}...): {a.excerpt()}"
    assert not _has_trace(blob), f"{where}: a stack trace in the answer: {a.excerpt()}"
    assert a.body_error is None, f"{where}: the body did not end cleanly: {a.excerpt()}"
    if method == "HEAD" or a.status in (204, 304):
        return
    surface = surface_of(method, path)
    if a.status == 200 and a.content_type == "text/event-stream":
        check_sse(surface, a.body, where)
        return
    known = (method == "POST" and path in fs.BODIES) or (
        method == "GET" and (path in ("/v1/models", "/models") or path.startswith("/v1/models/")))
    if a.status == 200 and not known:
        return  # /health, /metrics and the like: not an API answer
    assert a.content_type == "application/json", f"{where}: the answer is not JSON: {a.excerpt()}"
    try:
        obj = orjson.loads(a.body)
    except orjson.JSONDecodeError:
        raise AssertionError(f"{where}: the answer does not parse as JSON: {a.excerpt()}") from None
    if a.status >= 400:
        if a.status == 400 and isinstance(obj, dict) and (obj.get("error") or {}).get("code") == "bad_http_request":
            # refused by the HTTP parser before any route is known: the default (OpenAI) envelope
            check_openai_error(obj, where)
        elif surface == "anthropic":
            check_anthropic_error(obj, where)
        elif method != "POST" and path in fs.ANTHROPIC_PATHS:
            pass  # a wrong method on an Anthropic path: either envelope will do
        else:
            check_openai_error(obj, where)
    elif a.status == 200:
        check_success(method, path, obj)


def after_example(h: Harness) -> None:
    h.still_alive()
    problems = h.upstream_problems()
    assert not problems, "; ".join(problems[:5])


def with_auth(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The master key first (a later junk Authorization header is a duplicate the gateway ignores)."""
    return [("Authorization", f"Bearer {MASTER}"), *headers]


# ---------------------------------------------------------------------------------- regression examples
#
# Each distinct finding of this fuzzer, as the smallest input found, pinned with @example so
# that every run (CI's bounded, derandomized one included) checks it, whatever the random
# draws. They add to the generated examples, they do not replace any strategy.

HI = [{"role": "user", "content": "hi"}]
_F = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}


def _gemini_tool(parameters: Any) -> dict[str, Any]:
    return {"model": "gemini/gemini-2.0-flash", "messages": HI,
            "tools": [{"type": "function", "function": {"name": "f", "parameters": parameters}}]}


CHAT_FINDINGS: list[tuple[str, Any, list[tuple[str, str]]]] = [
    # the deprecated `functions` is not validated; the Anthropic adapter iterates it
    ("/v1/chat/completions", {"model": "anthropic/claude-3-5-haiku-latest", "messages": HI, "functions": True}, []),
    ("/v1/chat/completions", {"model": "anthropic/claude-3-5-haiku-latest", "messages": HI, "functions": "none"}, []),
    ("/v1/chat/completions", {"model": "anthropic/claude-3-5-haiku-latest", "messages": HI, "functions": [5]}, []),
    # JSON Schema `type` / `required` of an unexpected shape in the Gemini schema translator
    ("/v1/chat/completions", _gemini_tool({"type": "object", "properties": {"x": {"type": [["string"]]}}}), []),
    ("/v1/chat/completions", _gemini_tool({"type": "object", "properties": {"x": {"type": [{}]}}}), []),
    ("/v1/chat/completions", _gemini_tool({"type": "object", "properties": {"a": {"type": "string"}}, "required": 1.5}), []),
    ("/v1/chat/completions", _gemini_tool({"type": "object", "properties": {"a": {"type": "string"}}, "required": [["a"]]}), []),
    # content parts of the wrong shape in the Gemini request translator
    ("/v1/chat/completions", {"model": "gemini/gemini-2.0-flash", "messages": [{"role": "user", "content": [{"type": "file", "file": 5}]}]}, []),
    ("/v1/chat/completions", {"model": "gemini/gemini-2.0-flash", "messages": HI, "tools": [_F],
                              "tool_choice": {"type": "allowed_tools", "allowed_tools": {"tools": [[]]}}}, []),
    ("/v1/chat/completions", {"model": "gemini/gemini-2.0-flash", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": 1.5}]}]}, []),
    # a model id that leaves the Gemini URL path, or breaks a response header
    ("/v1/chat/completions", {"model": "gemini/../../v1beta/cachedContents#", "messages": HI}, []),
    ("/v1/chat/completions", {"model": "gemini/gemini-2.0-flash:generateContent?key=stolen#", "messages": HI}, []),
    ("/v1/chat/completions", {"model": "openai/gpt-4o-mini\r\nX-Injected: 1", "messages": HI}, []),
    ("/v1/chat/completions", {"model": "anthropic/claude\x00", "messages": HI}, []),
    # more nesting than orjson writes (255), less than it reads (1024)
    ("/v1/chat/completions", {"model": "openai/gpt-4o-mini", "messages": HI, "metadata": {"k": fs.nested(300)}}, []),
    # `Expect:` other than 100-continue: aiohttp's own 417 text/plain, outside the handlers
    ("/v1/chat/completions", {"model": "openai/gpt-4o-mini", "messages": HI}, [("Expect", "0")]),
]


def _examples_for(cases: list[tuple[str, Any, list[tuple[str, str]]]]) -> Callable[[T], T]:
    def deco(fn: T) -> T:
        for path, body, extra in reversed(cases):
            fn = example(path_body=(path, body), extra=extra)(fn)  # type: ignore[type-var]
        return fn

    return deco


# ---------------------------------------------------------------------------------- tests: bodies


@fuzz_settings(500)
@_examples_for(CHAT_FINDINGS)
@given(path_body=fs.path_and_body(["/v1/chat/completions", "/chat/completions"]), extra=fs.junk_headers)
def test_chat_completions_plausible_bodies(h: Harness, path_body: tuple[str, Any], extra: list[tuple[str, str]]) -> None:
    path, body = path_body
    a = h.post_json(path, body, with_auth(extra))
    check_answer(a, "POST", path, f"body {body!r:.300}")
    after_example(h)


@fuzz_settings(400)
@example(path_body=("/v1/messages", {"model": "anthropic/claude-3-5-haiku-latest", "max_tokens": 16, "messages": HI}),
         extra=[("Content-Type", "application/json"), ("Content-Type", "application/json")], key_header="x-api-key")
@example(path_body=("/v1/messages/count_tokens", {"model": "anthropic/claude-3-5-haiku-latest", "messages": HI, "tools": [
    {"name": "f", "input_schema": {"type": "object", "properties": {"x": fs._deep_dict(300)}}}]}), extra=[], key_header="x-api-key")
@given(path_body=fs.path_and_body(fs.ANTHROPIC_PATHS), extra=fs.junk_headers,
       key_header=st.sampled_from(["x-api-key", "Authorization"]))
def test_anthropic_messages_plausible_bodies(h: Harness, path_body: tuple[str, Any], extra: list[tuple[str, str]],
                                             key_header: str) -> None:
    path, body = path_body
    auth = (key_header, MASTER if key_header == "x-api-key" else f"Bearer {MASTER}")
    a = h.post_json(path, body, [auth, ("anthropic-version", "2023-06-01"), *extra])
    check_answer(a, "POST", path, f"body {body!r:.300}")
    after_example(h)


@fuzz_settings(250)
@example(path_body=("/v1/completions", {"model": "openai/gpt-4o-mini", "prompt": "hi", "extra": fs.nested(300)}))
@example(path_body=("/v1/embeddings", {"model": "gemini/\x01", "input": "hi"}))
@given(path_body=fs.path_and_body(["/v1/completions", "/v1/embeddings", "/embeddings"]))
def test_completions_and_embeddings_plausible_bodies(h: Harness, path_body: tuple[str, Any]) -> None:
    path, body = path_body
    a = h.post_json(path, body, with_auth([]))
    check_answer(a, "POST", path, f"body {body!r:.300}")
    after_example(h)


@fuzz_settings(150)
@given(path=st.sampled_from(fs.POST_PATHS), body=fs.any_json)
def test_arbitrary_json_bodies(h: Harness, path: str, body: Any) -> None:
    a = h.post_json(path, body, with_auth([]))
    check_answer(a, "POST", path, f"body {body!r:.300}")
    after_example(h)


def _enc(name: str | None, transform_index: int) -> int:
    assert fs.ENCODINGS[transform_index][0] == name
    return transform_index


@fuzz_settings(300)
# Content-Encoding: gzip on bytes that are not gzip (was a 500), a truncated gzip stream, brotli
# (aiohttp cannot decode it here: a parser-level 400 that must still be in the surface's envelope)
@example(path="/v1/chat/completions", raw=b"not gzip", enc=_enc("gzip", 2), content_type="application/json")
@example(path="/v1/chat/completions", raw=b'{"a": 1}', enc=_enc("gzip", 3), content_type="application/json")
@example(path="/v1/messages", raw=b"{}", enc=_enc("br", 13), content_type="application/json")
@example(path="/v1/chat/completions", raw=b"not deflate", enc=_enc("deflate", 8), content_type="application/json")
@given(path=st.sampled_from(fs.POST_PATHS), raw=fs.raw_bodies, enc=fs.encodings,
       content_type=st.sampled_from(["application/json", None, "text/plain"]))
def test_raw_bodies(h: Harness, path: str, raw: bytes, enc: int, content_type: str | None) -> None:
    """Bytes that are not (quite) JSON: invalid UTF-8, truncated documents, 200-1100 levels of
    nesting, 1e400 and NaN, a BOM; sent plain or with a (right or wrong) Content-Encoding."""
    encoding, transform = fs.ENCODINGS[enc]
    body = transform(raw)
    headers = with_auth([])
    if content_type:
        headers.append(("Content-Type", content_type))
    if encoding is not None:
        headers.append(("Content-Encoding", encoding))
    a = h.request("POST", path, body, headers, skip=("Content-Type",))
    check_answer(a, "POST", path, f"raw {raw[:200]!r} (+{max(0, len(raw) - 200)} bytes), Content-Encoding {encoding!r}")
    after_example(h)


# ---------------------------------------------------------------------------------- tests: headers

_SIMPLE_BODIES: dict[str, Any] = {
    "/v1/chat/completions": {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    "/chat/completions": {"model": "gemini/gemini-2.0-flash", "messages": [{"role": "user", "content": "hi"}]},
    "/v1/completions": {"model": "openai/gpt-4o-mini", "prompt": "hi"},
    "/v1/embeddings": {"model": "gemini/text-embedding-004", "input": "hi"},
    "/embeddings": {"model": "openai/text-embedding-3-small", "input": ["a", "b"]},
    "/v1/messages": {"model": "anthropic/claude-3-5-haiku-latest", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]},
    "/v1/messages/count_tokens": {"model": "anthropic/claude-3-5-haiku-latest", "messages": [{"role": "user", "content": "hi"}]},
}


@fuzz_settings(300)
# an Authorization line longer than the server's header limit: aiohttp's 400 quoted its start
@example(path="/v1/chat/completions", auth=[("Authorization", f"Bearer {MASTER}" + "x" * 17000)], extra=[], stream=False)
@example(path="/v1/messages", auth=[("x-api-key", MASTER + "x" * 17000)], extra=[], stream=False)
@example(path="/v1/chat/completions", auth=[("Authorization", f"Bearer {MASTER}")],
         extra=[("User-Agent", "a"), ("User-Agent", "b")], stream=False)
@given(path=st.sampled_from(fs.POST_PATHS), auth=fs.authorization(MASTER), extra=fs.junk_headers, stream=st.booleans())
def test_auth_and_junk_headers(h: Harness, path: str, auth: list[tuple[str, str]], extra: list[tuple[str, str]],
                               stream: bool) -> None:
    """Authorization in every shape (missing, right, right plus junk, wrong scheme, non-ASCII,
    longer than the server's header limit, duplicated) with junk in the other headers, on a
    valid body. Besides the usual properties: without the master key nowhere is a 200."""
    body = dict(_SIMPLE_BODIES[path])
    if stream and path in ("/v1/chat/completions", "/chat/completions", "/v1/messages"):
        body["stream"] = True
    a = h.post_json(path, body, [*auth, *extra])
    check_answer(a, "POST", path, f"headers {[*auth, *extra]!r:.400}")
    if not any(MASTER in v for _, v in auth):
        assert a.status != 200, f"served without the master key: headers {auth!r:.300}"
    after_example(h)


@fuzz_settings(200)
@example(line=("empty-name", b": Bearer " + MASTER.encode(), True), path="/v1/chat/completions", with_key=False)
@example(line=("ctl-in-value", b"Authorization: Bearer " + MASTER.encode() + b"\x00", True), path="/v1/messages", with_key=False)
@example(line=("too-long", b"Authorization: Bearer " + MASTER.encode() + b"x" * 20000, True), path="/v1/chat/completions",
         with_key=False)
@given(line=fs.malformed_header_lines(MASTER, MARKER), path=st.sampled_from(fs.POST_PATHS), with_key=st.booleans())
def test_malformed_header_lines(h: Harness, line: tuple[str, bytes, bool], path: str, with_key: bool) -> None:
    """Header lines aiohttp's client will not send (NUL and other control bytes, bare CR/LF,
    bad names, over-long lines, bad Content-Length), through a raw socket. A line the server
    must refuse gets a 400, and the answer never quotes the line (its credential or marker)."""
    kind, header_line, must_reject = line
    body = orjson.dumps(_SIMPLE_BODIES[path])
    lines = [f"POST {path} HTTP/1.1".encode(), f"Host: 127.0.0.1:{h.port}".encode()]
    if with_key:
        lines.append(f"Authorization: Bearer {MASTER}".encode())
    lines += [header_line, b"Content-Type: application/json", b"Content-Length: %d" % len(body), b"Connection: close"]
    raw = h.raw(b"\r\n".join(lines) + b"\r\n\r\n" + body)
    head = raw.partition(b"\r\n\r\n")[0]
    m = re.match(rb"HTTP/1\.[01] (\d{3})", raw)
    assert m, f"{kind}: not an HTTP answer: {raw[:300]!r}"
    status = int(m.group(1))
    where = f"{kind} line {header_line[:120]!r}"
    assert status < 500, f"{where}: HTTP {status}: {raw[:400]!r}"
    if must_reject:
        assert status in (400, 431), f"{where}: expected a 400, got HTTP {status}: {raw[:400]!r}"
    for s in (*SECRETS, MARKER):
        assert s.encode() not in raw, f"{where}: the answer quotes the header ({s[:12]}...): {raw[:600]!r}"
    assert not _has_trace(raw), f"{where}: a stack trace: {raw[:400]!r}"
    ct = re.search(rb"(?im)^content-type:\s*([^;\r\n]+)", head)
    assert ct and ct.group(1).strip().lower() == b"application/json", f"{where}: the answer is not JSON: {raw[:400]!r}"
    after_example(h)


# ---------------------------------------------------------------------------------- tests: paths


def _quote_path(p: str) -> str:
    # keep '/', '%' (so %2e%2e goes out as typed) and the usual sub-delims; escape the rest
    return quote(p, safe="/%:@!$&'()*+,;=-._~")


@fuzz_settings(250)
# a path with a newline: the catch-all route's `.*` does not match it, aiohttp answers 404 text/plain
@example(method="GET", path="/%0A", auth=True)
@example(method="GET", path="/v1/models/%0A", auth=True)
@given(
    method=st.sampled_from(["GET", "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
    path=st.one_of(
        st.builds(lambda mid: "/v1/models/" + _quote_path(mid), st.one_of(fs.any_model, st.text(max_size=30))),
        st.sampled_from(["/v1/models", "/models", "/v1/models/", "/v1/models//", "/v1", "/", "/v1/messages/batches",
                         "/v1/responses", "/v1/chat/completions/", "//v1/chat/completions", "/v1/./chat/completions",
                         "/v1/../v1/chat/completions", "/v1/%2e%2e/admin", "/v1/chat%2Fcompletions", "/V1/MODELS",
                         "/v1/models/gemini%2F..%2F..%2Fadmin", "/v1/models/%00", "/v1/models/%ff", "/%0d%0a",
                         "/v1/models/a%0Ab", *fs.POST_PATHS]),
        st.text(max_size=40).map(lambda t: "/" + _quote_path(t)),
    ),
    auth=st.booleans(),
)
def test_get_endpoints_and_unknown_paths(h: Harness, method: str, path: str, auth: bool) -> None:
    """GET /v1/models and /v1/models/{id} with odd ids (path escapes included), unknown paths
    and wrong methods: a JSON 4xx in the envelope or the listing, never a 5xx."""
    body = b"{}" if method in ("POST", "PUT", "PATCH") else None
    a = h.request(method, path, body, with_auth([]) if auth else [])
    check_answer(a, method, path, "")
    after_example(h)


@pytest.mark.parametrize("model", fs.PATH_ESCAPES)
def test_model_ids_never_leave_the_upstream_api(h: Harness, model: str) -> None:
    """Every path-escape model id on every endpoint, streamed and not (a fixed list, so every
    run covers all of them): answered without a 5xx, and no fake saw a path outside its API."""
    for path in fs.POST_PATHS:
        for stream in (False, True):
            body: dict[str, Any] = dict(_SIMPLE_BODIES[path], model=model)
            if stream:
                body["stream"] = True
            a = h.post_json(path, body, with_auth([("anthropic-version", "2023-06-01")]))
            check_answer(a, "POST", path, f"model {model!r} stream={stream}")
            after_example(h)
