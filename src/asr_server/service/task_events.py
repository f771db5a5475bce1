"""What happens when a task ends, whoever ends it: the store's record (with its webhook's
delivery, in the same write), then the metric, the log line, the long polls woken and the
notifier told. Every ended task goes through here: finished, failed, or given up after too many
interrupted attempts.

``TaskEvents`` is the store as the scheduler's work source (claim / finish / fail).
"""

from __future__ import annotations

import logging
from typing import Any

from asr_server.errors import ErrorKind, Failure
from asr_server.service.metrics import Metrics
from asr_server.service.waiters import TaskWaiters
from asr_server.service.webhooks import Notifier
from asr_server.store.records import TaskRecord, TaskStatus, TaskStore

log = logging.getLogger("asr_server.service.task_events")


def abandoned(attempts: int, max_attempts: int) -> Failure:
    """The failure of a task whose processing was interrupted too often (a crash each time)."""
    return Failure.told(ErrorKind.ABANDONED,
                        f"task abandoned: processing was interrupted {attempts - 1} times "
                        f"(the server working on it stopped); giving up after {max_attempts}")


class TaskEvents:
    def __init__(self, store: TaskStore, notifier: Notifier, metrics: Metrics, waiters: TaskWaiters,
                 max_attempts: int) -> None:
        self._store = store
        self._waiters = waiters
        self._notifier = notifier
        self._metrics = metrics
        self._max_attempts = max_attempts

    def claim(self, limit: int) -> list[TaskRecord]:
        """Claimed tasks for the scheduler; a task claimed more than ``max_attempts`` times is
        failed here instead, through the same end as every other task."""
        claimed = []
        for record in self._store.claim(limit):
            log.info("task claimed (attempt %d)", record.attempts, extra={"task_id": record.task_id})
            if record.attempts > self._max_attempts:
                self.fail(record.task_id, abandoned(record.attempts, self._max_attempts))
            else:
                claimed.append(record)
        return claimed

    def finish(self, task_id: str, result: dict[str, Any]) -> None:
        self._ended(task_id, self._store.finish(task_id, result), TaskStatus.DONE)

    def fail(self, task_id: str, failure: Failure) -> None:
        self._ended(task_id, self._store.fail(task_id, failure), TaskStatus.ERROR)

    def _ended(self, task_id: str, written: bool, status: TaskStatus) -> None:
        """Only the write that ended the task counts and notifies (not a late one, nor one for a
        deleted task)."""
        if not written:
            return
        self._metrics.tasks_ended.labels(status).inc()
        log.info("task ended: %s", status, extra={"task_id": task_id})
        self._waiters.ended(task_id)
        self._notifier.kick()  # the store holds its webhook, if it has one
