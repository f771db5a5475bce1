"""What every task store holds and offers: the record, the summary, the protocol, ids.

``TaskStore`` is the interface the service layer and the scheduler use; the stores are
``sqlite_store.SqliteTaskStore`` (embedded) and ``redis_store.RedisTaskStore`` (shared by replicas).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from asr_server.errors import ErrorKind, Failure


class TaskStatus(StrEnum):
    """A task's state in the store. The seed's API says ``processing`` for both queued and running."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    ERROR = "error"

    @property
    def ended(self) -> bool:
        return self in (TaskStatus.DONE, TaskStatus.ERROR)


ADDRESS_PREFIX = "address:"  # an owner that is a client address (auth off), not an API key


def address_account(address: str | None) -> str:
    """The owner stored, with auth off, for a task from this client address: the per-key limits
    count it like a key. It hides the task from no one (with auth off every task is visible)."""
    return f"{ADDRESS_PREFIX}{address or 'unknown'}"


@dataclass(frozen=True)
class TaskRecord:
    task_id: str
    status: TaskStatus
    audio_path: str | None
    options: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None  # a failure's text: the traceback, or the server's own message
    attempts: int
    progress: float | None = None  # share of the audio done, where the store keeps it
    owner: str | None = None  # the API key's owner id; with auth off, address_account()
    error_kind: ErrorKind | None = None
    error_message: str | None = None

    @property
    def failure(self) -> Failure | None:
        if self.status != TaskStatus.ERROR:
            return None
        # A record written before failures had a kind and a message: its text only.
        return Failure(self.error_kind or ErrorKind.INTERNAL, self.error_message or "", self.error or "")


@dataclass(frozen=True)
class PendingDelivery:
    """A webhook the store holds for an ended task until it is made (at least once)."""

    task_id: str  # also the delivery's id: one delivery per task, every attempt alike
    url: str
    attempt: int  # the attempt about to be made, from 1


@dataclass(frozen=True)
class TaskSummary:
    """A line of the task list: no audio, no result."""

    task_id: str
    status: TaskStatus


class TaskStore(Protocol):
    """What the service and the scheduler need of a store. A task that ends with a
    ``callback_url`` in its options gets a pending delivery in the same write, so that no
    promised webhook is lost even if the process dies right after."""

    def create(self, audio_path: str, options: dict[str, Any], max_queued: int | None = None,
               owner: str | None = None) -> str: ...
    def get(self, task_id: str) -> TaskRecord | None: ...
    def claim(self, limit: int) -> list[TaskRecord]: ...
    def finish(self, task_id: str, result: dict[str, Any]) -> bool: ...
    def fail(self, task_id: str, failure: Failure) -> bool: ...
    def requeue_running(self) -> int: ...
    def set_progress(self, task_id: str, fraction: float) -> None: ...
    def live_audio_paths(self) -> set[str]: ...
    def counts(self) -> dict[str, int]: ...
    def list(self, status: TaskStatus | None, after: str | None, limit: int,
             owner: str | None = None) -> list[TaskSummary]: ...
    def delete(self, task_id: str) -> bool: ...
    def queue_position(self, task_id: str) -> int: ...
    def queued(self) -> int: ...
    def unfinished(self, owner: str) -> int: ...
    def take_deliveries(self, limit: int, lease_s: float) -> builtins.list[PendingDelivery]: ...
    def delivery_done(self, task_id: str) -> None: ...
    def delivery_retry(self, task_id: str, attempt: int, delay_s: float) -> None: ...
    def close(self) -> None: ...


class StorageFull(Exception):
    """``create`` refused: the store's disk (or memory) is full."""


class QueueFull(Exception):
    """``create`` refused: ``max_queued`` tasks already wait. The message is the client's."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"Too many queued tasks (limit {limit}); retry later")
        self.limit = limit


def format_task_id(moment: datetime) -> str:
    """The seed's id form: YYYYMMDDHHMMSS plus 6 digits of microseconds, UTC, 20 digits."""
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S%f")


def parse_task_id(task_id: str) -> datetime:
    return datetime.strptime(task_id, "%Y%m%d%H%M%S%f").replace(tzinfo=UTC)


def task_ids_from(last_id: str) -> Iterator[str]:
    """Candidate ids for the next task, in order: now's, or the microsecond after ``last_id``
    when the clock has not passed it (two uploads in one microsecond, a clock stepped back);
    a store takes the first one no task holds."""
    moment = datetime.now(UTC)
    if format_task_id(moment) <= last_id:
        moment = parse_task_id(last_id) + timedelta(microseconds=1)
    while True:
        yield format_task_id(moment)
        moment += timedelta(microseconds=1)
