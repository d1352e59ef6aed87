"""Keys and teams, on every durable backend."""

from __future__ import annotations

import pytest

from tests.state.conftest import Backend
from unigate.state import Invalid, NotFound, State

NOW = 1_767_225_600.0  # 2026-01-01 00:00 UTC


async def test_key_lifecycle(state: State) -> None:
    keys = state.keys
    key, secret = await keys.create_key(
        {"name": "ci", "models": ["anthropic/*", "auto"], "rpm": 10, "budget_usd": 5.0, "metadata": {"owner": "ana"}},
        actor="admin", now=NOW,
    )  # fmt: skip
    assert key.id.startswith("key_") and len(key.id) == 16
    assert secret.startswith("sk-ug-") and secret not in key.secret_hash
    assert (await keys.find_by_secret(secret, NOW)) == key
    assert await keys.find_by_secret(secret + "x", NOW) is None
    assert await keys.get_key(key.id) == key
    assert key.models == ["anthropic/*", "auto"] and key.metadata == {"owner": "ana"} and key.budget_period == "monthly"

    updated = await keys.update_key(key.id, {"rpm": 20, "expires_at": NOW + 100}, actor="admin", now=NOW + 1)
    assert updated.rpm == 20 and updated.name == "ci"
    assert (await keys.find_by_secret(secret, NOW + 99)) == updated
    assert await keys.find_by_secret(secret, NOW + 100) is None  # expired

    await keys.update_key(key.id, {"expires_at": None}, actor="admin")
    revoked = await keys.revoke_key(key.id, actor="admin", now=NOW + 2)
    assert revoked.revoked_at == NOW + 2
    assert await keys.find_by_secret(secret, NOW + 3) is None
    assert [k.id for k in await keys.list_keys()] == [key.id]


async def test_rotate_keeps_the_old_secret_for_the_grace_period(state: State) -> None:
    key, old = await state.keys.create_key({"name": "svc"}, actor="admin", now=NOW)
    rotated, new = await state.keys.rotate_key(key.id, 60, actor="admin", now=NOW + 10)
    assert new != old and rotated.secret_hash != key.secret_hash
    assert (await state.keys.find_by_secret(new, NOW + 11)) is not None
    assert (await state.keys.find_by_secret(old, NOW + 69)) is not None
    assert await state.keys.find_by_secret(old, NOW + 70) is None
    assert (await state.keys.find_by_secret(new, NOW + 1000)) is not None
    # a second rotation without grace ends the first one's secret at once
    _, newest = await state.keys.rotate_key(key.id, 0, actor="admin", now=NOW + 20)
    assert await state.keys.find_by_secret(new, NOW + 21) is None
    assert await state.keys.find_by_secret(newest, NOW + 21) is not None


async def test_version_bumps_and_audit_rows(state: State) -> None:
    v0 = await state.keys.version()
    team = await state.keys.create_team({"name": "research", "rpm": 100}, actor="ops", team_id="t1", now=NOW)
    key, secret = await state.keys.create_key({"name": "k", "team": "t1"}, actor="ops", now=NOW)
    await state.keys.update_key(key.id, {"tpm": 1000}, actor="ops", now=NOW)
    await state.keys.rotate_key(key.id, 30, actor="ops", now=NOW)
    await state.keys.revoke_key(key.id, actor="root", now=NOW)
    assert await state.keys.version() == v0 + 5
    audit = await state.keys.list_audit()
    assert [a.action for a in audit] == ["key.revoke", "key.rotate", "key.update", "key.create", "team.create"]
    assert audit[0].actor == "root" and audit[0].target == key.id
    assert audit[3].details == {"name": "k", "team": "t1"}
    for a in audit:
        assert secret not in str(a.details) and key.secret_hash not in str(a.details)
    assert [a.action for a in await state.keys.list_audit(target="t1")] == ["team.create"]
    assert team.id == "t1"


