"""Client authentication: the master key, then virtual keys (governance/keys.py)."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from unigate.errors import Forbidden, Unauthenticated

if TYPE_CHECKING:
    from unigate.governance.keys import KeyCache
    from unigate.governance.terms import Terms
    from unigate.state.records import Role


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str | None
    is_master: bool
    team: str | None = None
    #: what a virtual key may call: ids, aliases, group names, globs (`anthropic/*`); empty: all
    models: tuple[str, ...] = ()
    #: what the key's team may call (the same forms); both lists must allow a call
    team_models: tuple[str, ...] = ()
    #: the key's limits, budgets and credits (None: nothing to enforce)
    terms: Terms | None = None
    #: what it may do on the admin API and the dashboard: "user" nothing, "viewer" read, "admin" all
    role: Role = "user"

    @property
    def restricted(self) -> bool:
        return bool(self.models or self.team_models)

    @property
    def actor(self) -> str:
        """Who the audit trail names for an admin change made with this key."""
        return "master" if self.is_master else f"key:{self.key_id}"


class Missing:
    """Not in the key cache, or no longer fresh there (governance/keys.py): ask the store."""


MISSING = Missing()

ANONYMOUS = Principal(key_id=None, is_master=True, role="admin")
MASTER = Principal(key_id="master", is_master=True, role="admin")


def require_admin(principal: Principal, *, write: bool) -> Principal:
    """The admin API's check: the master key and "admin" keys may do everything there, "viewer"
    keys may read (GET) and change nothing, other keys get nothing."""
    if principal.role == "admin" or (principal.role == "viewer" and not write):
        return principal
    if principal.role == "viewer":
        raise Forbidden("This key may read the admin API but not change anything (role 'viewer').",
                        code="admin_read_only")
    raise Forbidden("The admin API takes the master key or a key with the role 'admin' or 'viewer'.",
                    code="admin_only")


class Authenticator:
    def __init__(self, master_key: str | None, keys: KeyCache | None = None) -> None:
        #: virtual keys, once the state layer is open (app start-up)
        self.keys = keys
        self._master = master_key.encode() if master_key else None
        #: the header most clients send, whole: one constant-time compare settles them
        self._master_bearer = b"Bearer " + self._master if self._master else None

    @property
    def enabled(self) -> bool:
        return self._master is not None

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """Async: a virtual key will be looked up in the state layer (a database, Redis)."""
        if self._master is None:
            return ANONYMOUS  # loopback-only mode, enforced at bind time
        auth = headers.get("Authorization")
        bearer = self._master_bearer  # set whenever _master is
        if auth is not None and bearer is not None and hmac.compare_digest(auth.encode("utf-8", "surrogateescape"), bearer):
            return MASTER
        key = bearer_or_api_key(headers)
        if key is None:
            raise Unauthenticated(
                "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.", code="missing_api_key"
            )
        raw = key.encode("utf-8", "surrogateescape")
        if hmac.compare_digest(raw, self._master):
            return MASTER
        if self.keys is not None:
            found = self.keys.cached(raw)
            principal = await self.keys.principal(key) if found is MISSING else found
            if isinstance(principal, Principal):
                return principal
        # the same answer for a key that never existed, was revoked or expired: nothing to learn
        raise Unauthenticated("Incorrect API key provided.", code="invalid_api_key")


def bearer_or_api_key(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("Authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    return headers.get("x-api-key") or headers.get("api-key")
