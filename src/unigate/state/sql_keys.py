"""Virtual keys, teams and the admin audit trail in SQL (SQLite or PostgreSQL)."""

from __future__ import annotations

import dataclasses
import hmac
import json
import time
from collections.abc import Sequence
from typing import Any, cast

from unigate.state.audit_sql import audit_insert as _audit
from unigate.state.db import Database, Row, Sql, placeholders
from unigate.state.errors import Invalid, NotFound
from unigate.state.fields import KEY_FIELDS, TEAM_FIELDS, check, dump_json, opt_float, opt_int
from unigate.state.key_secrets import hash_secret, new_key_id, new_secret, new_team_id
from unigate.state.records import AuditEntry, Key, KeyFields, Period, Role, Team, TeamFields

_KEY_COLS = (
    "id, name, secret_hash, team, models, rpm, tpm, max_parallel, budget_usd, budget_period, uses_credits, "
    "expires_at, metadata, created_at, revoked_at, previous_hash, previous_valid_until, role"
)
_TEAM_COLS = "id, name, models, rpm, tpm, max_parallel, budget_usd, budget_period, metadata, created_at, uses_credits"
_KEY_SET = (
    "UPDATE keys SET name = ?, secret_hash = ?, team = ?, models = ?, rpm = ?, tpm = ?, max_parallel = ?, "
    "budget_usd = ?, budget_period = ?, uses_credits = ?, expires_at = ?, metadata = ?, revoked_at = ?, "
    "previous_hash = ?, previous_valid_until = ?, role = ? WHERE id = ?"
)
_BUMP = Sql("UPDATE state_version SET version = version + 1 WHERE id = 1")
#: admin changes are rare; one lock name keeps them (and the version counter) in one order
_LOCKS = ("admin",)


def _key(row: Row) -> Key:
    return Key(
        id=row[0], name=row[1], secret_hash=row[2], team=row[3], models=json.loads(row[4]), rpm=opt_int(row[5]),
        tpm=opt_int(row[6]), max_parallel=opt_int(row[7]), budget_usd=opt_float(row[8]),
        budget_period=cast(Period, row[9]), uses_credits=bool(row[10]), expires_at=opt_float(row[11]),
        metadata=json.loads(row[12]), created_at=float(row[13]), revoked_at=opt_float(row[14]),
        previous_hash=row[15], previous_valid_until=opt_float(row[16]), role=cast(Role, row[17]),
    )  # fmt: skip


def _team(row: Row) -> Team:
    return Team(
        id=row[0], name=row[1], models=json.loads(row[2]), rpm=opt_int(row[3]), tpm=opt_int(row[4]),
        max_parallel=opt_int(row[5]), budget_usd=opt_float(row[6]), budget_period=cast(Period, row[7]),
        metadata=json.loads(row[8]), created_at=float(row[9]), uses_credits=bool(row[10]),
    )  # fmt: skip


def _key_values(k: Key) -> list[Any]:
    return [
        k.name, k.secret_hash, k.team, dump_json(k.models), k.rpm, k.tpm, k.max_parallel, opt_float(k.budget_usd),
        k.budget_period, int(k.uses_credits), opt_float(k.expires_at), dump_json(k.metadata), opt_float(k.revoked_at),
        k.previous_hash, opt_float(k.previous_valid_until), k.role,
    ]  # fmt: skip


def _team_values(t: Team) -> list[Any]:
    return [
        t.name, dump_json(t.models), t.rpm, t.tpm, t.max_parallel, opt_float(t.budget_usd), t.budget_period,
        dump_json(t.metadata), int(t.uses_credits),
    ]  # fmt: skip


def _team_exists(team: str | None) -> Sql:
    return Sql("SELECT id FROM teams WHERE id = ?", (team or "",))


class SqlKeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create_key(self, fields: KeyFields, *, actor: str, now: float | None = None) -> tuple[Key, str]:
        check(fields, KEY_FIELDS)
        now = time.time() if now is None else now
        secret = new_secret()
        key = Key(id=new_key_id(), name=fields.get("name", ""), secret_hash=hash_secret(secret), created_at=now)
        rest: dict[str, Any] = {k: v for k, v in fields.items() if k != "name"}
        key = dataclasses.replace(key, **rest)
        team = key.team

        def decide(rows: list[list[Row]]) -> tuple[Key, Sequence[Sql]]:
            if team is not None and not rows[0]:
                raise NotFound(f"team {team!r} does not exist")
            values = _key_values(key)
            insert = Sql(f"INSERT INTO keys ({_KEY_COLS}) VALUES ({placeholders(18)})", [key.id, *values[:12], now, *values[12:]])
            return key, [insert, _audit(now, actor, "key.create", key.id, dict(fields)), _BUMP]

        return await self._db.atomic(_LOCKS, [_team_exists(team)], decide), secret

    async def get_key(self, key_id: str) -> Key | None:
        rows = await self._db.fetch(Sql(f"SELECT {_KEY_COLS} FROM keys WHERE id = ?", (key_id,)))
        return _key(rows[0]) if rows else None

    async def list_keys(self, *, team: str | None = None) -> list[Key]:
        if team is None:
            rows = await self._db.fetch(Sql(f"SELECT {_KEY_COLS} FROM keys ORDER BY created_at, id"))
        else:
            rows = await self._db.fetch(Sql(f"SELECT {_KEY_COLS} FROM keys WHERE team = ? ORDER BY created_at, id", (team,)))
        return [_key(r) for r in rows]

    async def _change_key(
        self, key_id: str, change: Any, *, actor: str, action: str, details: dict[str, Any], now: float,
        team: str | None = None,
    ) -> Key:  # fmt: skip
        """Read the key, let `change(key)` make the new record, store it, audit it."""

        def decide(rows: list[list[Row]]) -> tuple[Key, Sequence[Sql]]:
            if not rows[0]:
                raise NotFound(f"key {key_id!r} does not exist")
            if team is not None and not rows[1]:
                raise NotFound(f"team {team!r} does not exist")
            new: Key = change(_key(rows[0][0]))
            return new, [Sql(_KEY_SET, [*_key_values(new), key_id]), _audit(now, actor, action, key_id, details), _BUMP]

        reads = [Sql(f"SELECT {_KEY_COLS} FROM keys WHERE id = ?", (key_id,)), _team_exists(team)]
        return await self._db.atomic(_LOCKS, reads, decide)

    async def update_key(self, key_id: str, changes: KeyFields, *, actor: str, now: float | None = None) -> Key:
        check(changes, KEY_FIELDS)
        return await self._change_key(
            key_id, lambda k: dataclasses.replace(k, **changes), actor=actor, action="key.update",
            details=dict(changes), now=time.time() if now is None else now, team=changes.get("team"),
        )  # fmt: skip

    async def revoke_key(self, key_id: str, *, actor: str, now: float | None = None) -> Key:
        t = time.time() if now is None else now

        def revoke(k: Key) -> Key:
            return k if k.revoked_at is not None else dataclasses.replace(k, revoked_at=t, previous_hash=None)

        return await self._change_key(key_id, revoke, actor=actor, action="key.revoke", details={}, now=t)

    async def rotate_key(
        self, key_id: str, grace_seconds: float, *, actor: str, now: float | None = None
    ) -> tuple[Key, str]:
        if grace_seconds < 0:
            raise Invalid("grace_seconds must not be negative")
        t = time.time() if now is None else now
        secret = new_secret()

        def rotate(k: Key) -> Key:
            if k.revoked_at is not None:
                raise Invalid(f"key {key_id!r} is revoked")
            keep = grace_seconds > 0
            return dataclasses.replace(
                k, secret_hash=hash_secret(secret), previous_hash=k.secret_hash if keep else None,
                previous_valid_until=t + grace_seconds if keep else None,
            )  # fmt: skip

        details = {"grace_seconds": grace_seconds}
        return await self._change_key(key_id, rotate, actor=actor, action="key.rotate", details=details, now=t), secret

    async def find_by_secret(self, secret: str, now: float | None = None) -> Key | None:
        digest = hash_secret(secret)
        rows = await self._db.fetch(
            Sql(f"SELECT {_KEY_COLS} FROM keys WHERE secret_hash = ? OR previous_hash = ?", (digest, digest))
        )
        t = time.time() if now is None else now
        for row in rows:
            key = _key(row)
            # the lookup found the row by hash; the compare is what decides
            current = hmac.compare_digest(key.secret_hash, digest)
            previous = (
                key.previous_hash is not None
                and hmac.compare_digest(key.previous_hash, digest)
                and key.previous_valid_until is not None
                and t < key.previous_valid_until
            )
            if (current or previous) and key.active(t):
                return key
        return None

    async def create_team(
        self, fields: TeamFields, *, actor: str, team_id: str | None = None, now: float | None = None
    ) -> Team:
        check(fields, TEAM_FIELDS)
        t = time.time() if now is None else now
        team = Team(id=team_id or new_team_id(), name=fields.get("name", ""), created_at=t)
        rest: dict[str, Any] = {k: v for k, v in fields.items() if k != "name"}
        team = dataclasses.replace(team, **rest)

        def decide(rows: list[list[Row]]) -> tuple[Team, Sequence[Sql]]:
            if rows[0]:
                raise Invalid(f"team {team.id!r} already exists")
            values = _team_values(team)
            insert = Sql(f"INSERT INTO teams ({_TEAM_COLS}) VALUES ({placeholders(11)})", [team.id, *values[:-1], t, values[-1]])
            return team, [insert, _audit(t, actor, "team.create", team.id, dict(fields)), _BUMP]

        return await self._db.atomic(_LOCKS, [_team_exists(team.id)], decide)

    async def get_team(self, team_id: str) -> Team | None:
        rows = await self._db.fetch(Sql(f"SELECT {_TEAM_COLS} FROM teams WHERE id = ?", (team_id,)))
        return _team(rows[0]) if rows else None

    async def list_teams(self) -> list[Team]:
        return [_team(r) for r in await self._db.fetch(Sql(f"SELECT {_TEAM_COLS} FROM teams ORDER BY created_at, id"))]

    async def update_team(self, team_id: str, changes: TeamFields, *, actor: str, now: float | None = None) -> Team:
        check(changes, TEAM_FIELDS)
        t = time.time() if now is None else now

        def decide(rows: list[list[Row]]) -> tuple[Team, Sequence[Sql]]:
            if not rows[0]:
                raise NotFound(f"team {team_id!r} does not exist")
            new = dataclasses.replace(_team(rows[0][0]), **changes)
            update = Sql(
                "UPDATE teams SET name = ?, models = ?, rpm = ?, tpm = ?, max_parallel = ?, budget_usd = ?, "
                "budget_period = ?, metadata = ?, uses_credits = ? WHERE id = ?",
                [*_team_values(new), team_id],
            )
            return new, [update, _audit(t, actor, "team.update", team_id, dict(changes)), _BUMP]

        reads = [Sql(f"SELECT {_TEAM_COLS} FROM teams WHERE id = ?", (team_id,))]
        return await self._db.atomic(_LOCKS, reads, decide)

    async def version(self) -> int:
        rows = await self._db.fetch(Sql("SELECT version FROM state_version WHERE id = 1"))
        return int(rows[0][0])

    async def list_audit(self, *, target: str | None = None, limit: int = 100) -> list[AuditEntry]:
        cols = "SELECT time, actor, action, target, details FROM audit"
        if target is None:
            sql = Sql(f"{cols} ORDER BY id DESC LIMIT ?", (limit,))
        else:
            sql = Sql(f"{cols} WHERE target = ? ORDER BY id DESC LIMIT ?", (target, limit))
        return [AuditEntry(float(r[0]), r[1], r[2], r[3], json.loads(r[4])) for r in await self._db.fetch(sql)]
