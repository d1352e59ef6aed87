"""Rate limits in Redis: the same fixed one-minute windows and rules as sql_limits.py, checked
and counted for all scopes of a call in one Lua script, so the all-or-nothing check is atomic
across every replica.

Per scope: a hash {w: window start, r: requests, t: tokens} that expires two windows later, and
a sorted set of held parallel slots scored by their expiry. The caller's clock (`now`) is used,
as in the SQL backends; replicas are expected to keep NTP time. Keys of different scopes live
in different hash slots, so this needs a single Redis node (or one shard), not Redis Cluster.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from unigate.state.limit_types import (
    LEASE_SECONDS,
    WINDOW_SECONDS,
    Decision,
    Grant,
    Lease,
    LimitName,
    Scope,
    figures_of,
    window_start,
)

_ACQUIRE = """
local now = tonumber(ARGV[1])
local ws = ARGV[2]
local lease = ARGV[3]
local lease_expiry = tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])
local n = #KEYS / 2
local used = {}
local refused, what = 0, 0
for i = 1, n do
  local b = 5 + (i - 1) * 4
  local rpm, tpm, mp, est = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  local h = redis.call('HMGET', KEYS[2 * i - 1], 'w', 'r', 't')
  local r, t = 0, 0
  if h[1] == ws then r = tonumber(h[2]) or 0; t = tonumber(h[3]) or 0 end
  local held = 0
  if mp >= 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[2 * i], '-inf', now)
    held = redis.call('ZCARD', KEYS[2 * i])
  end
  used[i] = {r, t}
  if refused == 0 then
    if rpm >= 0 and r + 1 > rpm then refused, what = i, 1
    elseif tpm >= 0 and t + est > tpm then refused, what = i, 2
    elseif mp >= 0 and held + 1 > mp then refused, what = i, 3 end
  end
