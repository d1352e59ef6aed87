"""Per-deployment live figures the strategies order by: latency (peak-EWMA), requests in flight,
and recent requests and tokens.

Design notes (the defaults and why)
-----------------------------------
* Two latencies, because they measure different things: **time to first token** for streams
  (what a streaming user waits for) and **seconds per output token** for non-streams (the whole
  answer's time divided by its length, so a long answer does not make a fast deployment look
  slow). An answer without output tokens (embeddings) gives no per-token sample.
* **Peak-EWMA** (as in Finagle's load balancer): a sample above the current value replaces it at
  once, a sample below it pulls the value down with weight `1 - exp(-dt / tau)`, dt being the
  time since the previous sample. A deployment that slows down is avoided from its first slow
  answer; one that speeds up earns its traffic back gradually, so a single lucky answer does
  not move all traffic onto it. `tau` is **10 s**: recovery within tens of seconds, yet
  smoothing over the jitter of individual answers. Weighting by elapsed time rather than per
  sample keeps the meaning of `tau` the same at 1 or 1000 requests per second.
* A figure is **unmeasured** until its first sample and again once its last sample is older than
  `stale_after` (**30 s**). That is the decay: a deployment measured slow long ago is not
  judged on old news; the lowest-latency strategy sends it one probe, and because the next
  sample is weighted by the long time since the previous one, it replaces the old value almost
  entirely.
* **In flight** is a plain counter (`start`/`finish`). Requests and tokens over the last **60 s**
  (12 buckets of 5 s, window.py) are what `usage` compares with a deployment's rpm and tpm:
  requests are counted when they start (so concurrent requests see each other), tokens when
  they are known (`record_tokens`, at the end).

Strategies hold a deployment's `LiveFigures` object (no lookup per request); `LiveStats` keeps
one per deployment id and does the arithmetic with its injected clock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from unigate.routing.window import RollingCounts


@dataclass(frozen=True, slots=True)
class LatencyConfig:
    tau: float = 10.0
    stale_after: float = 30.0
    usage_window: float = 60.0
    usage_buckets: int = 12

    def __post_init__(self) -> None:
        if self.tau <= 0 or self.stale_after <= 0:
            raise ValueError("tau and stale_after are positive durations")


_NEVER = -math.inf


class PeakEwma:
    """One latency figure, in seconds."""

    __slots__ = ("last_probe", "last_sample", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.last_sample = -math.inf
        #: when a strategy last sent this deployment a probe for this figure
        self.last_probe = -math.inf

    def observe(self, sample: float, now: float, tau: float) -> None:
        if sample >= self.value or self.last_sample == _NEVER:
            self.value = sample
        else:
            keep = math.exp(-max(now - self.last_sample, 0.0) / tau)
            self.value = sample + (self.value - sample) * keep
        self.last_sample = now

    def measured(self, now: float, stale_after: float) -> bool:
        return now - self.last_sample <= stale_after


class LiveFigures:
    """One deployment's figures, shared by every strategy and group that names it."""

    __slots__ = ("in_flight", "per_token", "ttft", "usage")

    def __init__(self, config: LatencyConfig | None = None) -> None:
        cfg = config or _DEFAULT
        self.in_flight = 0
        self.ttft = PeakEwma()
        self.per_token = PeakEwma()
        self.usage = RollingCounts(cfg.usage_window, cfg.usage_buckets)  # a: requests, b: tokens

    def latency(self, stream: bool) -> PeakEwma:
        """The figure that predicts a request of this kind."""
        return self.ttft if stream else self.per_token


_DEFAULT = LatencyConfig()


class LiveStats:
    """The live figures of every deployment in this process."""

    def __init__(self, config: LatencyConfig | None = None, *, now: Callable[[], float] = time.monotonic) -> None:
        self.config = config or _DEFAULT
        self._tau = self.config.tau
        self.now = now
        self._by_id: dict[str, LiveFigures] = {}
        #: recent requests and tokens are counted only when a strategy reads them (`usage`):
        #: two window updates per request saved on every other route (bench/opcount.py)
        self.track_usage = True

    def figures(self, dep_id: str) -> LiveFigures:
        """The deployment's figures (created on first use); hold on to them."""
        live = self._by_id.get(dep_id)
        if live is None:
            live = self._by_id[dep_id] = LiveFigures(self.config)
        return live

    def start(self, live: LiveFigures) -> None:
        """A request to this deployment is being sent."""
        live.in_flight += 1
        if self.track_usage:
            live.usage.add(self.now(), 1.0, 0.0)

    def finish(self, live: LiveFigures) -> None:
        """That request is over, whatever its outcome (call it in a `finally`)."""
        live.in_flight = max(live.in_flight - 1, 0)

    def observe_ttft(self, live: LiveFigures, seconds: float) -> None:
        # PeakEwma.observe inlined, as in observe_completion: once per streamed answer
        fig, now = live.ttft, self.now()
        if seconds >= fig.value or fig.last_sample == _NEVER:
            fig.value = seconds
        else:
            fig.value = seconds + (fig.value - seconds) * math.exp(-max(now - fig.last_sample, 0.0) / self._tau)
        fig.last_sample = now

    def observe_completion(self, live: LiveFigures, seconds: float, output_tokens: int) -> None:
        """A non-streamed answer of `output_tokens` tokens took `seconds`."""
        if output_tokens > 0:
            # PeakEwma.observe inlined: this runs once per non-streamed answer
            fig, sample, now = live.per_token, seconds / output_tokens, self.now()
            if sample >= fig.value or fig.last_sample == _NEVER:
                fig.value = sample
            else:
                keep = math.exp(-max(now - fig.last_sample, 0.0) / self._tau)
                fig.value = sample + (fig.value - sample) * keep
            fig.last_sample = now

    def record_tokens(self, live: LiveFigures, tokens: int) -> None:
        """Tokens (input + output) a finished request used, for `usage`'s tpm headroom."""
        if tokens > 0 and self.track_usage:
            live.usage.add(self.now(), 0.0, float(tokens))
