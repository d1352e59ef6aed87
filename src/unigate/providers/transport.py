"""The one place that sends HTTP to providers: a pooled keep-alive aiohttp session per process,
per-deployment timeouts, and transport failures mapped to gateway errors."""

from __future__ import annotations

import asyncio
from functools import lru_cache
from types import TracebackType
from typing import Any

import aiohttp

from unigate import __version__
from unigate.config import Timeouts
from unigate.errors import GatewayError, UpstreamTimeout, UpstreamUnavailable
from unigate.providers.base import UpstreamRequest

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
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

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
        if self._session is not None:
            await self._session.close()
            self._session = None

    def open(self, req: UpstreamRequest, timeouts: Timeouts, provider: str) -> "Exchange":
        """`async with transport.open(...) as resp`: send `req`, get the response once its headers
        are in. Transport failures, while connecting or inside the block, raise UpstreamTimeout
        (504) or UpstreamUnavailable (502)."""
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
        p = self._provider
        if isinstance(e, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
            return UpstreamTimeout(f"{p}: the upstream did not answer in time ({type(e).__name__})", provider=p)
        if isinstance(e, aiohttp.ClientConnectorError):
            return UpstreamUnavailable(f"{p}: cannot connect to the upstream: {e.os_error}", provider=p)
        return UpstreamUnavailable(f"{p}: the upstream connection failed: {e}", provider=p)


_TRANSPORT_ERRORS = (asyncio.TimeoutError, aiohttp.ServerTimeoutError, aiohttp.ClientConnectorError,
                     aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)