end
local out = {refused, what}
for i = 1, n do
  local b = 5 + (i - 1) * 4
  local r, t = used[i][1], used[i][2]
  if refused == 0 then
    r = r + 1
    t = t + tonumber(ARGV[b + 4])
    redis.call('HSET', KEYS[2 * i - 1], 'w', ws, 'r', r, 't', t)
    redis.call('EXPIRE', KEYS[2 * i - 1], ttl)
    if tonumber(ARGV[b + 3]) >= 0 then
      redis.call('ZADD', KEYS[2 * i], lease_expiry, lease)
      redis.call('EXPIRE', KEYS[2 * i], math.ceil(lease_expiry - now) + 60)
    end
  end
  out[#out + 1] = r
  out[#out + 1] = t
end
return out
"""

_ADJUST = """
local ws = ARGV[1]
local delta = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
for i = 1, #KEYS do
  local h = redis.call('HMGET', KEYS[i], 'w', 't')
  if h[1] == ws then
    local t = (tonumber(h[2]) or 0) + delta
    if t < 0 then t = 0 end
    redis.call('HSET', KEYS[i], 't', t)
  elseif delta > 0 then
    redis.call('HSET', KEYS[i], 'w', ws, 'r', 0, 't', delta)
    redis.call('EXPIRE', KEYS[i], ttl)
  end
end
return 0
"""

# grant_of() in limit_types.py, in Lua: one block of one scope's window
_TAKE = """
local ws = ARGV[1]
local rpm, tpm, want_r, want_t, est = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local ttl = tonumber(ARGV[7])
local h = redis.call('HMGET', KEYS[1], 'w', 'r', 't')
local r, t = 0, 0
if h[1] == ws then r = tonumber(h[2]) or 0; t = tonumber(h[3]) or 0 end
local gr, gt = want_r, want_t
if rpm >= 0 then gr = math.min(want_r, rpm - r) end
if tpm >= 0 then gt = math.min(want_t, tpm - t) end
if gr < 1 then return {0, 0, 1, r, t} end
if tpm >= 0 and gt < math.max(est, 1) then return {0, 0, 2, r, t} end
if gt < 0 then gt = 0 end
r = r + gr
t = t + gt
redis.call('HSET', KEYS[1], 'w', ws, 'r', r, 't', t)
redis.call('EXPIRE', KEYS[1], ttl)
return {gr, gt, 0, r, t}
"""

_LIMIT_NAMES: dict[int, LimitName] = {1: "rpm", 2: "tpm", 3: "max_parallel"}


def _off(v: int | None) -> int:
    return -1 if v is None else v


class RedisLimits:
    def __init__(self, client: aioredis.Redis, prefix: str = "unigate:", lease_seconds: float = LEASE_SECONDS) -> None:
        self._r = client
        self._prefix = prefix
        self._lease_seconds = lease_seconds
        self._acquire = client.register_script(_ACQUIRE)
        self._adjust = client.register_script(_ADJUST)
        self._take = client.register_script(_TAKE)

    @classmethod
    def from_url(cls, url: str, prefix: str = "unigate:") -> RedisLimits:
        return cls(aioredis.Redis.from_url(url), prefix)

    def _window_key(self, scope_id: str) -> str:
        return f"{self._prefix}rl:{scope_id}"

    def _lease_key(self, scope_id: str) -> str:
        return f"{self._prefix}pl:{scope_id}"

    async def acquire(self, scopes: Sequence[Scope], now: float) -> Decision:
        if not scopes:
            return Decision(True, ())
        ws = window_start(now)
        held = tuple(s.id for s in scopes if s.max_parallel is not None)
        lease = Lease(secrets.token_hex(8), held) if held else None
        keys: list[Any] = []
        args: list[Any] = [now, str(int(ws)), lease.id if lease else "", now + self._lease_seconds, int(2 * WINDOW_SECONDS)]
        for s in scopes:
            keys += [self._window_key(s.id), self._lease_key(s.id)]
            args += [_off(s.rpm), _off(s.tpm), _off(s.max_parallel), s.estimated_tokens]
        out = [int(v) for v in await self._acquire(keys=keys, args=args)]
        refused, what = out[0], out[1]
        reset = ws + WINDOW_SECONDS - now
        figures = tuple(figures_of(s, out[2 + 2 * i], out[3 + 2 * i], reset) for i, s in enumerate(scopes))
        if refused == 0:
            return Decision(True, figures, lease=lease)
        limit = _LIMIT_NAMES[what]
        retry = 1.0 if limit == "max_parallel" else reset
        return Decision(False, figures, refused_scope=scopes[refused - 1].id, refused_limit=limit, retry_after=retry)

    async def take(self, scope: Scope, requests: int, tokens: int, now: float) -> Grant:
        ws = window_start(now)
        args: list[Any] = [str(int(ws)), _off(scope.rpm), _off(scope.tpm), requests, tokens, scope.estimated_tokens,
                           int(2 * WINDOW_SECONDS)]
        r, t, what, used_r, used_t = (int(v) for v in await self._take(keys=[self._window_key(scope.id)], args=args))
        reset = ws + WINDOW_SECONDS - now
        fig = figures_of(scope, used_r, used_t, reset)
        if what:
            return Grant(0, 0, ws, fig, _LIMIT_NAMES[what], reset)
        return Grant(r, t, ws, fig)

    async def release(self, lease: Lease) -> None:
        if not lease.scope_ids:
            return
        async with self._r.pipeline(transaction=False) as pipe:
            for scope_id in lease.scope_ids:
                pipe.zrem(self._lease_key(scope_id), lease.id)
            await pipe.execute()

    async def adjust_tokens(self, scope_ids: Sequence[str], delta: int, now: float) -> None:
        if not scope_ids or not delta:
            return
        keys: list[Any] = [self._window_key(s) for s in scope_ids]
        await self._adjust(keys=keys, args=[str(int(window_start(now))), delta, int(2 * WINDOW_SECONDS)])

    async def close(self) -> None:
        await self._r.aclose()
