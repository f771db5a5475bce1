"""Every ended task takes one path: the store's record, the metric, the long polls woken and
the webhook sent; a task claimed too often is given up through the same path."""

from __future__ import annotations

from asr_server.errors import ErrorKind, Failure
from asr_server.service.metrics import Metrics
from asr_server.service.task_events import TaskEvents
from asr_server.service.waiters import TaskWaiters
from asr_server.store.records import TaskStatus
from asr_server.store.sqlite_store import SqliteTaskStore


class RecordingNotifier:
    """Stands in for the webhook sender: counts how often it is told that a task ended."""

    def __init__(self) -> None:
        self.kicks = 0

    def kick(self) -> None:
        self.kicks += 1


class RecordingWaiters(TaskWaiters):
    def __init__(self) -> None:
        super().__init__()
        self.woken: list[str] = []

    def ended(self, task_id: str) -> None:
        self.woken.append(task_id)
        super().ended(task_id)


def events(tmp_path, max_attempts: int = 3):
    store = SqliteTaskStore(tmp_path / "t.db")
    notifier, metrics, waiters = RecordingNotifier(), Metrics(), RecordingWaiters()
    return store, notifier, metrics, waiters, TaskEvents(store, notifier, metrics, waiters, max_attempts)


def ended_count(metrics: Metrics, status: str) -> float:
    return metrics.registry.get_sample_value("asr_tasks_ended_total", {"status": status}) or 0.0


def test_a_finished_task_is_counted_wakes_its_waiters_and_sends_its_webhook(tmp_path):
    store, notifier, metrics, waiters, source = events(tmp_path)
    task_id = store.create("/x", {"callback_url": "http://127.0.0.1:9/hook"})
    [job] = source.claim(1)
    source.finish(job.task_id, {"text": " hi", "segments": [], "language": "en"})
    assert ended_count(metrics, "done") == 1 and waiters.woken == [task_id] and notifier.kicks == 1
    assert [(d.task_id, d.url) for d in store.take_deliveries(10, 60)] == [(task_id, "http://127.0.0.1:9/hook")]


def test_a_task_claimed_more_than_max_attempts_times_is_given_up_like_any_ended_task(tmp_path):
    store, notifier, metrics, waiters, source = events(tmp_path, max_attempts=2)
    task_id = store.create("/x", {"callback_url": "http://127.0.0.1:9/hook"})
    for _ in range(2):  # the server dies while working on it, twice
        assert [job.task_id for job in source.claim(1)] == [task_id]
        store.requeue_running()
    assert source.claim(1) == []
    record = store.get(task_id)
    assert record.status == TaskStatus.ERROR and record.error_kind == ErrorKind.ABANDONED
    assert "interrupted 2 times" in record.error
    assert ended_count(metrics, "error") == 1 and waiters.woken == [task_id] and notifier.kicks == 1
    assert [d.task_id for d in store.take_deliveries(10, 60)] == [task_id], "its webhook is promised too"


def test_a_late_end_of_a_deleted_task_notifies_nothing(tmp_path):
    store, notifier, metrics, waiters, source = events(tmp_path)
    task_id = store.create("/x", {"callback_url": "http://127.0.0.1:9/hook"})
    source.claim(1)
    store.delete(task_id)
    source.fail(task_id, Failure.told(ErrorKind.INTERNAL, "too late"))
    assert notifier.kicks == 0 and waiters.woken == [] and ended_count(metrics, "error") == 0
    assert store.take_deliveries(10, 60) == []
