"""The admin surface, for the master key and keys with an admin role (governance/auth.py:
"admin" may do everything here, "viewer" may only read (GET); other keys get a 403):

    GET  /admin/whoami                 the key signed in with: its id, role and team
    GET  /admin/deployments            each deployment's health as the router sees it
    POST /admin/keys                   a virtual key: {name, team, models, rpm, tpm, max_parallel,
                                       budget_usd, budget_period, uses_credits, credits_usd, expires_at, metadata,
                                       role ("user" default, "viewer", "admin")};
                                       the answer carries `id` and, this once, the secret as `key`
    GET  /admin/keys, /admin/keys/{id} keys (never a secret or its hash)
    PATCH /admin/keys/{id}             change fields
    POST /admin/keys/{id}/revoke       stops working everywhere within a second
    POST /admin/keys/{id}/rotate       a new secret; {"grace_seconds": n} keeps the old one that long
    POST /admin/teams                  a team: {id (optional), name, models, rpm, tpm, max_parallel, budget_usd,
                                       budget_period, uses_credits, credits_usd, metadata}
    GET  /admin/teams, /admin/teams/{id}
    PATCH /admin/teams/{id}            change fields
    POST /admin/credits                {account: "key:<id>" | "team:<id>", amount_usd, note}: a top-up
                                       (negative: an adjustment), audited in the same transaction
    GET  /admin/credits/{account}      the balance and the newest entries (?limit=)
    GET  /admin/usage                  the ledger's totals per key, team, model, provider or day
                                       (?since=&until=&group_by=&key_id=&team=&model=&provider=&format=json|csv)
    GET  /admin/audit                  the admin trail, newest first (?target=&limit=)

Every route answers 503 when the gateway keeps no state (no master key). docs/admin-api.md
describes each field, answer and error, and the `unigate` command that calls it.

Keys and teams carry limits (rpm, tpm, max_parallel), a budget (budget_usd, budget_period) and
credits (uses_credits; a key's credits_usd on create is a first top-up; a key with credits of
its own pays from them, else its team pays when the team uses credits), enforced on every call
by governance/enforce.py. Changes are audited under the actor "master" or "key:<id>"."""

from __future__ import annotations

import contextlib
import csv
import io
import math
import re
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from aiohttp import web

from unigate.errors import InvalidRequest, NotFound, ServiceUnavailable
from unigate.governance.auth import Principal, require_admin
from unigate.pipeline import Gateway
from unigate.providers.base import Deployment
from unigate.state import State
from unigate.state.errors import Invalid
from unigate.state.errors import NotFound as StateNotFound
from unigate.state.fields import KEY_FIELDS
from unigate.state.records import AuditEntry, GroupBy, Key, Team, UsageBucket, UsageFilter
from unigate.state.spend_types import CreditEntry, to_nanos, to_usd
from unigate.surfaces import validate
from unigate.surfaces.openai import guarded


