"""The `unigate` command: serve, providers, models, status, and the admin API of a running gateway
(keys, teams, credits, usage, audit)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from unigate import __version__
from unigate.config import Config, ConfigError, load_config


def _config(args: argparse.Namespace) -> Config:
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
        if p.dialect == "local":  # in the gateway itself: on unless the config or UNIGATE_LOCAL=off says no
            rows.append((pid, p.dialect, "yes" if cfg.local.enabled else "-", "(none) UNIGATE_LOCAL=off disables",
                         "in process"))
            continue
        rows.append((pid, p.dialect, "yes" if prov else "-", key_env_names(p)[0] if not p.keyless else f"(none) {base_url_env_names(p)[0]}",
                     prov.base_url if prov else p.base_url))
    for pid, prov in sorted(configured.items()):
        if pid not in PRESETS:
            rows.append((pid, prov.preset.dialect, "yes", "(config)", prov.base_url))
    _table(rows)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """The model catalog as a table; CONFIGURED says whether this setup can reach the provider."""
    from unigate.app import build_gateway, list_models
    from unigate.catalog import CAPABILITIES, ModelInfo, all_models, lookup
    from unigate.providers.registry import build_providers

    cfg = _config(args)
    configured = set(build_providers(cfg))
    if cfg.local.enabled:  # the embedded model is there unless disabled
        configured.add("local")

    def num(n: int | None) -> str:
        return "-" if n is None else str(n)

    def usd(x: float | None, tiered: bool) -> str:
        return "-" if x is None else f"{x:.4g}" + ("+" if tiered else "")

    short = {"json_schema": "json", "streaming": "stream", "embeddings": "embed", "reasoning": "reason"}

    def row(name: str, m: ModelInfo | None, conf: bool) -> tuple[object, ...]:
        if m is None:
            return (name, "-", "-", "-", "-", "-", "yes" if conf else "-")
        caps = [short.get(c, c) for c in CAPABILITIES if c in m.capabilities]
        caps += [short.get(c, c) + "?" for c in CAPABILITIES if c in m.unknown]
        return (name, num(m.context_window), num(m.max_output), usd(m.input_price, m.tiered),
                usd(m.output_price, m.tiered), ",".join(caps) or "-", "yes" if conf else "-")

    models = all_models()
    rows: list[tuple[object, ...]] = [("MODEL", "CONTEXT", "MAX OUT", "INPUT $/M", "OUTPUT $/M", "CAPABILITIES", "CONFIGURED")]
    rows += [row(m.id, m, m.provider in configured) for m in models]
    # what this configuration serves beyond the catalog: aliases, groups, uncatalogued models
    known = {m.id for m in models}
    for served in list_models(build_gateway(cfg)):
        if served["id"] not in known:
            pid, _, name = served["id"].partition("/")
            rows.append(row(served["id"], lookup(pid, name) if name else None, True))
    _table(rows)
    print(f"\n{len(models)} catalog models from {len({m.provider for m in models})} providers. "
          "Prices: USD per million tokens (genai-prices snapshot, else the catalog data file); "
          "'+' = tiered or dated prices, base shown; '?' = capability unconfirmed.")
    return 0


class AdminError(Exception):
    pass


def _admin(args: argparse.Namespace, method: str, path: str, body: dict[str, object] | None = None) -> Any:
    """One call to a running gateway's admin API, with the master key from the environment or config."""
    import json

    return json.loads(_admin_raw(args, method, path, body))


def _admin_raw(args: argparse.Namespace, method: str, path: str, body: dict[str, object] | None = None) -> bytes:
    """As `_admin`, the answer's body as it came (a CSV report is not JSON)."""
    import http.client
    import json
    from urllib.parse import urlsplit

    cfg = _config(args)
    url = urlsplit(args.url or f"http://127.0.0.1:{cfg.server.port}")
    key = os.environ.get("UNIGATE_MASTER_KEY") or cfg.server.master_key
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=10)
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        r = conn.getresponse()
        data = r.read()
    except OSError as e:
        raise AdminError(f"no gateway answers at {url.geturl()}: {e.strerror or e}") from None
    if r.status >= 300:
        raise AdminError(f"{url.geturl()} answered HTTP {r.status}: {data[:300].decode(errors='replace')}")
    return data


