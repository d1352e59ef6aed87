"""The "Python floor": the least a Python gateway can do per request, to measure unigate against.

aiohttp server + one keep-alive aiohttp ClientSession, uvloop, orjson. Per request it
  1. checks the bearer key (constant-time compare),
  2. parses the JSON body, picks the upstream from the model prefix (`<upstream>/<model>`),
     puts the upstream's model name in and serialises the body again,
  3. forwards it over a pooled keep-alive connection,
  4. JSON: reads the answer, parses it and takes `usage` (the accounting a gateway must do),
     relays the bytes; stream: relays each chunk as it arrives, parsing only the event that
     carries the usage object.
Nothing else: no validation, no error mapping, no fallbacks, no request ids, no ledger.

    python bench/floor.py --port 9100 --key sk-x --upstream fast=http://127.0.0.1:9001/v1 [--workers 2]

`--workers N` forks N processes that each bind the port with SO_REUSEPORT; SIGTERM/SIGINT to
the parent stops them all.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import os
import signal
import sys

import aiohttp
import orjson
from aiohttp import web

USAGE_MARK = b'"usage":{'


class Floor:
    def __init__(self, key: str, upstreams: dict[str, str], upstream_key: str) -> None:
        self.expected = f"Bearer {key}".encode()
        self.upstreams = {name: url.rstrip("/") + "/chat/completions" for name, url in upstreams.items()}
        self.up_headers = {"Authorization": f"Bearer {upstream_key}", "Content-Type": "application/json"}
        self.session: aiohttp.ClientSession | None = None
        self.tokens = 0  # usage seen, so the parse is not dead code

    async def start(self, app: web.Application) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60),
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )

    async def stop(self, app: web.Application) -> None:
        if self.session is not None:
            await self.session.close()

    def _usage(self, obj: object) -> None:
        if isinstance(obj, dict):
            u = obj.get("usage")
            if isinstance(u, dict):
                self.tokens += int(u.get("total_tokens") or 0)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        got = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(got, self.expected):
            return web.Response(status=401, body=b'{"error":{"message":"bad key","type":"invalid_request_error"}}',
                                content_type="application/json")
        try:
            body = orjson.loads(await request.read())
            prefix, _, model = body["model"].partition("/")
            url = self.upstreams[prefix]
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return web.Response(status=400, body=b'{"error":{"message":"bad request","type":"invalid_request_error"}}',
                                content_type="application/json")
        body["model"] = model
        assert self.session is not None
        async with self.session.post(url, data=orjson.dumps(body), headers=self.up_headers) as up:
            if body.get("stream") is not True:
                data = await up.read()
                if up.status == 200:
                    self._usage(orjson.loads(data))
                return web.Response(status=up.status, body=data, content_type="application/json")
            resp = web.StreamResponse(status=up.status, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
            await resp.prepare(request)
            pending = b""  # the start of a line that TCP cut; usage is parsed from whole lines only
            async for data in up.content.iter_any():
                buf = pending + data if pending else data
                nl = buf.rfind(b"\n")
                whole, pending = buf[: nl + 1], buf[nl + 1 :]
                if USAGE_MARK in whole:
                    for line in whole.split(b"\n"):
                        if USAGE_MARK in line and line.startswith(b"data: "):
                            self._usage(orjson.loads(line[6:]))
                await resp.write(data)
            await resp.write_eof()
            return resp


def build_app(key: str, upstreams: dict[str, str], upstream_key: str) -> web.Application:
    floor = Floor(key, upstreams, upstream_key)
    app = web.Application()

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.add_routes([web.post("/v1/chat/completions", floor.chat), web.get("/health", health)])
    app.on_startup.append(floor.start)
    app.on_cleanup.append(floor.stop)
    return app


def _run_one(a: argparse.Namespace, upstreams: dict[str, str], reuse_port: bool) -> None:
    import uvloop

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    web.run_app(build_app(a.key, upstreams, a.upstream_key), host="127.0.0.1", port=a.port, access_log=None,
                backlog=4096, reuse_port=reuse_port, print=None, loop=loop, shutdown_timeout=2.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--key", required=True, help="the bearer key clients must send")
    ap.add_argument("--upstream", action="append", required=True, metavar="NAME=URL",
                    help="model prefix NAME goes to the OpenAI base URL (…/v1); repeatable")
    ap.add_argument("--upstream-key", default="sk-upstream")
    ap.add_argument("--workers", type=int, default=1)
    a = ap.parse_args()
    upstreams = dict(u.split("=", 1) for u in a.upstream)
    if a.workers <= 1:
        _run_one(a, upstreams, reuse_port=False)
        return 0
    children = []
    for _ in range(a.workers):
        pid = os.fork()
        if pid == 0:
            try:
                _run_one(a, upstreams, reuse_port=True)
            finally:
                os._exit(0)
        children.append(pid)

    def stop(signum: int, frame: object) -> None:
        for c in children:
            try:
                os.kill(c, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for c in children:
        while True:
            try:
                os.waitpid(c, 0)
                break
            except InterruptedError:
                continue
            except ChildProcessError:
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())
