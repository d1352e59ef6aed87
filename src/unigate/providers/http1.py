"""A lean HTTP/1.1 client for the upstream calls: an asyncio.Protocol per connection, httptools'
C parser (llhttp) for the answers, and a keep-alive pool per origin.

Why not aiohttp's client: per JSON request it runs ~3,000 Python bytecodes (request and response
objects, payload writers, stream readers, connector bookkeeping, per-read timers) for what the
gateway needs: write one request, parse one answer, keep the connection. Here a request is one
`transport.write` of bytes built by one f-string join, the answer is parsed in C with a Python
callback per header and per body piece, and the response object has only the members the
pipeline reads of aiohttp's ClientResponse (`status`, `headers`, `content_type`,
`content_length`, `read()`, `content.readany()`, `content.iter_any()`, `close()`, `release()`).

Semantics kept from the aiohttp path (transport.py maps the errors to gateway errors):

* timeouts (`config.Timeouts`): `connect` bounds opening a connection (TLS included);
  `first_byte` bounds every wait for bytes: the response's head and each gap while the reader
  waits afterwards (aiohttp's sock_read); `total` bounds the whole exchange. One TimerHandle per
  wait (deadline min(now + first_byte, start + total)), none when the bytes are already there,
  which is the common case for a JSON body that arrives with its head.
* a connection is reused only when its last answer was parsed to the end and both sides allow
  keep-alive; one the caller leaves early (`close()`, e.g. read_prefix on a 50 MB error page) is
  closed, so what is left of that answer is never read.
* pooled connections are reused last-in first-out (the warmest socket, and the idle tail ages
  out), and closed after `keepalive` seconds idle: shorter than most servers' own idle timeouts
  (nginx 75 s, Go 90 s), so the gateway usually closes first.
* a reused connection that ends (EOF or reset) before any byte of its answer is sent once more
  on a new connection: the server closed it while idle, racing our write, so it never answered
  (Go's net/http retries the same case, errServerClosedIdle, whatever the method). A new
  connection is never retried, nor one on which any byte of the answer arrived.
* the gateway sends GET, POST and DELETE, never HEAD: the parser is not told of a HEAD's
  bodiless answer.
* a body in gzip or deflate (which the gateway never asks for: it sends Accept-Encoding:
  identity) is decoded as aiohttp would; any other Content-Encoding fails the exchange with
  `UnsupportedEncoding`. A decoded body reports no `content_length`, so read_limited bounds
  the decoded size, not the compressed one.

Flow control: once more than `_HIGH_WATER` bytes wait unread the socket stops being read until
the reader catches up, so a slow client of a stream never makes the gateway buffer a whole
answer. Request bodies are handed to the transport in one write (the gateway's are at most
`server.max_body_bytes`), which buffers what the socket cannot take yet.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import zlib
from collections.abc import AsyncIterator, Mapping
from functools import lru_cache
from types import TracebackType
from typing import Any, NamedTuple, cast

import aiohttp
from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser
from multidict import CIMultiDict, CIMultiDictProxy

from unigate.config import Timeouts

#: unread answer bytes above which the socket is paused (resumed once the reader takes them)
_HIGH_WATER = 1 << 20
#: a request body up to this size goes out in the same write as the head (one copy of the body;
#: above it, head and body are two writes and the body is not copied)
_JOIN_BODY = 1 << 16


class UpstreamConnectionError(aiohttp.ClientConnectionError):
    """A failure of the lean client's connection. A subclass of aiohttp's ClientError so the
    pipeline's `except aiohttp.ClientError` (a stream that breaks off) reads both clients' errors."""


class ConnectFailed(UpstreamConnectionError):
    """The connection could not be opened (refused, unreachable, DNS, TLS handshake)."""

    def __init__(self, os_error: OSError) -> None:
        super().__init__(str(os_error))
        self.os_error = os_error


class UpstreamDisconnected(UpstreamConnectionError):
    """The upstream closed the connection (or it broke) before its answer was complete."""


class UpstreamProtocolError(UpstreamConnectionError):
    """The upstream's bytes are not valid HTTP/1.1."""


class UnsupportedEncoding(UpstreamConnectionError):
    """A Content-Encoding other than identity, gzip or deflate."""