class AdminSurface:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/admin/whoami", guarded(self.whoami)),
                web.get("/admin/deployments", guarded(self.deployments)),
                web.post("/admin/keys", guarded(self.create_key)),
                web.get("/admin/keys", guarded(self.list_keys)),
                web.get("/admin/keys/{key_id}", guarded(self.get_key)),
                web.patch("/admin/keys/{key_id}", guarded(self.update_key)),
                web.post("/admin/keys/{key_id}/revoke", guarded(self.revoke_key)),
                web.post("/admin/keys/{key_id}/rotate", guarded(self.rotate_key)),
                web.post("/admin/teams", guarded(self.create_team)),
                web.get("/admin/teams", guarded(self.list_teams)),
                web.get("/admin/teams/{team_id}", guarded(self.get_team)),
                web.patch("/admin/teams/{team_id}", guarded(self.update_team)),
                web.post("/admin/credits", guarded(self.add_credits)),
                web.get("/admin/credits/{account}", guarded(self.show_credits)),
                web.get("/admin/usage", guarded(self.usage)),
                web.get("/admin/audit", guarded(self.audit))]

    async def _admin(self, request: web.Request) -> str:
        """Who may do this (a GET reads, every other method changes something): the actor the
        audit trail names for it."""
        return (await admin_principal(self.gw, request)).actor

    async def whoami(self, request: web.Request, rid: str) -> web.Response:
        p = await admin_principal(self.gw, request)
        return _json({"object": "principal", "key_id": None if p.is_master else p.key_id, "master": p.is_master,
                      "role": p.role, "team": p.team}, rid)

    def _keys(self) -> Any:
        return self._state().keys

    def _state(self) -> State:
        if self.gw.state is None:
            raise ServiceUnavailable("Virtual keys, teams, credits, usage and audit need a master key "
                                     "(UNIGATE_MASTER_KEY): without one the gateway serves loopback without auth, "
                                     "and keeps no state.")
        return self.gw.state

    async def _fields(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        return validate.parse_json_object(raw, 32) if raw.strip() else {}

    async def create_key(self, request: web.Request, rid: str) -> web.Response:
        actor = await self._admin(request)
        store, fields = self._keys(), await self._fields(request)
        credits = first_top_up(fields)
        with _state_errors():
            key, secret = await store.create_key(fields, actor=actor)
        out = {**public(key), "key": secret}
        if credits is not None:
            # a second transaction (the key must exist to be topped up), audited as any top-up
            out["balance_usd"] = await self._state().spend.add_credits(key.account, credits, actor=actor,
                                                                       note="initial credits")
        return _json(out, rid, status=201)

    async def list_keys(self, request: web.Request, rid: str) -> web.Response:
        await self._admin(request)
        keys = await self._keys().list_keys(team=request.query.get("team"))
        return _json({"object": "list", "data": [public(k) for k in keys]}, rid)

    async def get_key(self, request: web.Request, rid: str) -> web.Response:
        await self._admin(request)
        key = await self._keys().get_key(request.match_info["key_id"])
        if key is None:
            raise NotFound(f"No key {request.match_info['key_id'][:100]!r}.", code="key_not_found")
        return _json(public(key), rid)

    async def update_key(self, request: web.Request, rid: str) -> web.Response:
        actor = await self._admin(request)
        store, fields = self._keys(), await self._fields(request)
        with _state_errors():
            key = await store.update_key(request.match_info["key_id"], fields, actor=actor)
        return _json(public(key), rid)

    async def revoke_key(self, request: web.Request, rid: str) -> web.Response:
        actor = await self._admin(request)
        with _state_errors():
            key = await self._keys().revoke_key(request.match_info["key_id"], actor=actor)
        return _json(public(key), rid)

    async def rotate_key(self, request: web.Request, rid: str) -> web.Response:
        actor = await self._admin(request)
        raw = await request.read()
        body = validate.parse_json_object(raw, 8) if raw.strip() else {}
        grace = body.get("grace_seconds", 0)
        if type(grace) not in (int, float) or not 0 <= grace <= 30 * 86400:
            raise InvalidRequest("grace_seconds: a number of seconds, 0 to 30 days.", param="grace_seconds")
        with _state_errors():
            key, secret = await self._keys().rotate_key(request.match_info["key_id"], float(grace), actor=actor)
        return _json({**public(key), "key": secret}, rid)

    async def create_team(self, request: web.Request, rid: str) -> web.Response:
        actor = await self._admin(request)
        store, fields = self._keys(), await self._fields(request)
        team_id = fields.pop("id", None)
        if team_id is not None and (not isinstance(team_id, str) or not _TEAM_ID.fullmatch(team_id)):
            raise InvalidRequest("id: 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit "
                                 "(it goes into URLs and the credit account 'team:<id>').", param="id")
        name = fields.get("name")
        if not isinstance(name, str) or not name.strip():
            raise InvalidRequest("name: a team needs a non-empty name.", param="name")
        credits = first_top_up(fields)
        with _state_errors("team_not_found"):
            team = await store.create_team(fields, actor=actor, team_id=team_id)
        out = public_team(team)
        if credits is not None:
            out["balance_usd"] = await self._state().spend.add_credits(team.account, credits, actor=actor,
                                                                       note="initial credits")
        return _json(out, rid, status=201)

    async def list_teams(self, request: web.Request, rid: str) -> web.Response:
        await self._admin(request)
        teams = await self._keys().list_teams()
        return _json({"object": "list", "data": [public_team(t) for t in teams]}, rid)

    async def get_team(self, request: web.Request, rid: str) -> web.Response:
        await self._admin(request)
        team_id = request.match_info["team_id"]
        team = await self._keys().get_team(team_id)
        if team is None:
            raise NotFound(f"No team {team_id[:100]!r}.", code="team_not_found")
        return _json(public_team(team), rid)

    async def update_team(self, request: web.Request, rid: str) -> web.Response:
        actor = await self._admin(request)
        store, fields = self._keys(), await self._fields(request)
        with _state_errors("team_not_found"):
            team = await store.update_team(request.match_info["team_id"], fields, actor=actor)
        return _json(public_team(team), rid)

    async def add_credits(self, request: web.Request, rid: str) -> web.Response:
        actor = await self._admin(request)
        state = self._state()
        raw = await request.read()
        body = validate.parse_json_object(raw, 8)
        unknown = sorted(set(body) - {"account", "amount_usd", "note"})
        if unknown:
            raise InvalidRequest(f"Unknown field(s): {', '.join(unknown)}; a top-up takes account, amount_usd and note.",
                                 param=unknown[0])
        amount = credit_amount(body.get("amount_usd"))
        note = body.get("note", "")
        if not isinstance(note, str) or len(note) > MAX_NOTE:
            raise InvalidRequest(f"note: a string of at most {MAX_NOTE} characters.", param="note")
        # the checks that need no database come first: a refused top-up writes nothing at all
        account = await self._account(body.get("account"))
        t = time.time()
        try:
            balance = await state.spend.add_credits(account, amount, actor=actor, note=note, now=t)
        except ValueError as e:  # the store's own checks, should the ones above ever drift from them
            raise InvalidRequest(f"amount_usd: {e}.", param="amount_usd") from None
        # the entry as stored (built here: reading it back could race a charge to the same account)
        nanos = to_nanos(amount)
        entry = CreditEntry(t, account, "topup" if nanos > 0 else "adjustment", to_usd(nanos), actor, note, None)
        return _json({"account": account, "balance_usd": balance, "entry": public_entry(entry)}, rid)

    async def show_credits(self, request: web.Request, rid: str) -> web.Response:
        await self._admin(request)
        state = self._state()
        _only(request.query, {"limit"})
        limit = query_limit(request.query, default=100)
        account = await self._account(request.match_info["account"])
        balance = await state.spend.balance(account)
        entries = await state.spend.credit_entries(account, limit=limit)
        return _json({"account": account, "balance_usd": balance, "entries": [public_entry(e) for e in entries]}, rid)

    async def _account(self, value: Any) -> str:
        """A credit account that names an existing key or team."""
        if value is None:
            raise InvalidRequest("account: required, 'key:<id>' or 'team:<id>'.", param="account")
        m = _ACCOUNT.fullmatch(value) if isinstance(value, str) and len(value) <= 200 else None
        if m is None:
            raise InvalidRequest("account: 'key:<id>' or 'team:<id>'.", param="account")
        kind, ident = m.group(1), m.group(2)
        store = self._keys()
        found = await (store.get_key(ident) if kind == "key" else store.get_team(ident))
        if found is None:
            raise NotFound(f"No {kind} {ident[:100]!r}: credits go to an existing key or team.", param="account",
                           code=f"{kind}_not_found")
        return f"{kind}:{ident}"

    async def usage(self, request: web.Request, rid: str) -> web.Response:
        await self._admin(request)
        state = self._state()
        q = request.query
        _only(q, {"since", "until", "group_by", "format", *_FILTERS})
        since, until = usage_range(q.get("since"), q.get("until"), time.time())
        group_by = q.get("group_by", DEFAULT_GROUP_BY)
        if group_by not in GROUP_BYS:
            raise InvalidRequest(f"group_by: one of {', '.join(GROUP_BYS)}.", param="group_by")
        fmt = q.get("format", "json")
        if fmt not in ("json", "csv"):
            raise InvalidRequest("format: json or csv.", param="format")
        filters: dict[str, str] = {}
        for name in _FILTERS:
            value = q.get(name)
            if value is None:
                continue
            if not value or len(value) > 256:
                raise InvalidRequest(f"{name}: a non-empty value of at most 256 characters.", param=name)
            filters[name] = value
        buckets = await state.ledger.usage(since, until, group_by, cast(UsageFilter, filters))
        if fmt == "csv":
            return web.Response(text=usage_csv(buckets), content_type="text/csv", charset="utf-8",
                                headers={"x-request-id": rid, "Content-Disposition": 'attachment; filename="usage.csv"'})
        return _json({"object": "list", "since": since, "until": until, "group_by": group_by,
                      "data": [usage_row(b) for b in buckets]}, rid)

    async def audit(self, request: web.Request, rid: str) -> web.Response:
        await self._admin(request)
        store = self._keys()
        _only(request.query, {"target", "limit"})
        limit = query_limit(request.query, default=100)
        target = request.query.get("target")
        if target is not None and (not target or len(target) > 256):
            raise InvalidRequest("target: a non-empty value of at most 256 characters.", param="target")
        entries = await store.list_audit(target=target, limit=limit)
        return _json({"object": "list", "data": [public_audit(e) for e in entries]}, rid)

    async def deployments(self, request: web.Request, rid: str) -> web.Response:
        await self._admin(request)
        router = self.gw.router
        out = [describe(router, d) for d in router.known_deployments()]
        return web.Response(body=orjson.dumps({"object": "list", "data": out}), content_type="application/json",
                            headers={"x-request-id": rid})


async def admin_principal(gw: Gateway, request: web.Request) -> Principal:
    """The caller, if it may do this on the admin API (else 401 or 403)."""
    principal = await gw.auth.authenticate(request.headers)
    return require_admin(principal, write=request.method not in ("GET", "HEAD"))


def describe(router: Any, d: Deployment) -> dict[str, Any]:
    st = router.breakers.state(d.id)
    fig = router.live.figures(d.id)
    now = time.monotonic()

    def ms(v: float) -> float | None:
        return None if not v or math.isnan(v) else round(v * 1000, 2)

    return {"id": d.id, "model": d.public_id, "provider": d.provider.id, "state": st.state.value,
            "error_rate": round(st.error_rate, 4), "requests_in_window": st.requests, "failures_in_window": st.failures,
            "reopens_in_s": None if st.reopens_at is None else round(max(st.reopens_at - now, 0.0), 3),
            "in_flight": fig.in_flight, "ttft_ms": ms(fig.ttft.value), "ms_per_output_token": ms(fig.per_token.value)}


def public(k: Key) -> dict[str, Any]:
    """A key as the admin API shows it: never the secret, nor its hash. The limit fields are shown
    (null/false until set) so they appear as soon as the API accepts them."""
    return {"id": k.id, "object": "key", "name": k.name, "team": k.team, "models": list(k.models),
            "rpm": k.rpm, "tpm": k.tpm, "max_parallel": k.max_parallel, "budget_usd": k.budget_usd,
            "budget_period": k.budget_period, "uses_credits": k.uses_credits,
            "expires_at": k.expires_at, "metadata": k.metadata, "created_at": k.created_at,
            "revoked_at": k.revoked_at, "previous_valid_until": k.previous_valid_until, "role": k.role}


def public_team(t: Team) -> dict[str, Any]:
    return {"id": t.id, "object": "team", "name": t.name, "models": list(t.models), "rpm": t.rpm, "tpm": t.tpm,
            "max_parallel": t.max_parallel, "budget_usd": t.budget_usd, "budget_period": t.budget_period,
            "uses_credits": t.uses_credits, "metadata": t.metadata, "created_at": t.created_at}


def public_entry(e: CreditEntry) -> dict[str, Any]:
    return {"time": e.time, "account": e.account_id, "kind": e.kind, "amount_usd": e.amount_usd, "actor": e.actor,
            "note": e.note, "reservation_id": e.reservation_id}


def public_audit(e: AuditEntry) -> dict[str, Any]:
    return {"time": e.time, "actor": e.actor, "action": e.action, "target": e.target, "details": e.details}


#: a team id is part of URLs and of the account "team:<id>": no '/', ':' or spaces
_TEAM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_ACCOUNT = re.compile(r"(key|team):([^\s/:]+)")
MAX_NOTE = 1000
#: a top-up beyond this is far more likely a typo (cents for dollars) than intended
MAX_CREDIT_USD = 1e6
DAY = 86400.0
DEFAULT_DAYS = 30
MAX_DAYS = 400
#: the last second of 9999-12-31: beyond it a date cannot be shown (group_by=day would fail)
MAX_TIME = 253402300799.0
GROUP_BYS: tuple[GroupBy, ...] = ("key", "team", "model", "provider", "day")
DEFAULT_GROUP_BY: GroupBy = "model"
_FILTERS = ("key_id", "team", "model", "provider")
USAGE_COLUMNS = ("group", "requests", "input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens",
                 "cost_usd", "errors")
#: what a spreadsheet takes for a formula (or, tab and CR, for a cell break before one)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def first_top_up(fields: dict[str, Any]) -> float | None:
    """Takes `credits_usd` (a create's first top-up) out of the fields; it turns `uses_credits`
    on unless the fields say otherwise."""
    credits = fields.pop("credits_usd", None)
    if credits is None:
        return None
    if type(credits) not in (int, float) or not math.isfinite(credits) or not 0 < credits <= MAX_CREDIT_USD:
        raise InvalidRequest("credits_usd: a first top-up in USD, above 0 and at most 1,000,000.", param="credits_usd")
    fields.setdefault("uses_credits", True)
    return float(credits)


def credit_amount(value: Any) -> float:
    """The amount_usd of a top-up: a finite, non-zero number of at most MAX_CREDIT_USD either way
    that is at least a nano-dollar (what the store counts in)."""
    if type(value) not in (int, float):  # bool is an int subclass: type() keeps true/false out
        raise InvalidRequest("amount_usd: required, a number of US dollars (negative for an adjustment).",
                             param="amount_usd")
    if not math.isfinite(value) or abs(value) > MAX_CREDIT_USD:
        raise InvalidRequest(f"amount_usd: a finite number between -{MAX_CREDIT_USD:g} and {MAX_CREDIT_USD:g}.",
                             param="amount_usd")
    if to_nanos(value) == 0:
        raise InvalidRequest("amount_usd: must not be zero (nor below a nano-dollar, the ledger's unit).",
                             param="amount_usd")
    return float(value)


def query_limit(query: Mapping[str, str], *, default: int, maximum: int = 1000) -> int:
    raw = query.get("limit")
    if raw is None:
        return default
    # isdigit() alone would take '²' and other digits int() refuses; isascii() keeps to 0-9
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= maximum:
        raise InvalidRequest(f"limit: an integer from 1 to {maximum}.", param="limit")
    return int(raw)


def parse_time(value: str, param: str) -> float:
    """Epoch seconds, or an ISO-8601 date or datetime (UTC unless it carries an offset)."""
    text = value.strip()
    t: float | None
    try:
        t = float(text)
    except ValueError:
        t = None
    if t is None:
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidRequest(f"{param}: epoch seconds or an ISO-8601 date or datetime (UTC unless it says "
                                 f"otherwise), not {value[:40]!r}.", param=param) from None
        t = (dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)).timestamp()
    if not math.isfinite(t) or not 0 <= t <= MAX_TIME:
        raise InvalidRequest(f"{param}: a time from 1970 to 9999.", param=param)
    return t


