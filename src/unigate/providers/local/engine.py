"""One engine per local model: a dedicated worker thread owns the llama.cpp model and runs one
job at a time; the event loop only queues jobs and receives their results.

Why a thread per model: llama.cpp releases the GIL while it computes, but one generation is a
long sequence of blocking calls, and a llama.cpp context is not safe to use from two threads at
once. So the model lives in its own thread, and results travel back to the loop that asked with
`loop.call_soon_threadsafe`, one canonical chunk per token.

Concurrency is bounded: one running job per model, at most `max_queue` waiting; a job that waits
longer than `queue_timeout` leaves the queue with a 503 + Retry-After. A job is cancelled by
setting a flag the worker checks between tokens (see `generate.py`), so a client that leaves
stops its generation within one token.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import queue
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from unigate.errors import GatewayError, InvalidRequest, ServiceUnavailable, UpstreamUnavailable

log = logging.getLogger("unigate.local")


#: marks the end of a job's output on its queue.
END: Any = object()


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """How one model file is loaded. Equal specs share one loaded model in the process."""

    name: str
    path: str
    n_ctx: int
    n_threads: int
    chat_format: str | None = None
    embedding: bool = False


@dataclass(slots=True)
class EngineStats:
    loads: int = 0
    completed: int = 0
    cancelled: int = 0
    failed: int = 0
    #: requests refused because the queue was full, or because they waited past queue_timeout.
    rejected_full: int = 0
    rejected_timeout: int = 0
    #: the last finished job: finish_reason ("stop", "length", "cancelled", "error") and tokens.
    last_finish: str | None = None
    last_completion_tokens: int = 0


#: work(model, job) runs in the worker thread; it may emit items and/or return a final one.
Work = Callable[[Any, "Job"], Any]


class Job:
    """One request's trip through the engine. The loop side awaits `next()`; the worker side calls
    `emit()`. `cancelled` is a plain flag: written by the loop, read by the worker between tokens
    (a bool store is atomic under the GIL)."""

    __slots__ = (
        "cancelled",
        "completion_tokens",
        "done",
        "finish_reason",
        "loop",
        "out",
        "prompt_tokens",
        "started",
        "state",
        "work",
    )

    def __init__(self, work: Work, loop: asyncio.AbstractEventLoop) -> None:
        self.work = work
        self.loop = loop
        self.out: asyncio.Queue[Any] = asyncio.Queue()
        self.started: asyncio.Future[None] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()
        self.cancelled = False
        #: queued -> running -> done, or queued -> withdrawn; changed under the engine's lock.
        self.state = "queued"
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.finish_reason: str | None = None

    # ---- worker side
    def emit(self, item: Any) -> None:
        self._call(self.out.put_nowait, item)

    def _signal(self, fut: asyncio.Future[None]) -> None:
        self._call(_resolve, fut)

    def _call(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.cancelled = True

    # ---- loop side
    async def next(self) -> Any:
        """The next output item, END when the job is over; raises the job's error."""
        item = await self.out.get()
        if isinstance(item, BaseException):
            raise item
        return item


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class LocalEngine:
    def __init__(self, spec: ModelSpec, loader: Callable[[ModelSpec], Any]) -> None:
        self.spec = spec
        self._loader = loader
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._model: Any = None
        self.pending = 0
        self.running: Job | None = None
        self.stats = EngineStats()
        #: (finish_reason, completion_tokens) of the last finished jobs, oldest first.
        self.history: deque[tuple[str | None, int]] = deque(maxlen=64)
        self._avg_job_s = 0.0
        _ALL.add(self)

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def busy(self) -> bool:
        return self.running is not None or self.pending > 0

    # ------------------------------------------------------------------ loop side

    async def run(self, work: Work, *, max_queue: int, queue_timeout: float) -> Job:
        """Queue `work`; return its Job once the worker has started it. Raises ServiceUnavailable
        when the queue is full or the wait exceeds `queue_timeout`."""
        job = Job(work, asyncio.get_running_loop())
        name = self.spec.name
        with self._lock:
            if self.busy and self.pending >= max_queue:
                self.stats.rejected_full += 1
                raise ServiceUnavailable(
                    f"local: local/{name} is busy ({self.pending} requests already waiting, local.max_queue is "
                    f"{max_queue}); retry later or use another model",
                    retry_after=self._retry_after(),
                )
            self.pending += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._worker, name=f"unigate-local-{name}", daemon=True)
                self._thread.start()
        self._jobs.put(job)
        try:
            await asyncio.wait_for(asyncio.shield(job.started), queue_timeout)
        except TimeoutError:
            if self._withdraw(job):
                self.stats.rejected_timeout += 1
                raise ServiceUnavailable(
                    f"local: local/{name} is busy: the request waited {queue_timeout:g}s in its queue "
                    "(local.queue_timeout); retry later or use another model",
                    retry_after=self._retry_after(),
                ) from None
            await job.started  # the worker took it just as the wait ran out
        except asyncio.CancelledError:
            self.cancel(job)
            raise
        return job

    def cancel(self, job: Job) -> None:
        """Take a waiting job out of the queue, or tell a running one to stop at the next token."""
        if not self._withdraw(job):
            job.cancelled = True

    async def stop(self, job: Job, wait: float = 5.0) -> None:
        """Cancel `job` and wait (boundedly) until the worker has let go of it."""
        self.cancel(job)
        if job.state == "running" and not job.done.done():
            try:
                await asyncio.wait_for(asyncio.shield(job.done), wait)
            except TimeoutError:  # a long prompt evaluation cannot be interrupted mid-way
                log.warning("local/%s: generation did not stop within %gs", self.spec.name, wait)

    def _withdraw(self, job: Job) -> bool:
        with self._lock:
            if job.state != "queued":
                return False
            job.state = "withdrawn"
            job.cancelled = True
            self.pending -= 1
            return True

    def _retry_after(self) -> float:
        return max(1.0, min(60.0, self._avg_job_s * (self.pending + 1)))

    # ------------------------------------------------------------------ worker thread

    def _worker(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                break
            with self._lock:
                if job.state != "queued":
                    continue  # withdrawn while waiting
                job.state = "running"
                self.pending -= 1
                self.running = job
            job._signal(job.started)
            t0 = time.perf_counter()
            try:
                if not job.cancelled:
                    result = job.work(self._load(), job)
                    if result is not None:
                        job.emit(result)
            except Exception as e:  # noqa: BLE001 - every failure goes back to the request that caused it
                job.finish_reason = "error"
                job.emit(self._error_for(e))
            finally:
                self._finish(job, time.perf_counter() - t0)
        model, self._model = self._model, None
        if model is not None and hasattr(model, "close"):
            model.close()

    def _finish(self, job: Job, seconds: float) -> None:
        with self._lock:
            self.running = None
            job.state = "done"
            st = self.stats
            if job.cancelled:
                st.cancelled += 1
                job.finish_reason = "cancelled"
            elif job.finish_reason == "error":
                st.failed += 1
            else:
                st.completed += 1
                self._avg_job_s = seconds if not self._avg_job_s else 0.8 * self._avg_job_s + 0.2 * seconds
            st.last_finish = job.finish_reason
            st.last_completion_tokens = job.completion_tokens
            self.history.append((job.finish_reason, job.completion_tokens))
        job.emit(END)
        job._signal(job.done)

    def _load(self) -> Any:
        """Load the model on first use, here in the worker thread, never on the event loop."""
        if self._model is None:
            t0 = time.perf_counter()
            try:
                self._model = self._loader(self.spec)
            except Exception as e:
                raise ServiceUnavailable(
                    f"local: could not load local/{self.spec.name} from {self.spec.path}: {type(e).__name__}: {e}",
                    retry_after=30,
                ) from e
            self.stats.loads += 1
            log.info("local/%s: loaded %s in %.2fs", self.spec.name, self.spec.path, time.perf_counter() - t0)
        return self._model

    def _error_for(self, e: Exception) -> GatewayError:
        if isinstance(e, GatewayError):
            return e
        msg = str(e)
        if isinstance(e, ValueError) and ("context window" in msg or "batch size" in msg):
            # llama-cpp-python: "Requested tokens (N) exceed context window of M" (chat) or
            # "... exceed batch size of M" (embeddings)
            return InvalidRequest(f"local: {msg}; shorten the messages or raise n_ctx for local/{self.spec.name}",
                                  param="messages", code="context_length_exceeded")
        if isinstance(e, ValueError) or type(e).__module__.startswith("jinja2"):
            # bad input the model's chat template or llama-cpp-python refused
            return InvalidRequest(f"local: local/{self.spec.name} cannot take this request: {msg}")
        log.exception("local/%s: generation failed", self.spec.name)
        return UpstreamUnavailable(f"local: local/{self.spec.name} failed: {type(e).__name__}: {msg}",
                                   provider="local")

    def shutdown(self, wait: float = 2.0) -> None:
        """Stop the worker (cancelling what runs) and free the model."""
        job = self.running
        if job is not None:
            job.cancelled = True
        self._jobs.put(None)
        t = self._thread
        if t is not None and t.is_alive():
            t.join(wait)


_ALL: weakref.WeakSet[LocalEngine] = weakref.WeakSet()


@atexit.register
def _shutdown_all() -> None:
    # Free models before the interpreter tears down the modules llama-cpp-python's finalizers use.
    for engine in list(_ALL):
        engine.shutdown()
