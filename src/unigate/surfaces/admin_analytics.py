"""The analytics routes of the admin surface (the master key, "admin" and "viewer" keys):

    GET /admin/analytics/summary                 figures over a range, optionally per group
    GET /admin/analytics/timeseries              the same per minute, hour or day
    GET /admin/analytics/requests                the request log, newest first, keyset-paged
    GET /admin/analytics/requests/{request_id}   one request and each of its attempts

docs/admin-api.md ("Analytics") describes every parameter, field and error. The figures come
from state/sql_analytics.py. Its rollups are filled here by a background task (each worker runs
one; they share the work through a lock in the database), never on the request path nor on the
ledger's write path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from unigate.errors import InvalidRequest, NotFound, ServiceUnavailable
from unigate.pipeline import Gateway
from unigate.state.db import Database, Sql
from unigate.state.sql_analytics import DAY, DIMS, HOUR, BadCursor, SqlAnalytics, iso
from unigate.surfaces.admin import admin_principal, parse_time, query_limit
from unigate.surfaces.openai import guarded

log = logging.getLogger("unigate.analytics")

DEFAULT_RANGE = DAY
MAX_RANGE = 400 * DAY
BUCKETS = {"minute": 60.0, "hour": HOUR, "day": DAY}
#: the most buckets one time series may hold, per bucket size
MAX_POINTS = {"minute": 1440, "hour": 10_000, "day": 400}
#: the background task: roll up what is due, and look for late rows over the last days, this often
REFRESH_EVERY = 60.0
RECONCILE_DAYS = 2
RECOUNT_EVERY = 10
_COMMON = {"start", "end", "model", "key", "team", "provider", "deployment"}
_LOG_FILTERS = ("model", "key", "team", "provider", "deployment")


class AnalyticsSurface:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self._store: SqlAnalytics | None = None
        self._own_db: Database | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def mount(self, app: web.Application) -> list[web.RouteDef]:
        """The routes; and the rollups' background task, for the application's lifetime."""
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)
        return self.routes()

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/admin/analytics/summary", guarded(self.summary)),
                web.get("/admin/analytics/timeseries", guarded(self.timeseries)),
                web.get("/admin/analytics/requests", guarded(self.requests)),
                web.get("/admin/analytics/requests/{request_id}", guarded(self.request))]

    # -- the store and its background work -------------------------------------------------

    async def store(self) -> SqlAnalytics:
        state = self.gw.state
        if state is None:
            raise ServiceUnavailable("Analytics read the usage ledger, which the gateway keeps only with a master key "
                                     "(UNIGATE_MASTER_KEY).")
        async with self._lock:
            if self._store is None:
                db = state.db
                if db.dialect == "sqlite":
                    # a connection (and thread) of its own: a query over a month of rows must not
                    # queue the ledger's writes and the limits' transactions behind it
                    files = [r[2] for r in await db.fetch(Sql("PRAGMA database_list")) if r[1] == "main"]
                    if files and files[0]:
                        from unigate.state.sqlite_db import SqliteDb

                        db = self._own_db = await SqliteDb.open(str(files[0]))
                self._store = SqlAnalytics(db)
            return self._store

    async def _on_startup(self, app: web.Application) -> None:
        if self.gw.cfg.server.master_key:
            self._task = asyncio.get_running_loop().create_task(self._refresh())

    async def _on_cleanup(self, app: web.Application) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._own_db is not None:
            await self._own_db.close()

    async def _refresh(self) -> None:
        # the state opens in the application's own start-up hook, which runs after this one's
        while self.gw.state is None:
            await asyncio.sleep(0.1)
        rounds = 0
        while True:
            try:
                store = await self.store()
                t0 = time.perf_counter()
                steps = await store.fill(max_hours=6)
                # all of history at start-up; then the last days, the last attempts recounted
                # every RECOUNT_EVERY rounds (a join over those days' rows)
                redone = await store.reconcile(None if rounds == 0 else time.time() - RECONCILE_DAYS * DAY,
                                               last_attempts=rounds % RECOUNT_EVERY == 0)
                if steps > 24 or redone:
                    log.info("analytics: rolled up %d hours, redid %d days with late rows in %.1f s", steps,
                             len(redone), time.perf_counter() - t0)
            except asyncio.CancelledError:
                raise
            except Exception:  # the database restarting: the queries read raw rows meanwhile
                log.exception("analytics: the rollup refresh failed; retrying in %.0f s", REFRESH_EVERY)
            rounds += 1
            await asyncio.sleep(REFRESH_EVERY)

    async def _admin(self, request: web.Request) -> None:
        await admin_principal(self.gw, request)  # every route here reads: "viewer" keys too

    # -- the routes ----------------------------------------------------------------------------

    async def summary(self, request: web.Request, rid: str) -> web.Response:
        await self._admin(request)
        q = request.query
        only(q, _COMMON | {"served_model", "group_by", "limit"})
        start, end = time_range(q, time.time())
        group_by = group_param(q)
        limit = query_limit(q, default=50)
        out = await (await self.store()).summary(start, end, group_by, filters(q, DIMS), limit)
        return _json({"start": iso(start), "end": iso(end), "group_by": group_by, **out}, rid)

    async def timeseries(self, request: web.Request, rid: str) -> web.Response:
        await self._admin(request)
        q = request.query
        only(q, _COMMON | {"served_model", "group_by", "limit", "bucket"})
        start, end = time_range(q, time.time())
        name = q.get("bucket", "hour")
        if name not in BUCKETS:
            raise InvalidRequest("bucket: minute, hour or day.", param="bucket")
        size = BUCKETS[name]
        if (end - start) / size > MAX_POINTS[name]:
            raise InvalidRequest(f"bucket: a range of at most {MAX_POINTS[name]} {name} buckets; take a larger "
                                 "bucket or a shorter range.", param="bucket")
        group_by = group_param(q)
        limit = query_limit(q, default=8, maximum=50)
        out = await (await self.store()).timeseries(start, end, size, group_by, filters(q, DIMS), limit)
        return _json({"start": iso(start), "end": iso(end), "bucket": name, "group_by": group_by, **out}, rid)

    async def requests(self, request: web.Request, rid: str) -> web.Response:
        await self._admin(request)
        q = request.query
        only(q, _COMMON | {"status", "limit", "cursor"})
        start, end = time_range(q, time.time())
        status = q.get("status")
        if status is not None and status not in ("ok", "error"):
            raise InvalidRequest("status: ok or error.", param="status")
        limit = query_limit(q, default=50, maximum=500)
        cursor = q.get("cursor") or None
        if cursor is not None and len(cursor) > 1000:
            raise InvalidRequest("cursor: not one this API gave out.", param="cursor")
        try:
            out = await (await self.store()).requests(start, end, filters(q, _LOG_FILTERS), status, limit, cursor)
        except BadCursor as e:
            raise InvalidRequest(f"{e}.", param="cursor") from None
        return _json(out, rid)

    async def request(self, request: web.Request, rid: str) -> web.Response:
        await self._admin(request)
        only(request.query, set())
        request_id = request.match_info["request_id"]
        found = await (await self.store()).request(request_id) if len(request_id) <= 256 else None
        if found is None:
            raise NotFound(f"No request {request_id[:100]!r} in the usage ledger.", code="request_not_found")
        return _json(found, rid)


def only(query: Mapping[str, str], allowed: set[str]) -> None:
    """A mistyped parameter (groupby=) would otherwise be ignored, and the answer look right."""
    unknown = sorted(set(query) - allowed)
    if unknown:
        takes = f"this route takes {', '.join(sorted(allowed))}" if allowed else "this route takes none"
        raise InvalidRequest(f"Unknown query parameter(s): {', '.join(unknown)}; {takes}.", param=unknown[0])


def time_range(query: Mapping[str, str], now: float) -> tuple[float, float]:
    """[start, end): by default the last 24 hours."""
    raw_end, raw_start = query.get("end"), query.get("start")
    end = now if raw_end is None else parse_time(raw_end, "end")
    start = end - DEFAULT_RANGE if raw_start is None else parse_time(raw_start, "start")
    if start >= end:
        raise InvalidRequest("start must be before end.", param="start")
    if end - start > MAX_RANGE:
        raise InvalidRequest("start: a range spans at most 400 days.", param="start")
    return start, end


def group_param(query: Mapping[str, str]) -> str | None:
    value = query.get("group_by")
    if value is None:
        return None
    if value not in DIMS:
        raise InvalidRequest(f"group_by: one of {', '.join(DIMS)}.", param="group_by")
    return value


def filters(query: Mapping[str, str], names: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in names:
        value = query.get(name)
        if value is None:
            continue
        if not value or len(value) > 256:
            raise InvalidRequest(f"{name}: a non-empty value of at most 256 characters.", param=name)
        out[name] = value
    return out


def _json(obj: Any, rid: str) -> web.Response:
    return web.Response(body=orjson.dumps(obj), content_type="application/json", headers={"x-request-id": rid})
