"""Wires the HTTP application: builds the gateway from the config, mounts the surfaces, and
owns start-up and shutdown of the shared resources (upstream connection pool, ledger)."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from aiohttp import web

from unigate import httpserver, redact
from unigate.accounting.ledger import Ledger
from unigate.config import Config
from unigate.governance.auth import Authenticator
from unigate.pipeline import Gateway
from unigate.providers.base import Deployment, Provider
from unigate.providers.registry import build_providers
from unigate.providers.transport import Transport
from unigate.routing.router import Router
from unigate.surfaces.admin import AdminSurface
from unigate.surfaces.admin_analytics import AnalyticsSurface
from unigate.surfaces.anthropic import AnthropicSurface
from unigate.surfaces.openai import OpenAISurface, expect_handler, fallback_handler, model_object
from unigate.surfaces.responses import ResponsesSurface
from unigate.surfaces.ui import UISurface

log = logging.getLogger("unigate")

GATEWAY_KEY: web.AppKey[Gateway] = web.AppKey("gateway", Gateway)


def build_gateway(cfg: Config, env: Mapping[str, str] | None = None) -> Gateway:
    env = os.environ if env is None else env
    providers = build_providers(cfg, env)
    register_secrets(cfg, providers.values())
    extra: list[Deployment] = []
    if cfg.local.enabled:
        from unigate.providers.local import local_deployments

        extra.extend(local_deployments(cfg))
    router = Router(cfg, providers, extra)
    return Gateway(cfg=cfg, router=router, transport=Transport(), ledger=Ledger(), auth=Authenticator(cfg.server.master_key))


def register_secrets(cfg: Config, providers: Iterable[Provider]) -> None:
    """Tell `redact` what no client-visible text may contain: every credential the gateway holds
    and the host of every upstream that is not a provider's public default."""
    from yarl import URL

    redact.register_secret(cfg.server.master_key)
    for d in cfg.deployments:
        redact.register_secret(d.api_key)  # a deployment's own key (a pool of keys)
    for p in providers:
        redact.register_secret(p.api_key)
        for name, value in p.headers.items():
            if name.lower() not in _PLAIN_HEADERS:
                redact.register_secret(value.removeprefix("Bearer "))
        for name, value in p.options.items():
            if isinstance(value, str) and any(w in name.lower() for w in ("key", "secret", "token", "password")):
                redact.register_secret(value)
        if p.base_url.rstrip("/") != p.preset.base_url.rstrip("/"):
            url = URL(p.base_url)
            if url.host:
                redact.register_host(f"{url.host}:{url.port}" if url.explicit_port else url.host)
                redact.register_host(url.host)


#: provider headers that hold no secret
_PLAIN_HEADERS = frozenset({"content-type", "anthropic-version", "user-agent", "accept"})


def list_models(gw: Gateway) -> list[dict[str, Any]]:
    """Configured names and local models first, then the catalog entries of every configured
    provider (a provider under its own preset's id; a renamed one has no catalog of its own)."""
    from unigate import catalog

    out: list[dict[str, Any]] = []
    seen: set[str] = set()

    def add(mid: str, owner: str, info: Any) -> None:
        if mid not in seen:
            extra = {k: v for k, v in info.to_dict().items() if k not in ("id", "provider")} if info else None
            out.append(model_object(mid, owner, extra))
            seen.add(mid)

    for d in gw.router.direct_deployments():
        add(d.public_id, d.provider.id, catalog.lookup(d.provider.preset.id, d.model))
    for name in gw.router.names():
        add(name, "unigate", None)
    native = [pid for pid, p in gw.router.providers.items() if p.preset.id == pid]
    listed = catalog.models_for(native)
    for info in listed:
        add(info.id, info.provider, info)
    # bare vendor names (`claude-sonnet-4-5`) where they resolve to one model: clients that check
    # their model against this list (Claude Code's model discovery) find theirs
    for d in gw.router.direct_deployments():
        bare = gw.router.bare_name_of(d.public_id)
        if bare:
            add(bare, d.provider.id, catalog.lookup(d.provider.preset.id, d.model))
    for info in listed:
        bare = gw.router.bare_name_of(info.id)
        if bare:
            add(bare, info.provider, info)
    return out


