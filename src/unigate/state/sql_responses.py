"""Stored Responses API answers in SQL (SQLite or PostgreSQL): what `store` keeps and
`previous_response_id` reads (surfaces/responses).

A row holds the Response object as the client got it and the conversation before it (the items
of the earlier turns and of the request's input), so that chaining a turn is one read: the next
request's history is `conversation + response.output`. Every read and delete is by id AND owner
(the key that made it): another key's response does not exist for the caller.

Rows live `ttl` seconds (`state.responses_ttl_days`, 30 days by default as OpenAI keeps
them): an older row is not found, and a write at most every PURGE_EVERY seconds per process
deletes the expired ones in its own transaction (the created_at index keeps that cheap), so
the table holds no more than the retention window with no background task.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from unigate.state.db import Database, Row, Sql

_COLS = "id, owner, created_at, model, previous_id, conversation, response"
#: seconds between one process's purges of expired rows
PURGE_EVERY = 300.0


@dataclass(frozen=True, slots=True)
class StoredResponse:
    id: str
    owner: str
    created_at: float
    model: str
    previous_id: str | None
    #: the input items before the answer: earlier turns' items, then this request's input
    conversation: list[Any]
    #: the Response object
    response: dict[str, Any]
    #: bytes of the stored JSON (the conversation's share of a next turn's size: token estimates)
    size: int = 0

    def history(self) -> list[Any]:
        """The items a next turn continues from: the conversation and this answer's output."""
        output = self.response.get("output")
        return [*self.conversation, *(output if isinstance(output, list) else ())]


def _stored(row: Row) -> StoredResponse:
    return StoredResponse(id=row[0], owner=row[1], created_at=float(row[2]), model=row[3], previous_id=row[4],
                          conversation=orjson.loads(row[5]), response=orjson.loads(row[6]),
                          size=len(row[5]) + len(row[6]))


class SqlResponses:
    def __init__(self, db: Database, *, ttl: float | None = None, now: Callable[[], float] = time.time) -> None:
        self._db = db
        #: seconds a row lives (None: for ever)
        self._ttl = ttl
        self._now = now
        self._purged_at = -PURGE_EVERY

    def _cutoff(self) -> float:
        """Rows created before this are expired (-1 without a ttl: none is)."""
        return -1.0 if self._ttl is None else self._now() - self._ttl

    async def put(self, r: StoredResponse) -> None:
        now = self._now()
        insert = Sql(f"INSERT INTO responses ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (r.id, r.owner, r.created_at or now, r.model, r.previous_id,
                      orjson.dumps(r.conversation).decode(), orjson.dumps(r.response).decode()))
        writes = [insert]
        if self._ttl is not None and now - self._purged_at >= PURGE_EVERY:
            self._purged_at = now
            writes.append(Sql("DELETE FROM responses WHERE created_at < ?", (self._cutoff(),)))
        await self._db.atomic(("responses",), (), lambda _rows: (None, writes))

    async def get(self, response_id: str, owner: str) -> StoredResponse | None:
        rows = await self._db.fetch(Sql(f"SELECT {_COLS} FROM responses WHERE id = ? AND owner = ? AND created_at >= ?",
                                        (response_id, owner, self._cutoff())))
        return _stored(rows[0]) if rows else None

    async def delete(self, response_id: str, owner: str) -> bool:
        """Whether the caller's response existed (and is now gone)."""
        find = Sql("SELECT id FROM responses WHERE id = ? AND owner = ? AND created_at >= ?",
                   (response_id, owner, self._cutoff()))
        gone = Sql("DELETE FROM responses WHERE id = ? AND owner = ?", (response_id, owner))

        def decide(rows: list[list[Row]]) -> tuple[bool, list[Sql]]:
            return (True, [gone]) if rows[0] else (False, [])

        return await self._db.atomic(("responses",), (find,), decide)
