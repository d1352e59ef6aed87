"""A recording reverse proxy between a coding agent and the gateway: every request the agent
sends is kept (method, path, headers, body) and forwarded, the answer streamed back as it comes.
Recordings are saved with secrets replaced, and replayed by test_recorded_replay.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

RECORDED = Path(__file__).parent / "recorded"
SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "cookie"})
# hop-by-hop and per-connection headers: meaningless in a replay
DROPPED_HEADERS = frozenset({"host", "content-length", "connection", "transfer-encoding", "accept-encoding"})
REDACTED = "<redacted>"


class Recorder:
    def __init__(self, target: str) -> None:
        self.target = target
        self.requests: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Recorder:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.forward)
        self._session = aiohttp.ClientSession(auto_decompress=False)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        self.requests.append({"method": request.method, "path": request.path_qs,
                              "headers": dict(request.headers), "body": body.decode("utf-8", "replace")})
        headers = {k: v for k, v in request.headers.items() if k.lower() not in DROPPED_HEADERS}
        async with self._session.request(request.method, self.target + request.path_qs, headers=headers,
                                         data=body) as up:
            resp = web.StreamResponse(status=up.status, headers={
                k: v for k, v in up.headers.items() if k.lower() not in DROPPED_HEADERS})
            await resp.prepare(request)
            async for piece in up.content.iter_any():
                await resp.write(piece)
            await resp.write_eof()
            return resp

    def redacted(self) -> list[dict[str, Any]]:
        out = []
        for r in self.requests:
            headers = {k.lower(): (REDACTED if k.lower() in SECRET_HEADERS else v)
                       for k, v in r["headers"].items() if k.lower() not in DROPPED_HEADERS}
            body: Any = r["body"]
            try:
                body = json.loads(body) if body else None
            except ValueError:
                pass
            out.append({"method": r["method"], "path": r["path"], "headers": headers, "body": body})
        return out

    def save(self, agent: str) -> Path:
        path = RECORDED / f"{agent}.json"
        path.write_text(json.dumps(self.redacted(), indent=1, ensure_ascii=False) + "\n")
        return path


def load(agent: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((RECORDED / f"{agent}.json").read_text())
    return data
