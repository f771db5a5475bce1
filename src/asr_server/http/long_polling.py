"""Waiting for a task to end without polling the store: the request waits on the service's
task-end notification (``service.waiters``), and reads the store again every ``RECHECK_S`` for
a task another replica runs (its end wakes no one here)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool

from asr_server.service.runtime import Service
from asr_server.service.waiters import RECHECK_S, wait_once
from asr_server.store.records import TaskRecord


async def read_task(service: Service, task_id: str, owner: str | None, wait_s: float,
                    gone: Callable[[], Awaitable[bool]] | None = None) -> TaskRecord | None:
    """The task as the store has it; with ``wait_s``, read again when it ends until it is no
    longer processing or the wait is over. None: no such task for this owner. ``gone``: asked
    at every recheck whether the client went away; then the wait ends at once."""
    deadline = time.monotonic() + wait_s
    # Only a waiting request is registered: a plain GET, the common case, reads once.
    with service.waiters.watching(task_id) if wait_s else contextlib.nullcontext() as ended:
        while True:
            record = await run_in_threadpool(service.tasks.get, task_id, owner)
            left = deadline - time.monotonic()
            if record is None or record.status.ended or left <= 0 or service.waiters.closed:
                return record
            if gone is not None and await gone():
                return record
            assert ended is not None  # left > 0, so wait_s > 0 and the task is watched
            await wait_once(ended, min(left, RECHECK_S))
