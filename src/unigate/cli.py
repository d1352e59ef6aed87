"""The `unigate` command: serve, providers, models, version."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Sequence

from unigate import __version__
from unigate.config import ConfigError, load_config


def _config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    path = args.config or os.environ.get("UNIGATE_CONFIG")
    return load_config(path)


def cmd_serve(args: argparse.Namespace) -> int:
    from unigate.server import serve

    cfg = _config(args)
    logging.basicConfig(
        level=getattr(logging, cfg.server.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    host = args.host or cfg.server.host
    port = args.port or cfg.server.port
    workers = args.workers or cfg.server.workers
    return serve(cfg, host, port, workers)


def cmd_providers(args: argparse.Namespace) -> int:
    from unigate.providers.presets import PRESETS
    from unigate.providers.registry import base_url_env_names, build_providers, key_env_names

    cfg = _config(args)
    configured = build_providers(cfg)
    rows = [("PROVIDER", "DIALECT", "CONFIGURED", "KEY ENV", "BASE URL")]
    for pid, p in sorted(PRESETS.items()):
        prov = configured.get(pid)
        rows.append((pid, p.dialect, "yes" if prov else "-", key_env_names(p)[0] if not p.keyless else f"(none) {base_url_env_names(p)[0]}",
                     prov.base_url if prov else p.base_url))
    for pid, prov in sorted(configured.items()):
        if pid not in PRESETS:
            rows.append((pid, prov.preset.dialect, "yes", "(config)", prov.base_url))
    _table(rows)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from unigate.app import build_gateway, list_models

    gw = build_gateway(_config(args))
    rows = [("MODEL", "OWNED BY")]
    rows += [(m["id"], m["owned_by"]) for m in list_models(gw)]
    _table(rows)
    return 0


def _table(rows: Sequence[Sequence[object]]) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="unigate", description="A unified LLM gateway.")
    ap.add_argument("--version", action="version", version=f"unigate {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", "-c", help="YAML config file (default: $UNIGATE_CONFIG, else none)")
        return p

    s = with_config(sub.add_parser("serve", help="run the gateway"))
    s.add_argument("--host", help="bind address (default 127.0.0.1)")
    s.add_argument("--port", type=int, help="port (default 4000)")
    s.add_argument("--workers", type=int, help="worker processes sharing the port (default 1)")
    s.set_defaults(fn=cmd_serve)
    with_config(sub.add_parser("providers", help="list the providers unigate knows and which are configured")).set_defaults(fn=cmd_providers)
    with_config(sub.add_parser("models", help="list the models this configuration serves")).set_defaults(fn=cmd_models)
    args = ap.parse_args(argv)
    try:
        return int(args.fn(args))
    except ConfigError as e:
        print(f"unigate: invalid configuration: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