def cmd_keys(args: argparse.Namespace) -> int:
    """Virtual keys through a running gateway's admin API (the secret is printed once)."""
    fields: dict[str, object] = {}
    if getattr(args, "name", None) is not None:
        fields["name"] = args.name
    if getattr(args, "team", None) is not None:
        fields["team"] = args.team
    if getattr(args, "models", None) is not None:
        fields["models"] = [m for m in args.models.split(",") if m]
    if getattr(args, "expires_at", None) is not None:
        fields["expires_at"] = args.expires_at
    if getattr(args, "role", None) is not None:
        fields["role"] = args.role
    fields.update(_limit_fields(args))
    if getattr(args, "credits", None) is not None:
        fields["credits_usd"] = args.credits
    act = args.action
    if act == "create":
        out = _admin(args, "POST", "/admin/keys", fields)
    elif act == "list":
        out = _admin(args, "GET", "/admin/keys")
        rows: list[tuple[object, ...]] = [("ID", "NAME", "TEAM", "MODELS", "ROLE", "REVOKED")]
        rows += [(k["id"], k["name"], k["team"] or "-", ",".join(k["models"]) or "*", k.get("role", "user"),
                  "yes" if k["revoked_at"] else "-") for k in out["data"]]
        _table(rows)
        return 0
    elif act == "show":
        out = _admin(args, "GET", f"/admin/keys/{args.id}")
    elif act == "update":
        out = _admin(args, "PATCH", f"/admin/keys/{args.id}", fields)
    elif act == "revoke":
        out = _admin(args, "POST", f"/admin/keys/{args.id}/revoke", {})
    else:
        out = _admin(args, "POST", f"/admin/keys/{args.id}/rotate", {"grace_seconds": args.grace})
    import json

    print(json.dumps(out, indent=2))
    return 0


def _quote(segment: str) -> str:
    """A path segment as typed (a team id, an account "team:t1"), escaped so it stays one segment."""
    from urllib.parse import quote

    return quote(segment, safe=":")


def _print_json(obj: Any) -> None:
    import json

    print(json.dumps(obj, indent=2))