class _StaleConnection(UpstreamDisconnected):
    """A reused connection the server had closed: it ended before any byte of the answer."""


class Origin(NamedTuple):
    host: str
    port: int
    tls: bool
    #: the Host header's value (the port only when it is not the scheme's default)
    authority: str


@lru_cache(maxsize=512)
def _origin(scheme: str, authority: str) -> Origin:
    tls = scheme == "https"
    if not tls and scheme != "http":
        raise ValueError(f"not an http(s) URL scheme: {scheme!r}")
    if "@" in authority:
        raise ValueError("credentials in the upstream URL are not supported")
    host, port = authority, 443 if tls else 80
    if authority.startswith("["):  # an IPv6 literal, [::1]:8080
        end = authority.index("]")
        host, rest = authority[1:end], authority[end + 1:]
        if rest.startswith(":"):
            port = int(rest[1:])
    elif ":" in authority:
        host, _, p = authority.rpartition(":")
        port = int(p)
    if not host:
        raise ValueError("no host in the upstream URL")
    return Origin(host, port, tls, authority)


def split_url(url: str) -> tuple[Origin, str]:
    """(origin, request target). The target is sent as it is (a signed path stays byte-exact);
    one with characters HTTP does not allow raw is percent-encoded as aiohttp would."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not an absolute URL: {url[:80]!r}")
    authority, slash, path = rest.partition("/")
    authority, _, query = authority.partition("?")  # "http://h?x" (no path)
    target = "/" + path.partition("#")[0] if slash else ("/?" + query if query else "/")
    if not target.isascii() or " " in target:
        from yarl import URL

        target = URL(url).raw_path_qs
    return _origin(scheme.lower(), authority), target


class Http1Client:
    """Keep-alive connections per origin; one exchange per connection at a time."""

    def __init__(self, default_headers: Mapping[str, str], *, keepalive: float = 30.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self._defaults = dict(default_headers)
        #: the names a provider's header replaces: the defaults, and the two added per request
        self._default_names = frozenset({*(k.lower() for k in default_headers), "host", "content-length"})
        self._default_block = "".join(f"{k}: {v}\r\n" for k, v in default_headers.items())
        self.keepalive = keepalive
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Conn]] = {}
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False
        #: connections opened so far (a test reads it to see reuse)
        self.opened = 0

    def request(self, method: str, url: str, body: bytes | None, headers: Mapping[str, str],
                timeouts: Timeouts) -> LeanExchange:
        """`async with client.request(...) as resp`: the answer once its head is in."""
        origin, target = split_url(url)
        return LeanExchange(self, origin, self._head(method, target, origin, body, headers), body, timeouts)

    def _head(self, method: str, target: str, origin: Origin, body: bytes | None,
              headers: Mapping[str, str]) -> bytes:
        length = f"Content-Length: {len(body)}\r\n" if body is not None else (
            "Content-Length: 0\r\n" if method in ("POST", "PUT", "PATCH") else "")
        host = f"Host: {origin.authority}\r\n"
        defaults = self._default_block
        if headers and not self._default_names.isdisjoint(map(str.lower, headers)):
            # the provider's headers override a default or the Host / Content-Length this would
            # add (a signed request brings its own Host), case-insensitively
            mine = {k.lower() for k in headers}
            defaults = "".join(f"{k}: {v}\r\n" for k, v in self._defaults.items() if k.lower() not in mine)
            if "host" in mine:
                host = ""
            if "content-length" in mine:
                length = ""
        # "k: v" lines joined in C (no Python frame per header)
        block = "\r\n".join(map(": ".join, headers.items()))
        n = len(headers) - 1
        if n >= 0:
            if block.count("\n") != n or block.count("\r") != n:
                # a header name or value with a line break would inject headers of its own
                raise UpstreamProtocolError("a request header contains a line break")
            block += "\r\n"
        text = f"{method} {target} HTTP/1.1\r\n{host}{defaults}{block}{length}\r\n"
        try:
            return text.encode("latin-1")
        except UnicodeEncodeError:
            raise UpstreamProtocolError("a request header is not latin-1 text") from None

    def take(self, origin: Origin) -> _Conn | None:
        """A live idle connection to `origin`, the most recently used first; stale ones closed."""
        idle = self._idle.get(origin)
        if not idle:
            return None
        while idle:
            conn = idle.pop()
            if conn.open and conn.idle_since > conn.loop.time() - self.keepalive:
                return conn
            conn.close()
        return None

    async def connect(self, origin: Origin, timeout: float) -> _Conn:
        loop = asyncio.get_running_loop()
        ctx: ssl.SSLContext | None = None
        if origin.tls:
            ctx = self._ssl
            if ctx is None:
                ctx = self._ssl = ssl.create_default_context()  # the system CA store
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: _Conn(self, origin, loop), origin.host, origin.port, ssl=ctx,
                    server_hostname=origin.host if ctx is not None else None)
        except TimeoutError:  # an OSError too, but the connect timeout, not a refusal
            raise
        except OSError as e:  # refused, unreachable, DNS (socket.gaierror), TLS (ssl.SSLError)
            raise ConnectFailed(e) from None
        self.opened += 1
        return conn

    def release(self, conn: _Conn) -> None:
        """A connection whose answer was read to the end, keep-alive on both sides."""
        if self._closed:
            conn.close()
            return
        loop = conn.loop
        conn.idle_since = loop.time()
        idle = self._idle.get(conn.origin)
        if idle is None:
            idle = self._idle[conn.origin] = []
        idle.append(conn)
        if self._sweep is None:
            self._sweep = loop.call_later(self.keepalive, self._sweep_idle)

    def _sweep_idle(self) -> None:
        """Close what has been idle for `keepalive` (one timer for the pool, not one per
        connection); rescheduled while any connection is idle."""
        self._sweep = None
        loop = asyncio.get_running_loop()
        oldest = loop.time() - self.keepalive
        for origin, idle in list(self._idle.items()):
            keep = [c for c in idle if c.open and c.idle_since > oldest]
            for c in idle:
                if c.open and c.idle_since <= oldest:
                    c.close()
            if keep:
                self._idle[origin] = keep
            else:
                del self._idle[origin]
        if self._idle:
            self._sweep = loop.call_later(self.keepalive / 2, self._sweep_idle)

    def idle_count(self) -> int:
        return sum(1 for idle in self._idle.values() for c in idle if c.open)

    async def close(self) -> None:
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for idle in self._idle.values():
            for c in idle:
                c.close()
        self._idle.clear()


class LeanExchange:
    """One upstream call as an async context manager; entering sends the request and waits
    for the answer's head."""

    __slots__ = ("_body", "_client", "_head", "_origin", "_resp", "_timeouts")

    def __init__(self, client: Http1Client, origin: Origin, head: bytes, body: bytes | None,
                 timeouts: Timeouts) -> None:
        self._client, self._origin, self._head, self._body, self._timeouts = client, origin, head, body, timeouts
        self._resp: LeanResponse | None = None

    async def __aenter__(self) -> LeanResponse:
        client, origin, t = self._client, self._origin, self._timeouts
        # The loop comes from the pooled connection: asyncio.get_running_loop() costs a getpid()
        # system call on Python 3.11 (its fork check), five of them per request before this
        conn = client.take(origin)
        if conn is None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + t.total
            conn = await client.connect(origin, min(t.connect, t.total))
        else:
            loop = conn.loop
            deadline = loop.time() + t.total
        resp = self._resp = LeanResponse(conn, deadline, t.first_byte)
        conn.send(self._head, self._body, resp)
        try:
            await resp._until_head()
        except _StaleConnection:
            # The reused connection ended before any byte of an answer: the server closed it
            # while idle (its keep-alive timeout raced our write), so it never answered and,
            # in that race, never read the request. Sent once more on a new connection, as
            # Go's net/http does for a reused connection (errServerClosedIdle); a new
            # connection that fails the same way is an error, never retried.
            conn = await client.connect(origin, max(0.0, min(t.connect, deadline - loop.time())))
            resp = self._resp = LeanResponse(conn, deadline, t.first_byte)
            conn.send(self._head, self._body, resp)
            await resp._until_head()
        return resp

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        resp = self._resp
        if resp is not None and resp._conn is not None:
            resp.close()  # left before the end of the answer: the connection cannot be reused