async def test_teams(state: State) -> None:
    team = await state.keys.create_team(
        {"name": "a", "models": ["openai/*"], "tpm": 5000, "budget_usd": 20.0, "budget_period": "weekly"},
        actor="ops", now=NOW,
    )  # fmt: skip
    assert team.id.startswith("team_")
    assert await state.keys.get_team(team.id) == team
    changed = await state.keys.update_team(team.id, {"max_parallel": 4, "metadata": {"cc": "x"}}, actor="ops")
    assert changed.max_parallel == 4 and changed.tpm == 5000 and changed.metadata == {"cc": "x"}
    assert [t.id for t in await state.keys.list_teams()] == [team.id]
    key, _ = await state.keys.create_key({"name": "member", "team": team.id}, actor="ops")
    await state.keys.create_key({"name": "loner"}, actor="ops")
    assert [k.id for k in await state.keys.list_keys(team=team.id)] == [key.id]
    with pytest.raises(Invalid):
        await state.keys.create_team({"name": "dup"}, actor="ops", team_id=team.id)


async def test_role_and_team_credits_are_kept(state: State) -> None:
    key, secret = await state.keys.create_key({"name": "ops", "role": "viewer"}, actor="ops")
    assert key.role == "viewer" and (await state.keys.get_key(key.id)) == key
    assert (await state.keys.find_by_secret(secret)) == key
    plain, _ = await state.keys.create_key({"name": "app"}, actor="ops")
    assert plain.role == "user"  # the default, also of every key made before roles existed
    changed = await state.keys.update_key(key.id, {"role": "admin"}, actor="ops")
    assert changed.role == "admin" and (await state.keys.get_key(key.id)) == changed
    team = await state.keys.create_team({"name": "paying", "uses_credits": True}, actor="ops", team_id="paying")
    assert team.uses_credits and team.account == "team:paying" and (await state.keys.get_team("paying")) == team
    off = await state.keys.update_team("paying", {"uses_credits": False}, actor="ops")
    assert not off.uses_credits and (await state.keys.get_team("paying")) == off
    for bad in ({"role": "root"}, {"role": None}, {"uses_credits": "yes"}):
        with pytest.raises(Invalid):
            await state.keys.update_key(key.id, bad, actor="ops")  # type: ignore[arg-type]
    with pytest.raises(Invalid):
        await state.keys.update_team("paying", {"uses_credits": 1}, actor="ops")  # type: ignore[typeddict-item]
    assert (await state.keys.get_key(key.id)) == changed


async def test_bad_input_is_refused_and_changes_nothing(state: State) -> None:
    v0 = await state.keys.version()
    with pytest.raises(NotFound):
        await state.keys.create_key({"name": "k", "team": "nope"}, actor="ops")
    with pytest.raises(Invalid):
        await state.keys.create_key({"name": "k", "budget_period": "hourly"}, actor="ops")  # type: ignore[typeddict-item]
    with pytest.raises(Invalid):
        await state.keys.create_key({"name": "k", "rpm": -1}, actor="ops")
    with pytest.raises(Invalid):
        await state.keys.create_key({"name": "k", "secret_hash": "x"}, actor="ops")  # type: ignore[typeddict-unknown-key]
    with pytest.raises(NotFound):
        await state.keys.update_key("key_missing", {"rpm": 1}, actor="ops")
    key, _ = await state.keys.create_key({"name": "k"}, actor="ops")
    await state.keys.revoke_key(key.id, actor="ops")
    with pytest.raises(Invalid):
        await state.keys.rotate_key(key.id, 10, actor="ops")
    assert await state.keys.version() == v0 + 2
    assert await state.keys.list_keys() == [await state.keys.get_key(key.id)]


async def test_a_change_is_seen_by_another_handle(state: State, backend: Backend) -> None:
    other = await backend.open()
    try:
        v = await other.keys.version()
        key, secret = await state.keys.create_key({"name": "shared"}, actor="ops")
        assert await other.keys.version() == v + 1
        assert (await other.keys.find_by_secret(secret)) == key
    finally:
        await other.close()
