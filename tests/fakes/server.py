"""A real HTTP server on 127.0.0.1 for fake upstreams: records what it received, and serves
whatever handlers a provider-specific fake registers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class FakeUpstream:
    """Base for fakes. Subclasses add routes in `setup(app)`; every request is recorded first."""

    requests: list[Received] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    def setup(self, app: web.Application) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def last(self) -> Received:
        assert self.requests, "the fake upstream received no request"
        return self.requests[-1]

    async def start(self) -> FakeUpstream:
        @web.middleware
        async def record(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
            body = await request.read()
            self.requests.append(Received(request.method, request.path, dict(request.query), dict(request.headers), body))
            return await handler(request)

        app = web.Application(middlewares=[record], client_max_size=64 * 1024 * 1024)
        self.setup(app)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def write_in_pieces(resp: web.StreamResponse, data: bytes, sizes: list[int], delay: float = 0.0) -> None:
    """Write `data` in pieces of the given sizes (cycled), to split events across TCP reads."""
    i = k = 0
    while i < len(data):
        n = sizes[k % len(sizes)]
        await resp.write(data[i : i + n])
        i += n
        k += 1
        if delay:
            await asyncio.sleep(delay)
