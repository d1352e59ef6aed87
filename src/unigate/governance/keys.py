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

from unigate.state.base import KeyStore
from unigate.state.records import Key

TTL = 1.0
MAX_ENTRIES = 10_000


class KeyCache:
    def __init__(self, store: KeyStore, *, ttl: float = TTL, now: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self._ttl = ttl
        self._now = now
        self._entries: dict[str, tuple[float, Key | None]] = {}

    async def lookup(self, secret: str) -> Key | None:
        digest = hashlib.sha256(secret.encode(errors="surrogateescape")).hexdigest()
        now = self._now()
        hit = self._entries.get(digest)
        if hit is not None and hit[0] > now:
            key = hit[1]
            # expiry is checked on every use, not only when the entry was filled
            return key if key is None or key.active(time.time()) else None
        key = await self.store.find_by_secret(secret)
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()  # a flood of random secrets: start over rather than grow
        self._entries[digest] = (now + self._ttl, key)
        return key
