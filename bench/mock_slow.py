"""A paced OpenAI upstream for the latency phases (aiohttp + uvloop).

    POST /v1/chat/completions         waits --ttfb-ms, then answers payloads.completion_json()
    POST /stream/v1/chat/completions  waits --ttfb-ms, then sends payloads.sse_events() one by
                                      one, --gap-ms apart
    GET  /health                      200

The bodies are exactly those of the instant nginx mock, only paced like a hosted model, so that
"peer minus direct" isolates what the peer adds. Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from aiohttp import web

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import payloads


def build_app(ttfb_s: float, gap_s: float) -> web.Application:
    completion = payloads.completion_json()
    events = payloads.sse_events()

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(ttfb_s)
        return web.Response(body=completion, content_type="application/json")

    async def chat_stream(request: web.Request) -> web.StreamResponse:
        await request.read()
        await asyncio.sleep(ttfb_s)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        # headers and the first event leave together, as from a model's first token
        await resp.write(events[0])
        for ev in events[1:]:
            await asyncio.sleep(gap_s)
            await resp.write(ev)
        await resp.write_eof()
        return resp

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.add_routes(
        [
            web.post("/v1/chat/completions", chat),
            web.post("/stream/v1/chat/completions", chat_stream),
            web.get("/health", health),
        ]
    )
    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ttfb-ms", type=float, default=50.0)
    ap.add_argument("--gap-ms", type=float, default=10.0)
    a = ap.parse_args()
    import uvloop

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    web.run_app(
        build_app(a.ttfb_ms / 1000, a.gap_ms / 1000),
        host="127.0.0.1",
        port=a.port,
        access_log=None,
        backlog=4096,
        print=None,
        loop=loop,
        shutdown_timeout=1.0,
    )


if __name__ == "__main__":
    main()