class LeanResponse:
    """An upstream answer: its head, then its body as the pieces the socket delivered."""

    __slots__ = ("_buffered", "_conn", "_deadline", "_decoder", "_eof", "_error", "_first_byte", "_loop",
                 "_pieces", "_waiter", "content", "content_length", "headers", "status")

    def __init__(self, conn: _Conn, deadline: float, first_byte: float) -> None:
        self._conn: _Conn | None = conn
        self._loop = conn.loop
        self._deadline, self._first_byte = deadline, first_byte
        self.status = 0
        self.headers: CIMultiDictProxy[str] = _NO_HEADERS
        self.content_length: int | None = None
        self.content = self  # `resp.content.readany()`, as aiohttp spells it
        self._pieces: list[bytes] = []
        self._buffered = 0
        self._eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._decoder: Any = None

    @property
    def content_type(self) -> str:
        """The media type, lower case, without parameters (aiohttp's default when absent)."""
        ct = self.headers.get("Content-Type")
        if ct is None:
            return "application/octet-stream"
        return ct.partition(";")[0].strip().lower()

    async def _until_head(self) -> None:
        loop = self._loop
        try:
            while not self.status:
                if self._error is not None:
                    raise self._error
                # _wait's body, inline: one coroutine frame less on every request
                waiter = self._waiter = loop.create_future()
                timer = loop.call_at(min(loop.time() + self._first_byte, self._deadline), self._expire)
                try:
                    await waiter
                finally:
                    timer.cancel()
                    self._waiter = None
        except BaseException:
            self.close()  # a timeout, a failure, or the caller cancelled: the connection goes
            raise

    async def _wait(self) -> None:
        """Until something changes (bytes, the end, an error), at most until the next deadline."""
        loop = self._loop
        waiter = self._waiter = loop.create_future()
        timer = loop.call_at(min(loop.time() + self._first_byte, self._deadline), self._expire)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _fail(self, e: BaseException) -> None:
        self._error = e
        w = self._waiter
        if w is not None and not w.done():
            w.set_exception(e)

    def _expire(self) -> None:
        w = self._waiter
        if w is None or w.done():
            return  # the bytes came in the same loop iteration as the deadline: they win
        late = self._loop.time() >= self._deadline
        what = "the exchange's total time" if late else f"{self._first_byte:g} s without a byte"
        self._fail(TimeoutError(f"the upstream exceeded {what}"))
        self.close()

    async def readany(self) -> bytes:
        """The bytes that arrived since the last call, b"" at the end (aiohttp's readany)."""
        while True:
            pieces = self._pieces
            if pieces:
                data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
                pieces.clear()
                self._buffered = 0
                conn = self._conn
                if conn is not None and conn.paused:
                    conn.resume()
                return data
            if self._error is not None:
                raise self._error
            if self._eof:
                return b""
            await self._wait()

    async def read(self) -> bytes:
        """The whole body."""
        if self._eof and self._error is None:
            pieces = self._pieces
            return pieces[0] if len(pieces) == 1 else b"".join(pieces)
        parts = []
        while piece := await self.readany():
            parts.append(piece)
        return b"".join(parts)

    async def iter_any(self) -> AsyncIterator[bytes]:
        while piece := await self.readany():
            yield piece

    def close(self) -> None:
        """Done with this answer before its end: its connection is closed, not reused."""
        conn = self._conn
        if conn is not None:
            self._conn = None
            conn.close()
        if not self._eof and self._error is None:
            self._error = UpstreamDisconnected("the answer was closed before its end")

    def release(self) -> None:
        self.close()


