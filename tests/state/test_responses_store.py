"""The stored Responses API answers (state/sql_responses.py) on SQLite and PostgreSQL: put, get
by id and owner, delete, and one worker reading what another stored."""

from __future__ import annotations

import dataclasses

import orjson

from tests.state.conftest import Backend
from unigate.state import State
from unigate.state.db import Sql
from unigate.state.sql_responses import SqlResponses, StoredResponse


def row(rid: str, owner: str = "key_a", prev: str | None = None) -> StoredResponse:
    return StoredResponse(id=rid, owner=owner, created_at=1700000000.0, model="xai/grok", previous_id=prev,
                          conversation=[{"id": "msg_1", "type": "message", "role": "user",
                                         "content": [{"type": "input_text", "text": "héllo \u2603"}]}],
                          response={"id": rid, "object": "response", "status": "completed",
                                    "output": [{"id": "msg_2", "type": "message", "role": "assistant",
                                                "content": [{"type": "output_text", "text": "hi"}]}]})


async def test_put_get_delete(state: State) -> None:
    store = SqlResponses(state.db)
    await store.put(row("resp_1"))
    await store.put(row("resp_2", prev="resp_1"))
    got = await store.get("resp_2", "key_a")
    assert got is not None and dataclasses.replace(got, size=0) == row("resp_2", prev="resp_1")
    assert got.size == len(orjson.dumps(got.conversation).decode()) + len(orjson.dumps(got.response).decode())
    assert got is not None and [i["id"] for i in got.history()] == ["msg_1", "msg_2"]
    # another owner: as if it did not exist
    assert await store.get("resp_1", "key_b") is None
    assert await store.delete("resp_1", "key_b") is False
    assert await store.get("resp_1", "key_a") is not None
    assert await store.delete("resp_1", "key_a") is True
    assert await store.get("resp_1", "key_a") is None
    assert await store.delete("resp_1", "key_a") is False
    assert await store.get("resp_missing", "key_a") is None


async def test_another_worker_reads_it(backend: Backend, state: State) -> None:
    await SqlResponses(state.db).put(row("resp_shared", owner="master"))
    other = await backend.open()
    try:
        got = await SqlResponses(other.db).get("resp_shared", "master")
        assert got is not None and got.response["output"][0]["content"][0]["text"] == "hi"
        assert got.conversation[0]["content"][0]["text"] == "héllo \u2603"
    finally:
        await other.close()


async def test_rows_expire_after_the_ttl_and_are_purged(state: State) -> None:
    clock = [1_700_000_000.0]
    store = SqlResponses(state.db, ttl=100.0, now=lambda: clock[0])
    await store.put(dataclasses.replace(row("resp_old"), created_at=clock[0] - 150))  # written already expired
    await store.put(dataclasses.replace(row("resp_new"), created_at=clock[0]))
    assert await store.get("resp_old", "key_a") is None and await store.delete("resp_old", "key_a") is False
    assert await store.get("resp_new", "key_a") is not None
    clock[0] += 101  # resp_new expires too; the next write purges both (the first purge was at the first put)
    assert await store.get("resp_new", "key_a") is None
    clock[0] += 300
    await store.put(dataclasses.replace(row("resp_next"), created_at=clock[0]))
    ids = sorted(r[0] for r in await state.db.fetch(Sql("SELECT id FROM responses")))
    assert ids == ["resp_next"]
    # without a ttl nothing expires (the default of the class; the gateway passes the config's 30 days)
    forever = SqlResponses(state.db)
    await forever.put(dataclasses.replace(row("resp_ancient"), created_at=1.0))
    assert await forever.get("resp_ancient", "key_a") is not None
