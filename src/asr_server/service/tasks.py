"""The one path both front ends take to create, read, list and delete tasks.

The seed routes and the OpenAI routes call ``Tasks``; neither touches the store. Each task is
seen only by the owner that created it (an API key's owner id; with auth off every task is the
one operator's), so another key's task reads as absent: the seed's 404. With auth off a task is
stored under its client's address (``address_account``), which the per-key limits then count
without hiding the task from anyone. The methods block on
the store for milliseconds; async callers run them in a worker thread.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asr_server.engine.audio import stated_duration
from asr_server.service.rate_limits import retry_after_s
from asr_server.store.audio_store import AudioStoreUnavailable
from asr_server.store.records import QueueFull, StorageFull, TaskRecord, TaskStatus, TaskSummary, address_account

if TYPE_CHECKING:
    from asr_server.service.runtime import Service

log = logging.getLogger("asr_server.service.tasks")

RETRY_AFTER_S = 10  # a full queue: try again in this many seconds
DRAINING_RETRY_AFTER_S = 5  # a draining replica: the load balancer has another


class Refusal(Exception):
    """A task the server cannot take now; the message is the client's, ``status`` the answer's
    (503 for the server, 429 for a key over its own limit), and ``retry_after_s`` goes in its
    Retry-After header, with any other ``extra_headers``."""

    def __init__(self, message: str, retry_after_s: int, status: int = 503,
                 extra_headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s
        self.status = status
        self.extra_headers = extra_headers or {}

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s), **self.extra_headers}


def draining() -> Refusal:
    return Refusal("The server is shutting down; retry (another replica will take it)", DRAINING_RETRY_AFTER_S)


def queue_full(limit: int) -> Refusal:
    return Refusal(str(QueueFull(limit)), RETRY_AFTER_S)


def disk_full() -> Refusal:
    return Refusal("The server's disk is full; retry later", RETRY_AFTER_S, status=507)


def audio_store_down() -> Refusal:
    return Refusal("The audio store cannot be reached; retry", RETRY_AFTER_S)


def over_key_limit(limit: int) -> Refusal:
    """A key (or address) with ``limits.queued_tasks`` tasks waiting or running."""
    return _too_many(f"Too many tasks waiting or running for this API key or address (limit {limit}); "
                     "retry when one ends",
                     "queued", f"q={limit}", RETRY_AFTER_S)


def over_rate_limit(per_minute: int, retry_after: int) -> Refusal:
    """A key (or address) past ``limits.requests_per_minute``."""
    return _too_many(f"Too many requests for this API key or address (limit {per_minute} a minute); retry later",
                     "minute", f"q={per_minute};w=60", retry_after)


def _too_many(message: str, policy: str, quota: str, retry_after: int) -> Refusal:
    """429 with the RateLimit headers as the IETF draft writes them: the policy, and nothing
    left of it for ``retry_after`` seconds."""
    return Refusal(message, retry_after, status=429,
                   extra_headers={"RateLimit-Policy": f'"{policy}";{quota}',
                                  "RateLimit": f'"{policy}";r=0;t={retry_after}'})


def _account(owner: str | None, address: str | None) -> str:
    """Whom the limits count a request against: its API key's owner, or with auth off its
    client address."""
    return owner if owner is not None else address_account(address)


class Tasks:
    def __init__(self, service: Service) -> None:
        self._service = service

    @property
    def _store(self) -> Any:
        assert self._service.store is not None, "the store opens before requests are served"
        return self._service.store

    def admit(self, owner: str | None = None, address: str | None = None,
              overrides: dict[str, int] | None = None) -> None:
        """Refuse before the body is read, so that a flood costs the server little: the server
        is draining, cannot reach its audio store or has less than ``server.min_free_disk_mb``
        free, the key (or, with auth off, the client ``address``) made ``limits.requests_per_minute``
        requests in the last minute, ``server.max_queued_tasks`` tasks wait, or the key (address)
        has ``limits.queued_tasks`` tasks waiting or running.
        A key's ``overrides`` (from the keys file) replace those two limits for it."""
        if self._service.draining:
            raise draining()
        if self._service.audio_problem is not None:
            raise audio_store_down()
        if self._service.disk_full():
            raise disk_full()
        limits = self._service.settings.limits.model_copy(update=overrides or {})
        account = _account(owner, address)
        if limits.requests_per_minute:
            wait_s = self._service.request_limiter.hit(account, limits.requests_per_minute)
            if wait_s is not None:
                raise over_rate_limit(limits.requests_per_minute, retry_after_s(wait_s))
        limit = self._service.settings.server.max_queued_tasks
        if self._store.queued() >= limit:
            raise queue_full(limit)
        if limits.queued_tasks and self._store.unfinished(account) >= limits.queued_tasks:
            raise over_key_limit(limits.queued_tasks)

    def create(self, audio_path: Path, options: dict[str, Any], owner: str | None, address: str | None = None) -> str:
        """Store a task for an uploaded file and wake the scheduler. The file is the store's
        from then on; if the task is refused (others filled the queue while this body arrived)
        or cannot be stored, it is removed. With auth off (no ``owner``) the task is stored
        under the client's ``address``, for the limits."""
        limit = self._service.settings.server.max_queued_tasks
        account = _account(owner, address)
        try:
            task_id = self._store.create(str(audio_path), options, limit, owner=account)
        except QueueFull:
            audio_path.unlink(missing_ok=True)
            raise queue_full(limit) from None
        except StorageFull as exc:
            audio_path.unlink(missing_ok=True)
            log.error("an upload could not be stored: %s", exc)
            raise disk_full() from None
        except AudioStoreUnavailable as exc:
            audio_path.unlink(missing_ok=True)
            log.error("an upload could not be stored: %s", exc)
            raise audio_store_down() from None
        except BaseException:
            audio_path.unlink(missing_ok=True)
            raise
        self._service.task_created()
        return task_id

    def audio_duration(self, audio_path: Path) -> float | None:
        """An upload's length in seconds as its container states it (no decoding)."""
        return stated_duration(str(audio_path))

    def get(self, task_id: str, owner: str | None) -> TaskRecord | None:
        """The task, if ``owner`` may see it."""
        record = self._store.get(task_id)
        if record is None or owner is None or record.owner == owner:
            return record
        return None

    def counts(self) -> dict[str, int]:
        """Tasks in the store by status (every replica's, with Redis); empty before it opens."""
        return self._store.counts() if self._service.store is not None else {}

    def queue_position(self, task_id: str) -> int:
        return self._store.queue_position(task_id)

    def list(self, statuses: list[TaskStatus | None], after: str | None, limit: int,
             owner: str | None) -> tuple[list[TaskSummary], str | None]:
        """A page of tasks oldest first, of any of ``statuses`` (None: every status), and the
        ``after`` of the next page (None on the last)."""
        rows: list[TaskSummary] = []
        for status in statuses:
            rows += self._store.list(status, after, limit + 1, owner)
        rows = sorted(rows, key=lambda row: row.task_id)[: limit + 1]
        page = rows[:limit]
        return page, (page[-1].task_id if len(rows) > limit else None)

    def delete(self, task_id: str, owner: str | None) -> bool:
        """Remove a task the owner may see, with its audio and result; its waiters are answered
        and its work, if this replica is doing it, stops."""
        if self.get(task_id, owner) is None or not self._store.delete(task_id):
            return False
        self._service.waiters.ended(task_id)
        if self._service.scheduler is not None:
            self._service.scheduler.cancel(task_id)  # a task this replica runs stops at the next step
        return True
