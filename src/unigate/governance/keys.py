"""Virtual keys on the request path: a presented secret -> the key it opens, through a short
in-memory cache in front of the state layer's KeyStore.

Every worker and replica keeps its own cache for `TTL` seconds, so a key revoked (or rotated
past its grace) anywhere stops working everywhere within that time without any message between
them; a lookup that found nothing is cached as briefly, so a client retrying a bad key does not
reach the database on every request. Only the sha256 of a secret is kept."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from unigate.governance.auth import MISSING, Missing, Principal
from unigate.governance.terms import terms_of
from unigate.state.base import KeyStore
from unigate.state.records import Key, Team

TTL = 1.0
MAX_ENTRIES = 10_000


class KeyCache:
    def __init__(self, store: KeyStore, *, ttl: float = TTL, now: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self._ttl = ttl
        self._now = now
        #: sha256 of a secret -> (valid until, the key, its principal)
        self._entries: dict[bytes, tuple[float, Key | None, Principal | None]] = {}

    async def lookup(self, secret: str) -> Key | None:
        return (await self._entry(secret))[0]

    async def principal(self, secret: str) -> Principal | None:
        """Who this secret is, with its team's model list and the key's terms, built once per
        fill (the limits module reads them on every call)."""
        return (await self._entry(secret))[1]

    def cached(self, raw: bytes) -> Principal | Missing | None:
        """What the cache knows of this secret (its bytes) without asking the store: its
        principal, None for a secret known not to open a key, or MISSING (ask `principal`). The
        request path's call: no coroutine for the common case of a cached key."""
        hit = self._hit(hashlib.sha256(raw).digest())
        return hit if isinstance(hit, Missing) else hit[1]

    def _hit(self, digest: bytes) -> tuple[Key | None, Principal | None] | Missing:
        hit = self._entries.get(digest)
        if hit is None or hit[0] <= self._now():
            return MISSING
        key = hit[1]
        # expiry is checked on every use, not only when the entry was filled
        if key is None or key.active(time.time()):
            return key, hit[2]
        return None, None

    async def _entry(self, secret: str) -> tuple[Key | None, Principal | None]:
        digest = hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest()
        hit = self._hit(digest)
        if not isinstance(hit, Missing):
            return hit
        now = self._now()
        key = await self.store.find_by_secret(secret)
        principal = None
        if key is not None:
            team: Team | None = await self.store.get_team(key.team) if key.team else None
            principal = Principal(key_id=key.id, is_master=False, team=key.team, models=tuple(key.models),
                                  team_models=tuple(team.models) if team is not None else (),
                                  terms=terms_of(key, team), role=key.role)
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()  # a flood of random secrets: start over rather than grow
        self._entries[digest] = (now + self._ttl, key, principal)
        return key, principal
