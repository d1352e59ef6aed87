"""Runs the app: one process, or N pre-forked workers sharing the port with SO_REUSEPORT
(supervised by the parent: see supervisor.py).

SIGTERM/SIGINT stop accepting and let in-flight requests and streams run until
`server.shutdown_timeout` after the signal. Streams still open then end with the surface's
error event ("the gateway is shutting down") and a clean end of body, calls still waiting
for an upstream get a 503, and the process exits: all within about shutdown_timeout +
DRAIN_GRACE. (See drain.py for how the pipeline's open streams are found.)"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable

from aiohttp import web

from unigate.config import Config
from unigate.telemetry import access

log = logging.getLogger("unigate")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(ai[4][0]).is_loopback for ai in socket.getaddrinfo(host, None))
        except OSError:
            return False


def check_bind(cfg: Config, host: str) -> str | None:
    """An error message when the bind address is unsafe for this config, else None."""
    if cfg.server.master_key:
        return None
    if not is_loopback(host):
        return (
            f"refusing to serve {host} without a master key: anyone who can reach it could spend your "
            "provider credits. Set UNIGATE_MASTER_KEY (or server.master_key), or bind 127.0.0.1."
        )
    return None


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency on every platform we test
        return asyncio.new_event_loop()


#: After the deadline: the time ended streams get to write their error event and close, and
#: calls that were ended get to send their 503, before anything left is cancelled.
DRAIN_GRACE = 1.0


def _run_one(cfg: Config, host: str, port: int, reuse_port: bool, parent: int | None = None,
             metrics_dir: str | None = None) -> int:
    """Serve until SIGTERM/SIGINT (or, in a worker, until the parent is gone), then drain.
    `metrics_dir`: where the workers of this run share their metrics (telemetry/node.py)."""
    from unigate.app import create_app

    loop = _new_loop()
    asyncio.set_event_loop(loop)
    try:
        app = create_app(cfg, freeze_heap=True)
        if reuse_port:
            _share_health(app, cfg)  # several workers: breaker openings go through a shared file
        if metrics_dir is not None:
            _share_metrics(app, metrics_dir)
        loop.run_until_complete(_serve(app, cfg, host, port, reuse_port, parent))
    finally:
        _close_loop(loop)
    return 0


def _share_health(app: web.Application, cfg: Config) -> None:
    from unigate.app import GATEWAY_KEY
    from unigate.config import state_path
    from unigate.routing.health_sync import SqliteHealthSync

    path = os.path.join(os.path.dirname(state_path(cfg, os.environ)), "health.db")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sync = SqliteHealthSync(path, app[GATEWAY_KEY].router.shared_health)
    tasks: list[asyncio.Task[None]] = []

    async def start(app: web.Application) -> None:
        tasks.append(asyncio.get_running_loop().create_task(sync.run()))

    async def stop(app: web.Application) -> None:
        for t in tasks:
            t.cancel()
        sync.close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)


def _share_metrics(app: web.Application, directory: str) -> None:
    from unigate.telemetry.metrics import METRICS_KEY
    from unigate.telemetry.node import NodeShare

    share = NodeShare(directory, app[METRICS_KEY])

    async def start(app: web.Application) -> None:
        share.start()

    app.on_startup.append(start)  # (its last publish is in create_app's cleanup, after the ledger's)


async def _serve(app: web.Application, cfg: Config, host: str, port: int, reuse_port: bool,
                 parent: int | None) -> None:
    """web.run_app without its shutdown: aiohttp's waits `shutdown_timeout` for the handlers
    and then, having only failed the request bodies, waits `shutdown_timeout` again before it
    cancels them (RequestHandler.shutdown, aiohttp 3.9-3.14), and a cancelled stream is cut
    without its terminating chunk. Here the deadline is counted once, from the signal."""
    loop = asyncio.get_running_loop()
    timeout = max(0.0, cfg.server.shutdown_timeout)
    # the runner's own wait outlasts the deadline, so it never cuts what Drain is ending;
    # _shutdown() bounds the whole thing itself
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=timeout + DRAIN_GRACE,
                           access_log=access.LOGGER if cfg.server.access_log else None,
                           access_log_class=access.AccessLog)
    await runner.setup()
    stop = asyncio.Event()
    why: list[str] = []

    def stop_for(reason: str) -> None:
        if not stop.is_set():
            why.append(reason)
            stop.set()

    watcher: asyncio.Task[None] | None = None
    metrics_runner: web.AppRunner | None = None
    try:
        site = web.TCPSite(runner, host, port, backlog=4096, reuse_port=reuse_port)
        await site.start()
        if cfg.metrics.port is not None:
            metrics_runner = await _serve_metrics(app, cfg.metrics.host or host, cfg.metrics.port, reuse_port)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop_for, signal.Signals(sig).name)
        if parent is not None:
            watcher = loop.create_task(_watch_parent(parent, stop_for))
        await stop.wait()
    finally:
        if watcher is not None:
            watcher.cancel()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)  # a second signal must not kill the drain midway
            signal.signal(sig, signal.SIG_IGN)
        if metrics_runner is not None:
            await metrics_runner.cleanup()
        await _shutdown(app, runner, timeout, why[0] if why else "start-up failed")


async def _serve_metrics(app: web.Application, host: str, port: int, reuse_port: bool) -> web.AppRunner:
    """`metrics.port`: /metrics alone on a port of its own (every worker listens on it too, so
    any of them answers, with the whole node's figures)."""
    from unigate.telemetry.metrics import METRICS_KEY

    metrics_app = web.Application()
    metrics_app.router.add_get("/metrics", app[METRICS_KEY].handler())
    runner = web.AppRunner(metrics_app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_port=reuse_port).start()
    return runner


async def _watch_parent(parent: int, stop_for: Callable[[str], None]) -> None:
    # the fallback for PR_SET_PDEATHSIG (other platforms, or prctl refused): a worker whose
    # parent is gone has nobody to restart or stop it, so it stops itself
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    stop_for("the parent process is gone")


async def _shutdown(app: web.Application, runner: web.AppRunner, timeout: float, why: str) -> None:
    """Stop accepting, give in-flight requests until `timeout` from now, end the streams still
    open then with the surface's error event, and return within about timeout + DRAIN_GRACE."""
    from unigate.app import GATEWAY_KEY
    from unigate.drain import Drain

    loop = asyncio.get_running_loop()
    # a Gateway without the pipeline's drain hook still stops in time, with streams cut as before
    drain: Drain = getattr(app[GATEWAY_KEY], "drain", None) or Drain()
    n = drain.open
    if n:
        log.info("%s: stopping; %d open call(s)/stream(s) get up to %.1f s to finish", why, n, timeout)
    else:
        log.info("%s: stopping", why)

    def deadline() -> None:
        ended = drain.end_all()
        if ended:
            log.warning("shutdown deadline: ended %d open stream(s)/call(s) with a 'shutting down' error", ended)

    timer = loop.call_later(timeout, deadline)
    # runner.cleanup(): closes the listener, then idle keep-alive connections, runs on_shutdown,
    # waits for the handlers (Drain ends them at the deadline), then runs on_cleanup
    cleanup = loop.create_task(runner.cleanup())
    try:
        done, _ = await asyncio.wait({cleanup}, timeout=timeout + DRAIN_GRACE)
        if not done:
            # handlers Drain does not know about (or that ignored it): cancel them, so aiohttp
            # does not wait its shutdown_timeout a second time
            n = _cancel_handlers(runner)
            log.warning("shutdown: cancelling %d request(s) still running after the deadline", n)
            done, _ = await asyncio.wait({cleanup}, timeout=DRAIN_GRACE)
        if not done:
            log.error("shutdown: the server did not stop in time; exiting anyway")
            cleanup.cancel()
        (err,) = await asyncio.gather(cleanup, return_exceptions=True)
        if isinstance(err, Exception):
            log.error("shutdown: cleanup failed: %r", err)
    finally:
        timer.cancel()


def _cancel_handlers(runner: web.AppRunner) -> int:
    """Cancel the request tasks still running. aiohttp has no public handle on them; the
    attribute has been there through 3.x, and without it the runner's own timeout still ends
    them, only later."""
    server = runner.server
    n = 0
    for conn in server.connections if server is not None else ():
        task = getattr(conn, "_task_handler", None)
        if task is not None and not task.done():
            task.cancel()
            n += 1
    return n


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """What run_app does on the way out: cancel what is left, finish async generators, close."""
    try:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def serve(cfg: Config, host: str, port: int, workers: int) -> int:
    import msgspec

    cfg = msgspec.structs.replace(cfg, server=msgspec.structs.replace(cfg.server, host=host, port=port, workers=workers))
    problem = check_bind(cfg, host)
    if problem:
        print(f"unigate: {problem}", file=sys.stderr)
        return 2
    if not cfg.server.master_key:
        log.warning("no master key set: serving %s only, without authentication", host)
    log.info("unigate listening on http://%s:%d (%d worker%s)", host, port, workers, "s" if workers > 1 else "")
    if workers <= 1:
        return _run_one(cfg, host, port, reuse_port=False)
    import shutil
    import tempfile

    from unigate.supervisor import Supervisor

    # this run's metrics, one file per worker; a new run starts from zero (telemetry/node.py)
    metrics_dir = tempfile.mkdtemp(prefix="unigate-metrics-")

    def worker(parent: int) -> int:
        return _run_one(cfg, host, port, reuse_port=True, parent=parent, metrics_dir=metrics_dir)

    try:
        return Supervisor(workers, worker, cfg.server.shutdown_timeout).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
