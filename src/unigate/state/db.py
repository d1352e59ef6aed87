"""The one seam between the stores and a SQL engine (SQLite file or PostgreSQL).

The stores are written once against `Database`; a backend only runs statements. Statements use
`?` placeholders (PostgreSQL's `$n` are derived) and SQL both engines accept (ON CONFLICT upserts).
A read-check-write is one `atomic` call: the reads run inside the transaction, `decide` (plain
Python, no I/O) returns the answer and the writes, and they commit together. SQLite then runs the
whole transaction in one hop to its thread, so the write lock is never held across event-loop turns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

Row = tuple[Any, ...]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Sql:
    text: str
    args: Sequence[Any] = ()
    #: args is a sequence of parameter rows (executemany)
    many: bool = False


Decide = Callable[[list[list[Row]]], tuple[T, Sequence[Sql]]]


class Database(Protocol):
    dialect: Literal["sqlite", "postgres"]

    async def atomic(self, locks: Sequence[str], reads: Sequence[Sql], decide: Decide[T], *, durable: bool = True) -> T:
        """Run `reads`, then the writes `decide` returns for their rows, in one transaction that
        is serialized with every other `atomic` sharing one of `locks` (SQLite serializes all).
        `durable=False`: the commit may be lost if the database server crashes right after it
        (for counters that expire anyway: rate windows, leases, reservations); never for money."""
        ...

    async def fetch(self, sql: Sql) -> list[Row]: ...

    async def close(self) -> None: ...


def placeholders(n: int) -> str:
    return ",".join("?" * n)
