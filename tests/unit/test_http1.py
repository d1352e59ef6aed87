"""The lean HTTP/1.1 client (providers/http1.py) against real servers on 127.0.0.1: aiohttp
servers where the behaviour is ordinary HTTP, raw asyncio servers where a test needs bytes or
timing aiohttp would not produce (a body ending with the connection, a server dropping a
keep-alive connection, a TLS port that never handshakes)."""

from __future__ import annotations

import asyncio
import gzip
import random
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import orjson
import pytest
import pytest_asyncio
from aiohttp import web

from unigate.config import Timeouts
from unigate.errors import UpstreamTimeout, UpstreamUnavailable
from unigate.providers.base import UpstreamRequest
from unigate.providers.http1 import (
    ConnectFailed,
    Http1Client,
    UnsupportedEncoding,
    UpstreamDisconnected,
    UpstreamProtocolError,
    split_url,
)
from unigate.providers.transport import DEFAULT_HEADERS, Transport, read_limited, read_prefix

T = Timeouts(connect=5, first_byte=5, total=30)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Server:
    """An aiohttp server that counts the TCP connections it accepted (by client port)."""

    def __init__(self, runner: web.AppRunner, port: int, peers: set[int]) -> None:
        self.runner, self.port, self.peers = runner, port, peers

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest_asyncio.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    runners: list[web.AppRunner] = []

    async def start(routes: dict[str, Handler], ssl_context: ssl.SSLContext | None = None) -> Server:
        peers: set[int] = set()

        @web.middleware
        async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
            assert request.transport is not None
            peers.add(request.transport.get_extra_info("peername")[1])
            return await handler(request)

        app = web.Application(middlewares=[count])
        for path, h in routes.items():
            app.router.add_route("*", path, h)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return Server(runner, port, peers)

    yield start
    for r in runners:
        await r.cleanup()


@pytest_asyncio.fixture
async def client() -> AsyncIterator[Http1Client]:
    c = Http1Client(DEFAULT_HEADERS)
    yield c
    await c.close()


class RawServer:
    """asyncio.start_server with a per-connection coroutine; counts connections."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self, handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]) -> None:
        async def on_conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await handle(r, w, self.connections)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                w.close()

        self.server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest_asyncio.fixture
async def raw() -> AsyncIterator[RawServer]:
    s = RawServer()
    yield s
    await s.stop()


async def read_request(r: asyncio.StreamReader) -> bytes:
    """One request's head and Content-Length body."""
    head = await r.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await r.readexactly(length)


async def echo(request: web.Request) -> web.Response:
    return web.json_response({"method": request.method, "path": request.path_qs, "body": (await request.text()),
                              "headers": dict(request.headers)}, headers={"X-Trace": "abc"})


# --- the ordinary exchange -------------------------------------------------------------------


async def test_json_round_trip(serve: Callable[..., Awaitable[Server]], client: Http1Client) -> None:
    srv = await serve({"/v1/chat": echo})
    body = b'{"model": "m"}'
    async with client.request("POST", srv.url("/v1/chat?x=1"), body,
                              {"Authorization": "Bearer k", "Content-Type": "application/json"}, T) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        assert resp.headers["x-trace"] == "abc"  # case-insensitive
        data = await resp.read()
        assert resp.content_length == len(data)
    got = orjson.loads(data)
    assert got["method"] == "POST" and got["path"] == "/v1/chat?x=1" and got["body"] == body.decode()
    h = {k.lower(): v for k, v in got["headers"].items()}
    assert h["authorization"] == "Bearer k"
    assert h["host"] == f"127.0.0.1:{srv.port}"
    assert h["content-length"] == str(len(body))
    assert h["user-agent"] == DEFAULT_HEADERS["User-Agent"] and h["accept-encoding"] == "identity"


async def test_provider_header_overrides_a_default(serve: Callable[..., Awaitable[Server]],
                                                   client: Http1Client) -> None:
    srv = await serve({"/": echo})
    async with client.request("GET", srv.url(), None, {"user-agent": "mine/1"}, T) as resp:
        got = orjson.loads(await resp.read())
    agents = [v for k, v in got["headers"].items() if k.lower() == "user-agent"]
    assert agents == ["mine/1"]
    assert "Content-Length" not in got["headers"]  # a GET without a body says nothing of one


