"""Runs the app: one process, or N pre-forked workers sharing the port with SO_REUSEPORT.
SIGTERM/SIGINT stop accepting, let in-flight requests and streams finish within
`server.shutdown_timeout`, then exit."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
import socket
import sys

from aiohttp import web

from unigate.config import Config

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


def _run_one(cfg: Config, host: str, port: int, reuse_port: bool) -> None:
    from unigate.app import create_app

    loop = _new_loop()
    asyncio.set_event_loop(loop)
    app = create_app(cfg, freeze_heap=True)
    web.run_app(
        app,
        host=host,
        port=port,
        access_log=None,
        backlog=4096,
        reuse_port=reuse_port,
        shutdown_timeout=cfg.server.shutdown_timeout,
        print=None,
        loop=loop,
        handle_signals=True,
    )


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
        _run_one(cfg, host, port, reuse_port=False)
        return 0
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _run_one(cfg, host, port, reuse_port=True)
            except BaseException:
                log.exception("worker crashed")
                code = 1
            os._exit(code)
        children.append(pid)

    def forward(signum: int, _frame: object) -> None:
        for c in children:
            try:
                os.kill(c, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    for c in children:
        while True:
            try:
                _, st = os.waitpid(c, 0)
                if os.waitstatus_to_exitcode(st) not in (0, -signal.SIGTERM):
                    status = 1
                break
            except InterruptedError:
                continue
            except ChildProcessError:
                break
    return status
