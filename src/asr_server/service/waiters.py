"""Long polling: a ``GET`` that waits for its task to end instead of the client polling.

A client that polls every quarter second costs the server a request per task per quarter second,
on the same cores as the engine, and still learns of a result up to a poll late. With
``?wait=S`` the request is held until the task ends, or ``S`` seconds pass, and answered then
exactly as it would have been. The engine thread calls ``ended`` when it writes a task's end;
the event loop wakes the requests waiting for it. A task that ends on another replica (the Redis
store) wakes no one here, so a waiting request also reads the store again every ``RECHECK_S``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

MAX_WAIT_S = 30.0  # below the usual proxy read timeouts (nginx: 60 s by default)
RECHECK_S = 1.0


class TaskWaiters:
    """Events for requests waiting on tasks; thread-safe to wake from the engine thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self.closed = False

    @contextmanager
    def watching(self, task_id: str) -> Iterator[asyncio.Event]:
        """An event set when the task ends (or the server stops). Watch before reading the
        task, so that an end between the read and the wait is not missed."""
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiting.setdefault(task_id, set()).add(entry)
            if self.closed:
                entry[1].set()
        try:
            yield entry[1]
        finally:
            with self._lock:
                entries = self._waiting.get(task_id)
                if entries is not None:
                    entries.discard(entry)
                    if not entries:
                        del self._waiting[task_id]

    def ended(self, task_id: str) -> None:
        """Called from any thread when a task is done, failed or deleted."""
        with self._lock:
            entries = list(self._waiting.get(task_id, ()))
        for loop, event in entries:
            _set_soon(loop, event)

    def close(self) -> None:
        """Answer every waiting request now: the server is stopping."""
        with self._lock:
            self.closed = True
            entries = [entry for entries in self._waiting.values() for entry in entries]
        for loop, event in entries:
            _set_soon(loop, event)

    @property
    def count(self) -> int:
        with self._lock:
            return sum(len(entries) for entries in self._waiting.values())


def _set_soon(loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
    try:
        loop.call_soon_threadsafe(event.set)
    except RuntimeError:
        pass  # the loop has closed: nobody is waiting any more


async def wait_once(event: asyncio.Event, seconds: float) -> None:
    """Wait for the event for at most ``seconds``, then clear it for the next round."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        pass
    event.clear()
