"""Ending what is still open when the shutdown deadline comes.

On SIGTERM the server stops accepting and lets in-flight requests run until
`server.shutdown_timeout`. A stream can outlive any deadline (an endless or very long
generation), so the pipeline marks the parts of a request that may be ended then, naming the
request's task (`request.task`):

    await drain.call(task, aw)        a model call before any byte of the answer is sent:
                                      at the deadline it raises ShuttingDown (a 503 answer)
    await drain.stream(task, aw)      the body of a stream the client already has a 200 for:
    async with drain.streaming(task)  at the deadline it raises ShuttingDown where the stream
                                      waits, and the stream's `except` writes the surface's
                                      error event and ends the body cleanly

`Drain.end_all()` (called by the server at the deadline) interrupts every such section by
cancelling its task and turning that one cancellation into ShuttingDown, the way
`asyncio.timeout` turns its own cancellation into TimeoutError. Any other cancellation passes
through untouched. Outside a shutdown a section costs one coroutine and a dict insert and pop
(the task is passed in: asyncio.current_task() alone would cost more than all of that).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable
from types import TracebackType
from typing import Any, TypeVar

from unigate.errors import ServiceUnavailable

T = TypeVar("T")
Task = asyncio.Task[Any]

# What a task is inside, for end_all(): a call and a stream are ended; PASSIVE is a call whose
# stream section is over (its response is under way: finishing it is the handler's business).
_CALL, _STREAM, _PASSIVE = 0, 1, 2


class ShuttingDown(ServiceUnavailable):
    """The gateway is stopping. Not fallbackable: every deployment is behind this same process."""

    fallbackable = False

    def __init__(self) -> None:
        # Retry-After: 1 tells a client it may retry at once (another instance, or this one restarted)
        super().__init__("the gateway is shutting down", retry_after=1)


class Drain:
    """The sections open right now, per task, and whether the deadline has passed."""

    __slots__ = ("_ending", "_open", "ended")

    def __init__(self) -> None:
        self._open: dict[Task, int] = {}
        self._ending: set[Task] = set()  # tasks end_all() cancelled whose cancellation is not yet converted
        self.ended = False

    # ------------------------------------------------------------------ for the pipeline

    async def call(self, task: Task, aw: Awaitable[T], _mode: int = _CALL) -> T:
        # runs once per model call: the common path is written out here, not in helpers
        if self.ended:
            self._enter(task, _mode, aw)  # raises ShuttingDown
        opened = self._open
        prev = opened.get(task)
        opened[task] = _mode
        try:
            return await aw
        except asyncio.CancelledError:
            if self._ending and self._converts(task):
                raise ShuttingDown() from None
            raise
        finally:
            if self._ending or prev is not None:
                self._leave(task, prev)
            else:
                del opened[task]

    def stream(self, task: Task, aw: Awaitable[T]) -> Awaitable[T]:
        return self.call(task, aw, _STREAM)

    def streaming(self, task: Task) -> _Section:
        """`async with drain.streaming(task):` around a stream loop written inline."""
        return _Section(self, task)

    # ------------------------------------------------------------------ for the server

    @property
    def open(self) -> int:
        """Calls and streams that end_all() would end now."""
        return sum(1 for mode in self._open.values() if mode != _PASSIVE)

    def end_all(self) -> int:
        """The deadline: end every open call and stream; sections entered later end at once.
        Returns how many were ended."""
        self.ended = True
        n = 0
        for task, mode in list(self._open.items()):
            if mode != _PASSIVE and task not in self._ending and not task.done():
                self._ending.add(task)
                task.cancel()
                n += 1
        return n

    # ------------------------------------------------------------------ the mechanism

    def _enter(self, task: Task, mode: int, aw: object = None) -> int | None:
        if self.ended:
            if inspect.iscoroutine(aw):
                aw.close()  # it will never run: say so to Python, or it warns "never awaited"
            raise ShuttingDown()
        prev = self._open.get(task)
        self._open[task] = mode
        return prev

    def _converts(self, task: Task) -> bool:
        """Whether the CancelledError now passing is end_all()'s and nothing else's."""
        if task not in self._ending:
            return False
        self._ending.discard(task)
        # another cancel() on top of ours (the server force-stopping, a caller's timeout) wins
        return task.uncancel() == 0

    def _leave(self, task: Task, prev: int | None) -> None:
        if self._ending and task in self._ending:
            # end_all() cancelled the task but the CancelledError never reached us (something
            # inside swallowed it): take the request back, or the task's later timeouts misfire
            self._ending.discard(task)
            task.uncancel()
        if prev is None:
            self._open.pop(task, None)
        else:
            # a stream section inside a call: once it is over, the response is under way and the
            # call must no longer be turned into a 503
            self._open[task] = _PASSIVE


class _Section:
    """The async-with form of a stream section."""

    __slots__ = ("drain", "prev", "task")

    def __init__(self, drain: Drain, task: Task) -> None:
        self.drain, self.task = drain, task
        self.prev: int | None = None

    async def __aenter__(self) -> None:
        self.prev = self.drain._enter(self.task, _STREAM)

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            if et is not None and issubclass(et, asyncio.CancelledError) and self.drain._converts(self.task):
                raise ShuttingDown() from None
        finally:
            self.drain._leave(self.task, self.prev)
