"""The one place that sends HTTP to providers: a pooled keep-alive aiohttp session per process,
per-deployment timeouts, and transport failures mapped to gateway errors."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from functools import lru_cache
from types import TracebackType
from typing import Any

import aiohttp

from unigate import __version__
from unigate.config import Timeouts
from unigate.errors import GatewayError, InvalidRequest, UpstreamTimeout, UpstreamUnavailable
from unigate.providers.base import UpstreamRequest
from unigate.providers.http1 import ConnectFailed, Http1Client, UpstreamConnectionError, UpstreamProtocolError
from unigate.redact import scrub_secrets

log = logging.getLogger("unigate.transport")

#: sent on every upstream call unless the provider's headers say otherwise. Giving aiohttp all
#: three means it adds none of its own per request (its "auto headers" path copies and sorts a
#: header dict on every call). Identity bodies: the gateway relays bytes and would only
#: decompress them.
DEFAULT_HEADERS = {"User-Agent": f"unigate/{__version__}", "Accept": "*/*", "Accept-Encoding": "identity"}


@lru_cache(maxsize=256)
def _client_timeout(connect: float, first_byte: float, total: float) -> aiohttp.ClientTimeout:
    # sock_read bounds the wait for the first byte and every gap after it; `total` the whole call
    return aiohttp.ClientTimeout(total=total, sock_connect=connect, connect=connect, sock_read=first_byte)


class Transport:
    """`client`: "aiohttp" (its ClientSession) or "lean" (providers/http1.py: an asyncio
    protocol with httptools' parser and its own keep-alive pool), config `server.upstream_client`."""

    def __init__(self, client: str = "lean") -> None:
        self._session: aiohttp.ClientSession | None = None
        self._lean: Http1Client | None = Http1Client(DEFAULT_HEADERS) if client == "lean" else None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=60, ttl_dns_cache=300),
                headers=DEFAULT_HEADERS,
                auto_decompress=True,
                # one session serves every client: a cookie one call's upstream set (Cloudflare's
                # __cf_bm on OpenAI) must not be sent on the next call, which may be another tenant's
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def close(self) -> None:
        if self._lean is not None:
            await self._lean.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def open(self, req: UpstreamRequest, timeouts: Timeouts, provider: str) -> Exchange | Any:
        """`async with transport.open(...) as resp`: send `req`, get the response once its headers
        are in. Transport failures, while connecting or inside the block, raise UpstreamTimeout
        (504) or UpstreamUnavailable (502)."""
        if req.exchange is not None:
            return req.exchange  # an upstream in this process
        if self._lean is not None:
            try:
                cm = self._lean.request(req.method, str(req.url), req.body, req.headers, timeouts)
            except UpstreamProtocolError as e:
                # a header HTTP/1.1 cannot carry (a line break, non-latin-1 text): nothing was sent
                raise InvalidRequest(f"{provider}: the request cannot be sent upstream: {e}.") from None
            return Exchange(cm, provider)
        timeout = _client_timeout(timeouts.connect, timeouts.first_byte, timeouts.total)
        return Exchange(self.session.request(req.method, req.url, data=req.body, headers=req.headers, timeout=timeout),
                        provider)


class Exchange:
    """One upstream call as an async context manager (a class, not @asynccontextmanager: this runs
    on every request and a generator-based manager costs two extra frames and a generator)."""

    __slots__ = ("_cm", "_provider")

    def __init__(self, cm: Any, provider: str) -> None:
        self._cm = cm
        self._provider = provider

    async def __aenter__(self) -> aiohttp.ClientResponse:
        try:
            resp: aiohttp.ClientResponse = await self._cm.__aenter__()
            return resp
        except _TRANSPORT_ERRORS as e:
            raise self._mapped(e) from None

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        try:
            await self._cm.__aexit__(et, e, tb)
        except _TRANSPORT_ERRORS as close_error:
            if e is None:
                raise self._mapped(close_error) from None
            # releasing the connection failed after the block failed: the block's error is the news
        if isinstance(e, _TRANSPORT_ERRORS):
            raise self._mapped(e) from None

    def _mapped(self, e: BaseException) -> GatewayError:
        """The client is told what kind of failure it was; the addresses and OS text (which name
        the operator's network) go to the log only."""
        p = self._provider
        log.warning("%s: upstream transport failure: %s", p, scrub_secrets(f"{type(e).__name__}: {e}"))
        if isinstance(e, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
            return UpstreamTimeout(f"{p}: the upstream did not answer in time ({type(e).__name__})", provider=p)
        if isinstance(e, (aiohttp.ClientConnectorError, ConnectFailed)):
            return UpstreamUnavailable(f"{p}: cannot connect to the upstream ({_why(e.os_error)})", provider=p)
        return UpstreamUnavailable(f"{p}: the upstream connection failed ({type(e).__name__})", provider=p)


def _why(e: OSError) -> str:
    if isinstance(e, ConnectionRefusedError) or e.errno == errno.ECONNREFUSED:
        return "connection refused"
    if e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "host unreachable"
    if isinstance(e, socket.gaierror):
        return "the host name does not resolve"
    if e.errno == errno.ETIMEDOUT:
        return "connect timed out"
    if isinstance(e, OSError) and "resolv" in type(e).__name__.lower() + str(e).lower():
        return "the host name does not resolve"
    return type(e).__name__


class BodyTooLong(Exception):
    """An upstream body over the configured limit."""


async def read_limited(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, or BodyTooLong once more than `limit` bytes arrive. A body with a
    Content-Length within the limit (nearly every JSON answer) is read in one call."""
    n = resp.content_length
    if n is not None:
        if n > limit:
            raise BodyTooLong(n)
        return await resp.read()
    parts: list[bytes] = []
    size = 0
    async for piece in resp.content.iter_any():
        size += len(piece)
        if size > limit:
            raise BodyTooLong(size)
        parts.append(piece)
    return b"".join(parts)


async def read_prefix(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """At most `limit` bytes of an (error) body; the rest is never read: the connection is
    closed instead of reused, so a 50 MB error page costs `limit` bytes, not 50 MB."""
    parts: list[bytes] = []
    size = 0
    async for piece in resp.content.iter_any():
        parts.append(piece)
        size += len(piece)
        if size >= limit:
            resp.close()
            break
    return b"".join(parts)[:limit]


_TRANSPORT_ERRORS = (asyncio.TimeoutError, aiohttp.ServerTimeoutError, aiohttp.ClientConnectorError,
                     aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError,
                     UpstreamConnectionError)
