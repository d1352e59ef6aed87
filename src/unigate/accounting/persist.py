"""The usage ledger, persisted: each flush of the in-memory ledger becomes rows of the state's
usage table (state/sql_ledger.py), in one write per flush, off the request path.

A write that fails (the database is restarting) keeps its rows for the next flush, up to
MAX_PENDING; the rows are idempotent on (request_id, attempt), so a write that committed but
whose answer was lost is harmless when repeated. Shutdown (SIGTERM) flushes the ledger before
the state closes (app.py), so a clean stop loses no row; a SIGKILL loses at most the rows of
the last flush interval."""

from __future__ import annotations

import logging

from unigate.accounting.ledger import UsageRecord
from unigate.state.base import LedgerStore
from unigate.state.records import UsageRow

log = logging.getLogger("unigate.ledger")

MAX_PENDING = 500_000


def row_of(rec: UsageRecord) -> UsageRow:
    # positional, in UsageRow's field order: this runs once per attempt on the event loop
    return UsageRow(
        rec.started, rec.request_id, str(rec.endpoint), rec.attempt, rec.key_id, rec.team, rec.model,
        rec.served_model, rec.deployment, rec.provider, max(rec.attempt, 1), rec.prompt_tokens,
        rec.completion_tokens, rec.cached_tokens, rec.cache_write_tokens, rec.reasoning_tokens, rec.cost_usd,
        rec.latency_ms, rec.ttfb_ms, rec.status, rec.error_code, rec.client_disconnected, rec.stream,
    )


class LedgerWriter:
    """A batch sink of `Ledger` writing to a LedgerStore."""

    def __init__(self, store: LedgerStore, max_pending: int = MAX_PENDING) -> None:
        self._store = store
        self._pending: list[UsageRow] = []
        self._max = max_pending
        self.dropped = 0

    async def __call__(self, records: list[UsageRecord]) -> None:
        self._pending.extend(row_of(r) for r in records)
        if len(self._pending) > self._max:
            cut = len(self._pending) - self._max
            self.dropped += cut
            log.error("the usage ledger is %d rows behind its database: dropping the %d oldest", len(self._pending), cut)
            del self._pending[:cut]
        rows, self._pending = self._pending, []
        try:
            await self._store.write(rows)
        except BaseException:
            self._pending = rows + self._pending  # the next flush tries again
            raise