def usage_range(since: str | None, until: str | None, now: float) -> tuple[float, float]:
    """[since, until) of a usage report: by default the last DEFAULT_DAYS days up to now (or up
    to `until`), never longer than MAX_DAYS."""
    end = now if until is None else parse_time(until, "until")
    start = end - DEFAULT_DAYS * DAY if since is None else parse_time(since, "since")
    if start >= end:
        raise InvalidRequest("since must be before until.", param="since")
    if end - start > MAX_DAYS * DAY:
        raise InvalidRequest(f"since: a range spans at most {MAX_DAYS} days.", param="since")
    return start, end


def usage_row(b: UsageBucket) -> dict[str, Any]:
    # nano-dollars are the unit money is counted in; the sums of floats carry noise below that
    return {"group": b.group, "requests": b.requests, "input_tokens": b.input_tokens,
            "output_tokens": b.output_tokens, "cached_tokens": b.cached_tokens,
            "reasoning_tokens": b.reasoning_tokens, "cost_usd": round(b.cost_usd, 9), "errors": b.errors}


def csv_text(value: str) -> str:
    """A text cell a spreadsheet will not run: a model or team name is chosen by whoever sends
    or creates it, and '=HYPERLINK(...)' opened in a spreadsheet is a formula."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def usage_csv(buckets: list[UsageBucket]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(USAGE_COLUMNS)
    for b in buckets:
        row = usage_row(b)
        # only the group is text; the numbers are the gateway's own and written as numbers
        w.writerow([csv_text(row["group"] or ""), *(row[c] for c in USAGE_COLUMNS[1:])])
    return buf.getvalue()


def _only(query: Mapping[str, str], allowed: set[str]) -> None:
    """A mistyped parameter (groupby=) would otherwise be ignored, and the answer look right."""
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise InvalidRequest(f"Unknown query parameter(s): {', '.join(unknown)}; this route takes "
                             f"{', '.join(sorted(allowed))}.", param=unknown[0])


def _json(obj: Any, rid: str, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json",
                        headers={"x-request-id": rid})


@contextlib.contextmanager
def _state_errors(not_found: str = "key_not_found") -> Iterator[None]:
    """The stores' admin errors as the API's: Invalid -> 400, NotFound -> 404 (`not_found` is its code)."""
    try:
        yield
    except Invalid as e:
        raise InvalidRequest(str(e), param=_param_of(str(e))) from None
    except StateNotFound as e:
        raise NotFound(str(e) or "Not found.", code=not_found) from None


def _param_of(message: str) -> str | None:
    """The field a store's Invalid names: its messages start with it ("models must be ...") or
    list the unknown ones ("unknown field(s): a, b"); None when no one field is to blame."""
    if message.startswith("unknown field(s): "):
        return message.removeprefix("unknown field(s): ").split(",")[0].strip() or None
    if message.endswith("already exists"):  # a team created with an id in use
        return "id"
    first, _, rest = message.partition(" ")
    return first if first in KEY_FIELDS and rest.startswith("must") else None