async def open_state_for(gw: Gateway, env: Mapping[str, str]) -> None:
    """Virtual keys need the state layer: one SQLite file by default, PostgreSQL (and Redis)
    when DATABASE_URL (and REDIS_URL) are set. Only with a master key: without one the gateway
    serves loopback without auth, and there is nobody to create keys."""
    from unigate.accounting.persist import LedgerWriter
    from unigate.config import state_path
    from unigate.governance.enforce import Enforcer
    from unigate.governance.keys import KeyCache
    from unigate.state import open_state

    database_url = env.get("DATABASE_URL") or None
    path = None
    if not database_url:
        path = state_path(gw.cfg, env)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    gw.state = await open_state(path, database_url, env.get("REDIS_URL") or None)
    gw.auth.keys = KeyCache(gw.state.keys)
    gw.ledger.add_batch_sink(LedgerWriter(gw.state.ledger))
    gov = gw.cfg.governance
    gw.enforcer = Enforcer(gw.state, gov, gov.shares or gw.cfg.server.workers)
    gw.enforcer.start()
    log.info("state: %s", "PostgreSQL (DATABASE_URL)" if database_url else path)


def settle_heap() -> None:
    """Move everything alive after start-up (config, catalog, price tables: ~70k objects) out of
    the garbage collector's reach. Without this every full collection walks them all (~15 ms
    here, a pause for every request in flight) although they live as long as the process;
    bench/ measured 0.61 -> 0.73 x the floor's requests/s from this alone."""
    t0 = time.perf_counter()
    gc.collect()
    gc.freeze()
    log.debug("heap settled in %.1f ms: %d objects frozen", (time.perf_counter() - t0) * 1000, gc.get_freeze_count())


def create_app(cfg: Config, env: Mapping[str, str] | None = None, *, freeze_heap: bool = False) -> web.Application:
    """`freeze_heap`: call settle_heap() once the catalog is loaded (the server does; tests that
    build many apps in one process do not)."""
    httpserver.install()
    gw = build_gateway(cfg, env)
    app = web.Application(client_max_size=cfg.server.max_body_bytes, handler_args={"max_field_size": 16384})
    app[GATEWAY_KEY] = gw
    surface = OpenAISurface(gw, lambda: list_models(gw))
    routes = surface.routes()
    routes += AnthropicSurface(gw).routes()
    routes += ResponsesSurface(gw).routes()
    routes += AdminSurface(gw).routes()
    routes += AnalyticsSurface(gw).mount(app)
    routes += UISurface().routes()
    app.add_routes(routes)

    ready = {"ok": False}

    async def live(request: web.Request) -> web.Response:
        return web.Response(body=b'{"status":"ok"}', content_type="application/json")

    async def readyz(request: web.Request) -> web.Response:
        body = {"status": "ready" if ready["ok"] else "starting", "providers": sorted(gw.router.providers)}
        return web.Response(body=orjson.dumps(body), status=200 if ready["ok"] else 503, content_type="application/json")

    from unigate.telemetry import access
    from unigate.telemetry.metrics import METRICS_KEY, Metrics
    from unigate.telemetry.tracing import tracer_from_env

    metrics = app[METRICS_KEY] = Metrics(gw.ledger, gw, max_keys=cfg.metrics.max_key_labels,
                                         max_teams=cfg.metrics.max_team_labels)
    if cfg.logging.bodies:
        app[access.LOG_BODIES] = cfg.logging.max_body_chars
    gw.tracer = tracer_from_env(env if env is not None else os.environ)

    metrics_handler = metrics.handler()

    expect = expect_handler()
    app.add_routes([web.get(path, fn, expect_handler=expect) for path, fn in
                    (("/health/live", live), ("/health/ready", readyz), ("/health", live))])
    if cfg.metrics.port is None:  # else only on its own port (server.py)
        app.add_routes([web.get("/metrics", metrics_handler, expect_handler=expect)])
    known = {r.path for r in routes if isinstance(r, web.RouteDef)}
    # [\s\S]: a path with a newline (/%0A) is unknown too, not aiohttp's text/plain 404
    app.router.add_route("*", r"/{tail:[\s\S]*}", fallback_handler(known), expect_handler=expect)

    async def on_startup(app: web.Application) -> None:
        gw.ledger.start()
        if cfg.server.master_key:
            await open_state_for(gw, env if env is not None else os.environ)
        ready["ok"] = True
        # reading the price data takes ~0.5 s: do it off the loop so readiness is not delayed
        from unigate import catalog

        loaded = asyncio.get_running_loop().run_in_executor(None, catalog.get_catalog)
        if freeze_heap:
            loaded.add_done_callback(lambda _f: settle_heap())

    async def on_shutdown(app: web.Application) -> None:
        ready["ok"] = False

    async def on_cleanup(app: web.Application) -> None:
        await gw.ledger.stop()  # the last usage rows reach the state before it closes
        if metrics.node is not None:
            await metrics.node.stop()  # this worker's last figures, for the others' scrapes
        if gw.tracer is not None:
            await asyncio.to_thread(gw.tracer.shutdown)  # the spans still batched go out
        await gw.transport.close()
        try:
            if gw.enforcer is not None:
                await gw.enforcer.close()  # charge what was spent, give the reservations back
        finally:
            if gw.state is not None:
                await gw.state.close()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    return app
