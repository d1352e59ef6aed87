"""Minimal JSON pass-through proxies on different Python HTTP stacks, to choose unigate's.

Each candidate does the same work: check the bearer key, parse the JSON body, forward it with
a keep-alive client, parse the JSON answer, return its bytes.
    python candidates.py STACK PORT UPSTREAM
STACK: aiohttp | uvicorn-aiohttp | uvicorn-httpx | granian-aiohttp
"""

from __future__ import annotations

import sys

import orjson

KEY = b"Bearer sk-bench-1234"


def aiohttp_server(port: int, upstream: str) -> None:
    import uvloop
    from aiohttp import ClientSession, TCPConnector, web

    async def handle(request: web.Request) -> web.Response:
        if request.headers.get("Authorization", "").encode() != KEY:
            return web.Response(status=401)
        body = orjson.loads(await request.read())
        async with request.app["s"].post(upstream, data=orjson.dumps(body), headers={"Content-Type": "application/json"}) as up:
            data = await up.read()
            orjson.loads(data)
            return web.Response(body=data, content_type="application/json")

    async def start(app: web.Application) -> None:
        app["s"] = ClientSession(connector=TCPConnector(limit=0))

    app = web.Application()
    app.on_startup.append(start)
    app.router.add_post("/v1/chat/completions", handle)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, loop=uvloop.new_event_loop())


def asgi_app(client: str, upstream: str):  # type: ignore[no-untyped-def]
    state: dict[str, object] = {}

    async def read_body(receive) -> bytes:  # type: ignore[no-untyped-def]
        parts = []
        while True:
            m = await receive()
            parts.append(m.get("body", b""))
            if not m.get("more_body"):
                return b"".join(parts)

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "lifespan":
            while True:
                m = await receive()
                if m["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif m["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        auth = dict(scope["headers"]).get(b"authorization", b"")
        if auth != KEY:
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        body = orjson.loads(await read_body(receive))
        if client == "aiohttp":
            from aiohttp import ClientSession, TCPConnector

            s = state.get("s") or ClientSession(connector=TCPConnector(limit=0))
            state["s"] = s
            async with s.post(upstream, data=orjson.dumps(body), headers={"Content-Type": "application/json"}) as up:  # type: ignore[attr-defined]
                data = await up.read()
        else:
            import httpx

            c = state.get("c") or httpx.AsyncClient(limits=httpx.Limits(max_connections=None, max_keepalive_connections=100))
            state["c"] = c
            r = await c.post(upstream, content=orjson.dumps(body), headers={"Content-Type": "application/json"})  # type: ignore[attr-defined]
            data = r.content
        orjson.loads(data)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": data})

    return app


def main() -> None:
    stack, port, upstream = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if stack == "aiohttp":
        aiohttp_server(port, upstream)
    elif stack.startswith("uvicorn-"):
        import uvicorn

        uvicorn.run(asgi_app(stack.split("-")[1], upstream), host="127.0.0.1", port=port, loop="uvloop",
                    http="httptools", access_log=False, log_level="warning", lifespan="on")
    elif stack == "granian-aiohttp":
        from granian import Granian
        from granian.constants import Interfaces, Loops

        import candidates as me

        me.APP = asgi_app("aiohttp", upstream)  # type: ignore[attr-defined]
        Granian("candidates:APP", address="127.0.0.1", port=port, interface=Interfaces.ASGI, workers=1,
                loop=Loops.uvloop, log_enabled=False).serve()
    else:
        raise SystemExit(f"unknown stack {stack}")


if __name__ == "__main__":
    main()
