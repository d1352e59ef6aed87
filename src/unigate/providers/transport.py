"""The one place that sends HTTP to providers: a pooled keep-alive aiohttp session per process,
per-deployment timeouts, and transport failures mapped to gateway errors."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import AsyncIterator

import aiohttp

from unigate.config import Timeouts
from unigate.errors import UpstreamTimeout, UpstreamUnavailable
from unigate.providers.base import UpstreamRequest


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
                # identity bodies: the gateway relays bytes and would only decompress them
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
                auto_decompress=True,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @asynccontextmanager
    async def open(self, req: UpstreamRequest, timeouts: Timeouts, provider: str) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send `req`; yield the response once its headers are in. Transport failures raise
        UpstreamTimeout (504) or UpstreamUnavailable (502)."""
        timeout = _client_timeout(timeouts.connect, timeouts.first_byte, timeouts.total)
        try:
            async with self.session.request(
                req.method, req.url, data=req.body, headers=req.headers, timeout=timeout
            ) as resp:
                yield resp
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as e:
            raise UpstreamTimeout(
                f"{provider}: the upstream did not answer in time ({type(e).__name__})", provider=provider
            ) from None
        except aiohttp.ClientConnectorError as e:
            raise UpstreamUnavailable(f"{provider}: cannot connect to the upstream: {e.os_error}", provider=provider) from None
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as e:
            raise UpstreamUnavailable(f"{provider}: the upstream connection failed: {e}", provider=provider) from None