def _when(t: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


_LIMIT_FLAGS = (("rpm", "rpm"), ("tpm", "tpm"), ("max_parallel", "max_parallel"), ("budget", "budget_usd"),
                ("budget_period", "budget_period"), ("uses_credits", "uses_credits"))


def _limit_fields(args: argparse.Namespace) -> dict[str, object]:
    """--rpm/--tpm/--max-parallel/--budget/--budget-period/--uses-credits; "none" turns one off."""
    out: dict[str, object] = {}
    for flag, name in _LIMIT_FLAGS:
        v = getattr(args, flag, None)
        if v is not None:
            out[name] = None if v == "none" else v
    return out


def _add_limit_flags(p: argparse.ArgumentParser, *, key: bool) -> None:
    def int_or_none(v: str) -> int | str:
        return v if v == "none" else int(v)

    def usd_or_none(v: str) -> float | str:
        return v if v == "none" else float(v)

    p.add_argument("--rpm", type=int_or_none, help="requests per minute ('none': no limit)")
    p.add_argument("--tpm", type=int_or_none, help="tokens per minute ('none': no limit)")
    p.add_argument("--max-parallel", type=int_or_none, help="calls in flight at once ('none': no limit)")
    p.add_argument("--budget", type=usd_or_none, help="USD per budget period ('none': no budget)")
    p.add_argument("--budget-period", choices=("daily", "weekly", "monthly", "total"))
    p.add_argument("--uses-credits", action=argparse.BooleanOptionalAction, default=None,
                   help="pay the calls from the key's credit balance" if key else
                   "pay the calls of the team's keys (those without credits of their own) from the team's balance")


def cmd_teams(args: argparse.Namespace) -> int:
    """Teams through a running gateway's admin API."""
    fields: dict[str, object] = {}
    if getattr(args, "id_", None) is not None:
        fields["id"] = args.id_
    if getattr(args, "name", None) is not None:
        fields["name"] = args.name
    if getattr(args, "models", None) is not None:
        fields["models"] = [m for m in args.models.split(",") if m]
    fields.update(_limit_fields(args))
    if getattr(args, "credits", None) is not None:
        fields["credits_usd"] = args.credits
    act = args.action
    if act == "create":
        out = _admin(args, "POST", "/admin/teams", fields)
    elif act == "list":
        out = _admin(args, "GET", "/admin/teams")
        rows: list[tuple[object, ...]] = [("ID", "NAME", "MODELS", "CREATED")]
        rows += [(t["id"], t["name"], ",".join(t["models"]) or "*", _when(t["created_at"])) for t in out["data"]]
        _table(rows)
        return 0
    elif act == "show":
        out = _admin(args, "GET", f"/admin/teams/{_quote(args.id)}")
    else:
        out = _admin(args, "PATCH", f"/admin/teams/{_quote(args.id)}", fields)
    _print_json(out)
    return 0


def cmd_credits(args: argparse.Namespace) -> int:
    """Credit top-ups and balances of "key:<id>" or "team:<id>"."""
    if args.action == "add":
        body: dict[str, object] = {"account": args.account, "amount_usd": args.amount}
        if args.note is not None:
            body["note"] = args.note
        _print_json(_admin(args, "POST", "/admin/credits", body))
        return 0
    out = _admin(args, "GET", f"/admin/credits/{_quote(args.account)}?limit={args.limit}")
    print(f"{out['account']}: balance {out['balance_usd']:.6f} USD")
    if out["entries"]:
        rows: list[tuple[object, ...]] = [("TIME (UTC)", "KIND", "AMOUNT USD", "ACTOR", "NOTE")]
        rows += [(_when(e["time"]), e["kind"], f"{e['amount_usd']:+.6f}", e["actor"], e["note"] or "-")
                 for e in out["entries"]]
        _table(rows)
    return 0


def cmd_usage(args: argparse.Namespace) -> int:
    """Usage totals from the ledger: a table, or the gateway's CSV as it answers it."""
    from urllib.parse import urlencode

    query = {name: value for name, value in (
        ("since", args.since), ("until", args.until), ("group_by", args.group_by), ("key_id", args.key),
        ("team", args.team), ("model", args.model), ("provider", args.provider),
    ) if value is not None}  # fmt: skip
    if args.csv:
        query["format"] = "csv"
        sys.stdout.write(_admin_raw(args, "GET", "/admin/usage?" + urlencode(query)).decode())
        return 0
    out = _admin(args, "GET", "/admin/usage?" + urlencode(query))
    print(f"{_when(out['since'])} to {_when(out['until'])} UTC, by {out['group_by']}")
    rows: list[tuple[object, ...]] = [(out["group_by"].upper(), "REQUESTS", "INPUT", "OUTPUT", "CACHED", "REASONING",
                                       "COST USD", "ERRORS")]
    rows += [(b["group"] or "-", b["requests"], b["input_tokens"], b["output_tokens"], b["cached_tokens"],
              b["reasoning_tokens"], f"{b['cost_usd']:.6f}", b["errors"]) for b in out["data"]]
    _table(rows)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """The admin audit trail, newest first."""
    import json
    from urllib.parse import urlencode

    query: dict[str, object] = {"limit": args.limit}
    if args.target is not None:
        query["target"] = args.target
    out = _admin(args, "GET", "/admin/audit?" + urlencode(query))
    rows: list[tuple[object, ...]] = [("TIME (UTC)", "ACTOR", "ACTION", "TARGET", "DETAILS")]
    rows += [(_when(e["time"]), e["actor"], e["action"], e["target"], json.dumps(e["details"], sort_keys=True))
             for e in out["data"]]
    _table(rows)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Each deployment's health, from a running gateway's /admin/deployments."""
    data = _admin(args, "GET", "/admin/deployments")
    rows: list[tuple[object, ...]] = [("DEPLOYMENT", "MODEL", "STATE", "ERRORS", "REQUESTS", "IN FLIGHT", "TTFT MS",
                                       "MS/TOKEN", "REOPENS IN")]
    for d in data["data"]:
        rows.append((d["id"], d["model"], d["state"], f"{d['error_rate']:.0%}", d["requests_in_window"],
                     d["in_flight"], d["ttft_ms"] or "-", d["ms_per_output_token"] or "-",
                     "-" if d["reopens_in_s"] is None else f"{d['reopens_in_s']} s"))
    _table(rows)
    return 0


def _table(rows: Sequence[Sequence[object]]) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)).rstrip())


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
    st = with_config(sub.add_parser("status", help="each deployment's health, from a running gateway"))
    st.add_argument("--url", help="the gateway (default http://127.0.0.1:<server.port>)")
    st.set_defaults(fn=cmd_status)
    kp = sub.add_parser("keys", help="virtual keys, through a running gateway (master key from UNIGATE_MASTER_KEY)")
    ks = kp.add_subparsers(dest="action", required=True)
    for action in ("create", "list", "show", "update", "revoke", "rotate"):
        k = with_config(ks.add_parser(action))
        k.add_argument("--url", help="the gateway (default http://127.0.0.1:<server.port>)")
        if action in ("show", "update", "revoke", "rotate"):
            k.add_argument("id")
        if action in ("create", "update"):
            k.add_argument("--name")
            k.add_argument("--team")
            k.add_argument("--models", help="comma-separated ids, aliases or globs (anthropic/*)")
            k.add_argument("--expires-at", type=float, help="epoch seconds")
            k.add_argument("--role", choices=("user", "viewer", "admin"),
                           help="the admin API and dashboard: none (user, the default), read (viewer), all (admin)")
            _add_limit_flags(k, key=True)
        if action == "create":
            k.add_argument("--credits", type=float, help="a first top-up in USD (pays the key's calls)")
        if action == "rotate":
            k.add_argument("--grace", type=float, default=0.0, help="seconds the old secret keeps working")
        k.set_defaults(fn=cmd_keys)

    def admin_cmd(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        with_config(p).add_argument("--url", help="the gateway (default http://127.0.0.1:<server.port>)")
        return p

    tp = sub.add_parser("teams", help="teams, through a running gateway (master key from UNIGATE_MASTER_KEY)")
    ts = tp.add_subparsers(dest="action", required=True)
    for action in ("create", "list", "show", "update"):
        t = admin_cmd(ts.add_parser(action))
        if action in ("show", "update"):
            t.add_argument("id")
        if action == "create":
            t.add_argument("--id", dest="id_", help="the team's id (default: a generated team_...)")
            t.add_argument("--credits", type=float, help="a first top-up in USD (pays the team's keys' calls)")
        if action in ("create", "update"):
            t.add_argument("--name")
            t.add_argument("--models", help="comma-separated ids, aliases or globs (anthropic/*)")
            _add_limit_flags(t, key=False)
        t.set_defaults(fn=cmd_teams)
    cp = sub.add_parser("credits", help="credit top-ups and balances, through a running gateway")
    cs = cp.add_subparsers(dest="action", required=True)
    c = admin_cmd(cs.add_parser("add", help="a top-up (a negative AMOUNT: an adjustment)"))
    c.add_argument("account", help="key:<id> or team:<id>")
    c.add_argument("amount", type=float, help="US dollars")
    c.add_argument("--note")
    c.set_defaults(fn=cmd_credits)
    c = admin_cmd(cs.add_parser("show", help="the balance and the newest entries"))
    c.add_argument("account", help="key:<id> or team:<id>")
    c.add_argument("--limit", type=int, default=20, help="entries to show (default 20)")
    c.set_defaults(fn=cmd_credits)
    u = admin_cmd(sub.add_parser("usage", help="usage totals from a running gateway's ledger"))
    u.add_argument("--since", help="epoch seconds or an ISO-8601 date/datetime, UTC (default: 30 days before --until)")
    u.add_argument("--until", help="the same, exclusive (default: now)")
    u.add_argument("--group-by", choices=("key", "team", "model", "provider", "day"), help="default: model")
    u.add_argument("--key", help="only this key id")
    u.add_argument("--team", help="only this team")
    u.add_argument("--model", help="only this served model")
    u.add_argument("--provider", help="only this provider")
    u.add_argument("--csv", action="store_true", help="print the CSV report instead of a table")
    u.set_defaults(fn=cmd_usage)
    a = admin_cmd(sub.add_parser("audit", help="the admin audit trail of a running gateway, newest first"))
    a.add_argument("--target", help="only this key id, team id or credit account")
    a.add_argument("--limit", type=int, default=100, help="rows (1 to 1000, default 100)")
    a.set_defaults(fn=cmd_audit)
    args = ap.parse_args(argv)
    try:
        return int(args.fn(args))
    except ConfigError as e:
        print(f"unigate: invalid configuration: {e}", file=sys.stderr)
        return 2
    except AdminError as e:
        print(f"unigate: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