async def test_keep_alive_reuses_one_connection(serve: Callable[..., Awaitable[Server]], client: Http1Client) -> None:
    srv = await serve({"/": echo})
    for i in range(5):
        async with client.request("POST", srv.url(), str(i).encode(), {}, T) as resp:
            assert orjson.loads(await resp.read())["body"] == str(i)
    assert len(srv.peers) == 1 and client.opened == 1
    assert client.idle_count() == 1


async def test_chunked_body(serve: Callable[..., Awaitable[Server]], client: Http1Client) -> None:
    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(20):
            await resp.write(b"part%02d;" % i)
        await resp.write_eof()
        return resp

    srv = await serve({"/": chunked})
    for _ in range(2):
        async with client.request("GET", srv.url(), None, {}, T) as resp:
            assert resp.content_length is None
            assert resp.headers["Transfer-Encoding"] == "chunked"
            assert await read_limited(resp, 10_000) == b"".join(b"part%02d;" % i for i in range(20))
    assert client.opened == 1  # a chunked answer read to its end leaves the connection reusable


async def test_body_read_until_close(raw: RawServer, client: Http1Client) -> None:
    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello ")
        await w.drain()
        await asyncio.sleep(0.02)
        w.write(b"world")
        await w.drain()

    await raw.start(handle)
    for _ in range(2):
        async with client.request("GET", raw.url(), None, {}, T) as resp:
            assert resp.content_length is None
            assert await resp.read() == b"hello world"
    assert raw.connections == 2 and client.idle_count() == 0  # such a connection is never reused


async def test_stream_pieces_arrive_in_order(serve: Callable[..., Awaitable[Server]], client: Http1Client) -> None:
    events = [b"data: {\"n\": %d}\n\n" % i for i in range(10)]

    async def sse(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await resp.prepare(request)
        for e in events:
            await resp.write(e)
            await asyncio.sleep(0.005)
        await resp.write_eof()
        return resp

    srv = await serve({"/": sse})
    async with client.request("POST", srv.url(), b"{}", {}, T) as resp:
        assert resp.content_type == "text/event-stream"
        pieces = []
        while piece := await resp.content.readany():
            pieces.append(piece)
        assert await resp.content.readany() == b""  # and again at the end
    assert len(pieces) > 1  # it did arrive in pieces, not as one body
    assert b"".join(pieces) == b"".join(events)


async def test_iter_any_and_204(serve: Callable[..., Awaitable[Server]], client: Http1Client) -> None:
    async def empty(request: web.Request) -> web.Response:
        return web.Response(status=204)

    srv = await serve({"/": empty, "/e": echo})
    async with client.request("DELETE", srv.url(), None, {}, T) as resp:
        assert resp.status == 204
        assert [p async for p in resp.content.iter_any()] == []
    async with client.request("GET", srv.url("/e"), None, {}, T) as resp:
        assert b"".join([p async for p in resp.content.iter_any()]).startswith(b"{")
    assert client.opened == 1


async def test_gzip_body_is_decoded_and_br_refused(serve: Callable[..., Awaitable[Server]],
                                                   client: Http1Client) -> None:
    plain = b'{"ok": true, "pad": "' + b"x" * 5000 + b'"}'

    async def zipped(request: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(plain), headers={"Content-Encoding": "gzip",
                                                                 "Content-Type": "application/json"})

    async def brotli(request: web.Request) -> web.Response:
        return web.Response(body=b"\x1b\x00", headers={"Content-Encoding": "br"})

    srv = await serve({"/gz": zipped, "/br": brotli})
    async with client.request("GET", srv.url("/gz"), None, {}, T) as resp:
        assert resp.content_length is None  # the length on the wire is not the body's
        assert await read_limited(resp, 1 << 20) == plain
    with pytest.raises(UnsupportedEncoding, match="'br'"):
        async with client.request("GET", srv.url("/br"), None, {}, T) as resp:
            await resp.read()


# --- leaving early, big bodies, many at once ---------------------------------------------------


async def test_early_close_does_not_reuse(serve: Callable[..., Awaitable[Server]], client: Http1Client) -> None:
    async def big(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=500)
        await resp.prepare(request)
        for _ in range(100):
            await resp.write(b"e" * 10_000)
        return resp

    srv = await serve({"/big": big, "/": echo})
    async with client.request("GET", srv.url("/big"), None, {}, T) as resp:
        assert resp.status == 500
        assert await read_prefix(resp, 100) == b"e" * 100
    assert client.idle_count() == 0
    async with client.request("GET", srv.url(), None, {}, T) as resp:
        await resp.read()
    assert client.opened == 2 and len(srv.peers) == 2


async def test_leaving_the_block_early_closes(serve: Callable[..., Awaitable[Server]], client: Http1Client) -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b"first")
        await asyncio.sleep(0.5)
        await resp.write(b"second")
        return resp

    srv = await serve({"/": slow})
    async with client.request("GET", srv.url(), None, {}, T) as resp:
        assert await resp.content.readany() == b"first"
    assert client.idle_count() == 0
    with pytest.raises(UpstreamDisconnected):
        await resp.read()