_NO_HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())


class _Conn(asyncio.Protocol):
    """One connection: writes requests, feeds the parser, hands what it parses to the current
    response. The parser's callbacks are this object's on_* methods."""

    def __init__(self, client: Http1Client, origin: Origin, loop: asyncio.AbstractEventLoop) -> None:
        self.client, self.origin, self.loop = client, origin, loop
        self.transport: asyncio.Transport | None = None
        self.parser = HttpResponseParser(self)
        self.resp: LeanResponse | None = None
        self.open = False
        self.idle_since = 0.0
        #: answers read on this connection: a later exchange on it is a reuse
        self.answered = 0
        self._got_bytes = False
        self._hdrs: CIMultiDict[str] = CIMultiDict()
        self._until_close = False
        self.paused = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport is not an asyncio.Transport subclass, but has its methods
        self.transport = cast(asyncio.Transport, transport)
        self.open = True
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self.resp is None:
            self.close()  # bytes nobody asked for: the connection is out of step
            return
        self._got_bytes = True
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade:
            self._abort(UpstreamProtocolError("the upstream switched protocols"))
        except HttpParserError as e:
            self._abort(UpstreamProtocolError(f"invalid HTTP from the upstream: {e}"))

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        resp = self.resp
        if resp is None:
            return
        self.resp = None
        if resp.status and self._until_close and exc is None:
            self._finish(resp)  # a body without a length ends with the connection
            return
        if not self._got_bytes and self.answered:
            resp._fail(_StaleConnection("the reused connection was closed before the answer"))
        elif exc is not None:
            resp._fail(UpstreamDisconnected(f"the upstream connection broke ({type(exc).__name__})"))
        else:
            resp._fail(UpstreamDisconnected("the upstream closed the connection before the end of its answer"))
        resp._conn = None

    def pause_writing(self) -> None:
        pass  # request bodies are bounded; the transport buffers them

    def resume_writing(self) -> None:
        pass

    # the exchange's side

    def send(self, head: bytes, body: bytes | None, resp: LeanResponse) -> None:
        self.resp = resp
        self._got_bytes = False
        t = self.transport
        if t is None or t.is_closing():
            self.connection_lost(None)
            return
        if body is None:
            t.write(head)
        elif len(body) <= _JOIN_BODY:
            t.write(head + body)
        else:
            t.writelines((head, body))

    def resume(self) -> None:
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        self.open = False
        if self.transport is not None:
            self.transport.close()
        self.resp = None

    def _abort(self, e: BaseException) -> None:
        resp = self.resp
        self.resp = None
        self.open = False
        if self.transport is not None:
            self.transport.abort()
        if resp is not None:
            resp._conn = None
            resp._fail(e)

    def _finish(self, resp: LeanResponse) -> None:
        resp._eof = True
        d = resp._decoder
        if d is not None:
            try:
                tail = d.flush()
            except zlib.error as e:
                resp._fail(UpstreamProtocolError(f"the upstream's compressed body is broken: {e}"))
                return
            if tail:
                resp._pieces.append(tail)
        resp._wake()

    # httptools' callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self._hdrs.add(name.decode("latin-1"), value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        resp = self.resp
        status = self.parser.get_status_code()
        hdrs, self._hdrs = self._hdrs, CIMultiDict()
        if resp is None or status < 200:
            return  # an interim answer (100 Continue): the real one follows
        resp.status = status
        resp.headers = CIMultiDictProxy(hdrs)
        length = hdrs.get("Content-Length")
        chunked = "chunked" in hdrs.get("Transfer-Encoding", "").lower()
        self._until_close = length is None and not chunked and status not in (204, 304)
        if length is not None and not chunked:
            resp.content_length = int(length)
        encoding = hdrs.get("Content-Encoding")
        if encoding is not None:
            self._decoding(resp, encoding.strip().lower())
        resp._wake()

    def _decoding(self, resp: LeanResponse, encoding: str) -> None:
        if encoding in ("gzip", "x-gzip"):
            resp._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            resp._decoder = zlib.decompressobj()
        elif encoding != "identity":
            self._abort(UnsupportedEncoding(f"the upstream sent a body in Content-Encoding {encoding[:40]!r}"))
            return
        resp.content_length = None  # the length on the wire is not the body's

    def on_body(self, body: bytes) -> None:
        resp = self.resp
        if resp is None or not resp.status:
            return
        d = resp._decoder
        if d is not None:
            try:
                body = d.decompress(body)
            except zlib.error as e:
                self._abort(UpstreamProtocolError(f"the upstream's compressed body is broken: {e}"))
                return
            if not body:
                return
        resp._pieces.append(body)
        resp._buffered += len(body)
        if resp._buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        resp._wake()

    def on_message_complete(self) -> None:
        resp = self.resp
        if resp is None or not resp.status:
            return  # the end of an interim answer
        self.resp = None
        self.answered += 1
        resp._conn = None
        if self.paused:
            self.resume()  # the last piece both crossed the high-water mark and ended the answer
        keep = self.parser.should_keep_alive() and self.open
        self._finish(resp)
        if keep:
            self.client.release(self)
        else:
            self.close()
