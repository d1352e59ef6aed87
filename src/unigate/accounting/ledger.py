"""Usage records: one per call that reached a provider, written off the hot path.

`Ledger.add()` only appends to a bounded in-memory buffer; a background task drains it to the
configured sinks in batches (the metrics are one). The last 1,000 records stay in memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from unigate.accounting.pricing import Counts, usage_counts

log = logging.getLogger("unigate.ledger")


@dataclass(init=False)
class UsageRecord:
    """One call. A plain (not slotted) dataclass whose defaults are class attributes: a request
    sets only what it knows, instead of all 25 fields at creation (bench/: the generated
    __init__ was 5 % of the Python a JSON request runs)."""

    request_id: str
    endpoint: str
    model: str
    key_id: str | None = None
    team: str | None = None
    #: the `provider/model` that served (or was tried by) this attempt
    served_model: str = ""
    #: this attempt's number in its call (1 for the first)
    attempt: int = 0
    deployment: str = ""
    provider: str = ""
    stream: bool = False
    status: int = 0
    error_code: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    usage_known: bool = False
    cost_usd: float | None = None
    #: cost was computed (cost_usd None then means: no known price)
    priced: bool = False
    #: wall-clock start, epoch seconds
    started: float = 0.0
    latency_ms: float = 0.0
    ttfb_ms: float | None = None
    client_disconnected: bool = False
    usage: dict[str, Any] | None = None
    #: the token counts pricing uses (see pricing.usage_counts), taken once
    counts: Counts | None = None

    def __init__(self, request_id: str, endpoint: str, model: str, key_id: str | None = None, deployment: str = "",
                 provider: str = "", stream: bool = False, status: int = 0) -> None:
        self.request_id, self.endpoint, self.model, self.key_id = request_id, endpoint, model, key_id
        self.deployment, self.provider, self.stream, self.status = deployment, provider, stream, status
        self.started = time.time()

    def set_usage(self, usage: Any) -> None:
        """Take the counts of an OpenAI usage object. Anything else (absent, or an upstream's
        malformed value) leaves the usage unknown."""
        if not usage or not isinstance(usage, dict):
            return
        self.usage = usage
        self.usage_known = True
        c = self.counts = usage_counts(usage)
        self.prompt_tokens, self.completion_tokens, self.cached_tokens, self.cache_write_tokens, self.reasoning_tokens = c[:5]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Sink = Callable[[list[UsageRecord]], Awaitable[None]]


class Ledger:
    def __init__(self, max_buffer: int = 100_000, flush_interval: float = 0.25, slice_size: int = 64) -> None:
        self._buf: deque[UsageRecord] = deque()
        self._max = max_buffer
        self._interval = flush_interval
        #: records handled between yields to the event loop, so a flush never stalls requests
        self._slice = slice_size
        self._sinks: list[Sink] = []
        #: sinks that take a whole drain at once (one database transaction per flush)
        self._batch_sinks: list[Sink] = []
        self._task: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self.dropped = 0
        self.recent: deque[UsageRecord] = deque(maxlen=1000)

    def add_sink(self, sink: Sink) -> None:
        self._sinks.append(sink)

    def add_batch_sink(self, sink: Sink) -> None:
        self._batch_sinks.append(sink)

    def add(self, rec: UsageRecord) -> None:
        if len(self._buf) >= self._max:
            # never block or grow without bound; the count is exported so the loss is visible
            self._buf.popleft()
            self.dropped += 1
        self._buf.append(rec)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()

    async def flush(self) -> None:
        """Drain the buffer to the sinks. Flushes run one at a time, so a caller
        that awaits flush() (a metrics scrape) sees every record added before it."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            await self._drain()

    async def _drain(self) -> None:
        if not self._buf:
            return
        batch = list(self._buf)
        self._buf.clear()
        for i in range(0, len(batch), self._slice):
            if i:
                await asyncio.sleep(0)
            part = batch[i : i + self._slice]
            self.recent.extend(part)
            for sink in self._sinks:
                try:
                    await sink(part)
                except Exception:  # a failing sink must not stop accounting for the others
                    log.exception("usage sink %r failed for %d records", sink, len(part))
        for sink in self._batch_sinks:
            try:
                await sink(batch)
            except Exception:  # the sink keeps what it could not write (persist.py)
                log.exception("usage sink %r failed for %d records", sink, len(batch))