async def test_50_mb_error_body_cut_by_read_prefix(serve: Callable[..., Awaitable[Server]],
                                                   client: Http1Client) -> None:
    sent = [0]
    piece = b"z" * (1 << 20)

    async def huge(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=502)
        resp.content_length = 50 * len(piece)
        await resp.prepare(request)
        try:
            for _ in range(50):
                await resp.write(piece)
                sent[0] += len(piece)
        except (ConnectionError, RuntimeError):
            pass
        return resp

    srv = await serve({"/": huge})
    async with client.request("GET", srv.url(), None, {}, T) as resp:
        assert resp.content_length == 50 << 20
        cut = await read_prefix(resp, 64 * 1024)
    assert cut == b"z" * (64 * 1024)
    for _ in range(100):  # let the server notice the closed connection
        if srv.runner.server is not None and not srv.runner.server.connections:
            break
        await asyncio.sleep(0.02)
    # the client stops reading at its high-water mark and closes: most of the 50 MB never moved
    assert sent[0] < 25 << 20


async def test_many_concurrent_requests_pair_correctly(serve: Callable[..., Awaitable[Server]],
                                                       client: Http1Client) -> None:
    async def jitter(request: web.Request) -> web.Response:
        body = await request.read()
        await asyncio.sleep(random.random() / 100)
        return web.Response(body=b"answer:" + body)

    srv = await serve({"/": jitter})
    gate = asyncio.Semaphore(40)

    async def one(i: int) -> bytes:
        async with gate, client.request("POST", srv.url(), b"%d" % i, {}, T) as resp:
            return await resp.read()

    answers = await asyncio.gather(*(one(i) for i in range(400)))
    assert answers == [b"answer:%d" % i for i in range(400)]
    assert client.opened <= 40 and len(srv.peers) == client.opened
    assert client.idle_count() == client.opened


# --- timeouts --------------------------------------------------------------------------------


async def test_first_byte_timeout(serve: Callable[..., Awaitable[Server]], client: Http1Client) -> None:
    async def late(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(text="late")

    srv = await serve({"/": late})
    with pytest.raises(TimeoutError, match="without a byte"):
        async with client.request("GET", srv.url(), None, {}, Timeouts(connect=5, first_byte=0.2, total=30)):
            pass
    assert client.idle_count() == 0


async def test_gap_between_pieces_is_bounded_by_first_byte(serve: Callable[..., Awaitable[Server]],
                                                           client: Http1Client) -> None:
    async def stall(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b"one")
        await asyncio.sleep(2)
        await resp.write(b"two")
        return resp

    srv = await serve({"/": stall})
    async with client.request("GET", srv.url(), None, {}, Timeouts(connect=5, first_byte=0.3, total=30)) as resp:
        assert await resp.content.readany() == b"one"
        with pytest.raises(TimeoutError, match="without a byte"):
            await resp.content.readany()


async def test_total_timeout_ends_a_flowing_stream(serve: Callable[..., Awaitable[Server]],
                                                   client: Http1Client) -> None:
    async def drip(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for _ in range(100):
            await resp.write(b".")
            await asyncio.sleep(0.05)
        return resp

    srv = await serve({"/": drip})
    got = 0
    with pytest.raises(TimeoutError, match="total"):
        async with client.request("GET", srv.url(), None, {}, Timeouts(connect=5, first_byte=5, total=0.4)) as resp:
            while await resp.content.readany():
                got += 1
    assert 1 <= got < 100


async def test_connect_timeout_on_a_tls_port_that_never_handshakes(raw: RawServer) -> None:
    async def mute(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await asyncio.sleep(3)

    await raw.start(mute)
    c = Http1Client(DEFAULT_HEADERS)
    try:
        with pytest.raises(TimeoutError):
            async with c.request("GET", f"https://127.0.0.1:{raw.port}/", None, {},
                                 Timeouts(connect=0.3, first_byte=5, total=30)):
                pass
    finally:
        await c.close()


async def test_transport_maps_timeouts_and_refusals() -> None:
    transport = Transport("lean")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        req = UpstreamRequest("POST", f"http://127.0.0.1:{port}/v1/x", {}, b"{}")
        with pytest.raises(UpstreamUnavailable, match=r"cannot connect to the upstream \(connection refused\)"):
            async with transport.open(req, T, "prov"):
                pass
    finally:
        await transport.close()


async def test_transport_maps_a_read_timeout(serve: Callable[..., Awaitable[Server]]) -> None:
    async def late(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(text="late")

    srv = await serve({"/": late})
    transport = Transport("lean")
    try:
        req = UpstreamRequest("GET", srv.url(), {}, None)
        with pytest.raises(UpstreamTimeout, match="did not answer in time"):
            async with transport.open(req, Timeouts(connect=5, first_byte=0.2, total=30), "prov"):
                pass
    finally:
        await transport.close()


async def test_connection_refused(client: Http1Client) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectFailed) as info:
        async with client.request("GET", f"http://127.0.0.1:{port}/", None, {}, T):
            pass
    assert isinstance(info.value.os_error, ConnectionRefusedError)


# --- a server that drops connections ---------------------------------------------------------


async def test_reused_connection_closed_by_the_server_is_retried_once(raw: RawServer, client: Http1Client) -> None:
    bodies: list[bytes] = []

    async def idle_timeout(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        # answer the connection's first request, then drop it when the second comes: the
        # server's keep-alive timer firing just as the client reuses the connection
        req = await read_request(r)
        bodies.append(req.rpartition(b"\r\n\r\n")[2])
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\nok%d" % (len(b"ok%d" % n), n))
        await w.drain()
        await read_request(r)

    await raw.start(idle_timeout)
    async with client.request("POST", raw.url(), b"first", {}, T) as resp:
        assert await resp.read() == b"ok1"
    async with client.request("POST", raw.url(), b"second", {}, T) as resp:
        assert await resp.read() == b"ok2"  # answered on a second connection
    assert raw.connections == 2 and client.opened == 2
    assert bodies == [b"first", b"second"]


async def test_a_new_connection_closed_without_an_answer_is_not_retried(raw: RawServer,
                                                                        client: Http1Client) -> None:
    async def rude(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await read_request(r)

    await raw.start(rude)
    with pytest.raises(UpstreamDisconnected, match="before the end"):
        async with client.request("POST", raw.url(), b"x", {}, T):
            pass
    assert raw.connections == 1


async def test_cut_mid_body_is_an_error(raw: RawServer, client: Http1Client) -> None:
    async def cut(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await w.drain()

    await raw.start(cut)
    async with client.request("GET", raw.url(), None, {}, T) as resp:
        with pytest.raises(UpstreamDisconnected):
            await resp.read()


async def test_idle_connections_expire(serve: Callable[..., Awaitable[Server]]) -> None:
    srv = await serve({"/": echo})
    c = Http1Client(DEFAULT_HEADERS, keepalive=0.1)
    try:
        async with c.request("GET", srv.url(), None, {}, T) as resp:
            await resp.read()
        assert c.idle_count() == 1
        for _ in range(50):
            if not c.idle_count():
                break
            await asyncio.sleep(0.02)
        assert c.idle_count() == 0
        async with c.request("GET", srv.url(), None, {}, T) as resp:
            await resp.read()
        assert c.opened == 2
    finally:
        await c.close()


async def test_garbage_is_a_protocol_error(raw: RawServer, client: Http1Client) -> None:
    async def garbage(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
        await read_request(r)
        w.write(b"SMTP ready\r\n\r\n")
        await w.drain()
        await asyncio.sleep(0.5)

    await raw.start(garbage)
    with pytest.raises(UpstreamProtocolError, match="invalid HTTP"):
        async with client.request("GET", raw.url(), None, {}, T):
            pass


# --- TLS -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    key, crt = d / "key.pem", d / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return crt, key


async def test_tls_round_trip_and_reuse(serve: Callable[..., Awaitable[Server]], cert: tuple[Path, Path]) -> None:
    crt, key = cert
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(crt, key)
    srv = await serve({"/": echo}, ssl_context=server_ctx)
    trusted = ssl.create_default_context(cafile=str(crt))  # the test's CA: the cert itself
    c = Http1Client(DEFAULT_HEADERS, ssl_context=trusted)
    try:
        for i in range(3):
            async with c.request("POST", f"https://127.0.0.1:{srv.port}/", b"%d" % i, {}, T) as resp:
                assert orjson.loads(await resp.read())["body"] == str(i)
        assert c.opened == 1
    finally:
        await c.close()
    # the system CA store does not know a self-signed certificate: no connection
    plain = Http1Client(DEFAULT_HEADERS)
    try:
        with pytest.raises(ConnectFailed) as info:
            async with plain.request("GET", f"https://127.0.0.1:{srv.port}/", None, {}, T):
                pass
        assert isinstance(info.value.os_error, ssl.SSLCertVerificationError)
    finally:
        await plain.close()


# --- bad input -------------------------------------------------------------------------------


def test_split_url() -> None:
    o, target = split_url("https://api.example.com/v1/chat?x=1#frag")
    assert (o.host, o.port, o.tls, o.authority, target) == ("api.example.com", 443, True, "api.example.com", "/v1/chat?x=1")
    o, target = split_url("http://[::1]:8080")
    assert (o.host, o.port, target) == ("::1", 8080, "/")
    assert split_url("http://h:81/a%2Fb:invoke")[1] == "/a%2Fb:invoke"  # a signed path goes out as it is
    assert split_url("http://h/a b")[1] == "/a%20b"
    for bad in ("ftp://h/", "h/path", "http://u:p@h/", "http://:80/"):
        with pytest.raises(ValueError):
            split_url(bad)


def test_header_injection_is_refused(client: Http1Client) -> None:
    with pytest.raises(UpstreamProtocolError, match="line break"):
        client.request("GET", "http://127.0.0.1:1/", None, {"X-A": "v\r\nX-Evil: 1"}, T)
    with pytest.raises(UpstreamProtocolError, match="latin-1"):
        client.request("GET", "http://127.0.0.1:1/", None, {"X-A": "\u2603"}, T)


async def test_a_provider_host_header_replaces_the_added_one(serve: Callable[..., Awaitable[Server]],
                                                             client: Http1Client) -> None:
    """A signed request (Bedrock's SigV4) brings its own Host: sent once, as signed."""
    srv = await serve({"/": echo})
    async with client.request("POST", srv.url(), b"{}", {"host": f"127.0.0.1:{srv.port}", "Content-Length": "2"},
                              T) as resp:
        assert resp.status == 200  # aiohttp's server refuses a request with two Host headers
        got = orjson.loads(await resp.read())
    assert [k.lower() for k in got["headers"]].count("host") == 1
    assert [k.lower() for k in got["headers"]].count("content-length") == 1


def test_config_chooses_the_client() -> None:
    from unigate.config import ConfigError, parse_config

    assert parse_config({}, where="<t>", env={}).server.upstream_client == "lean"
    assert parse_config({"server": {"upstream_client": "lean"}}, where="<t>", env={}).server.upstream_client == "lean"
    with pytest.raises(ConfigError, match="upstream_client"):
        parse_config({"server": {"upstream_client": "curl"}}, where="<t>", env={})
    assert Transport()._lean is not None and Transport("aiohttp")._lean is None


def test_under_uvloop() -> None:
    """The gateway serves on uvloop (server.py), whose transports are not asyncio.Transport
    subclasses: the client's whole exchange, reuse, a stream and the stale-connection retry there."""
    import uvloop

    async def scenario() -> None:
        async def sse(request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            for i in range(3):
                await resp.write(b"data: %d\n\n" % i)
            await resp.write_eof()
            return resp

        app = web.Application()
        app.router.add_post("/", echo)
        app.router.add_get("/sse", sse)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        raw = RawServer()

        async def idle_timeout(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> None:
            await read_request(r)
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok%d" % n)
            await w.drain()
            await read_request(r)

        await raw.start(idle_timeout)
        c = Http1Client(DEFAULT_HEADERS)
        try:
            for i in range(3):
                async with c.request("POST", f"http://127.0.0.1:{port}/", b"%d" % i, {}, T) as resp:
                    assert orjson.loads(await resp.read())["body"] == str(i)
            async with c.request("GET", f"http://127.0.0.1:{port}/sse", None, {}, T) as resp:
                assert b"".join([p async for p in resp.content.iter_any()]) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
            assert c.opened == 1
            for want in (b"ok1", b"ok2"):
                async with c.request("POST", raw.url(), b"x", {}, T) as resp:
                    assert await resp.read() == want
            assert raw.connections == 2
        finally:
            await c.close()
            await raw.stop()
            await runner.cleanup()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert type(runner.get_loop()).__module__.startswith("uvloop")
        runner.run(scenario())
