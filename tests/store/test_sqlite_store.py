"""The embedded SQLite task store."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime

from asr_server.errors import ErrorKind, Failure
from asr_server.store import records as store_module
from asr_server.store.records import format_task_id
from asr_server.store.sqlite_store import SqliteTaskStore


def test_task_id_is_utc_timestamp_with_microseconds():
    moment = datetime(2025, 3, 31, 22, 23, 1, 719319, tzinfo=UTC)
    assert format_task_id(moment) == "20250331222301719319"


def freeze_clock(monkeypatch, frozen: datetime) -> None:
    """Make the store's clock stand still at ``frozen``."""

    class FrozenClock(datetime):
        @classmethod
        def now(cls, tz=None):
            return frozen

    monkeypatch.setattr(store_module, "datetime", FrozenClock)


def test_ids_are_unique_when_the_clock_stands_still(tmp_path, monkeypatch):
    freeze_clock(monkeypatch, datetime(2025, 3, 31, 22, 23, 1, 999998, tzinfo=UTC))
    store = SqliteTaskStore(tmp_path / "t.db")
    ids = [store.create(f"/x/{i}", {}) for i in range(5)]
    assert ids == ["20250331222301999998", "20250331222301999999",
                   "20250331222302000000", "20250331222302000001", "20250331222302000002"]


def test_ids_stay_unique_across_a_restart_with_a_clock_that_stepped_back(tmp_path, monkeypatch):
    freeze_clock(monkeypatch, datetime(2025, 1, 1, tzinfo=UTC))
    first = SqliteTaskStore(tmp_path / "t.db")
    a = [first.create("/x", {}) for _ in range(3)]
    first.close()
    second = SqliteTaskStore(tmp_path / "t.db")
    b = [second.create("/x", {}) for _ in range(3)]
    assert len(set(a + b)) == 6


def test_concurrent_creates_get_distinct_twenty_digit_ids(tmp_path):
    store = SqliteTaskStore(tmp_path / "t.db")
    ids: list[str] = []

    def create_many() -> None:
        for _ in range(50):
            ids.append(store.create("/x", {}))

    threads = [threading.Thread(target=create_many) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 400 and len(set(ids)) == 400
    assert all(re.fullmatch(r"\d{20}", i) for i in ids)


def test_claim_takes_oldest_queued_tasks_and_marks_them_running(tmp_path):
    store = SqliteTaskStore(tmp_path / "t.db")
    ids = [store.create(f"/a/{i}", {"n": i}) for i in range(3)]
    claimed = store.claim(2)
    assert [r.task_id for r in claimed] == ids[:2]
    assert all(r.status == "running" and r.attempts == 1 for r in claimed)
    assert [r.task_id for r in store.claim(5)] == ids[2:]
    assert store.claim(5) == []


def test_finish_keeps_the_result_and_deletes_the_audio(tmp_path):
    audio = tmp_path / "a.upload"
    audio.write_bytes(b"x")
    store = SqliteTaskStore(tmp_path / "t.db")
    task_id = store.create(str(audio), {})
    store.claim(1)
    store.finish(task_id, {"text": " hi", "segments": [], "language": "en"})
    record = store.get(task_id)
    assert record.status == "done" and record.result["text"] == " hi"
    assert not audio.exists()


def test_fail_keeps_the_error_and_deletes_the_audio(tmp_path):
    audio = tmp_path / "a.upload"
    audio.write_bytes(b"x")
    store = SqliteTaskStore(tmp_path / "t.db")
    task_id = store.create(str(audio), {})
    store.fail(task_id, Failure(ErrorKind.UNDECODABLE_AUDIO, "UndecodableAudio: not audio", "Traceback ..."))
    record = store.get(task_id)
    assert (record.error, record.error_kind, record.error_message) == (
        "Traceback ...", ErrorKind.UNDECODABLE_AUDIO, "UndecodableAudio: not audio")
    assert not audio.exists()


def test_an_ended_task_cannot_be_ended_again(tmp_path):
    store = SqliteTaskStore(tmp_path / "t.db")
    task_id = store.create("/x", {})
    store.finish(task_id, {"text": "first"})
    store.fail(task_id, Failure.told(ErrorKind.INTERNAL, "late failure"))
    assert store.get(task_id).status == "done"


def test_running_tasks_are_queued_again_on_reopen(tmp_path):
    store = SqliteTaskStore(tmp_path / "t.db")
    task_id = store.create("/x", {})
    store.claim(1)
    store.close()
    reopened = SqliteTaskStore(tmp_path / "t.db")
    assert reopened.requeue_running() == 1
    assert reopened.get(task_id).status == "queued"


def test_each_claim_counts_an_attempt(tmp_path):
    # Giving up on a task claimed too often is the service's decision (test_task_events.py).
    store = SqliteTaskStore(tmp_path / "t.db")
    store.create("/x", {})
    attempts = []
    for _ in range(3):
        attempts += [record.attempts for record in store.claim(1)]
        store.requeue_running()
    assert attempts == [1, 2, 3]


def test_the_owner_is_stored_with_the_task_and_lists_filter_by_it(tmp_path):
    store = SqliteTaskStore(tmp_path / "t.db")
    mine, theirs, nobodys = store.create("/x", {}, owner="a"), store.create("/x", {}, owner="b"), store.create("/x", {})
    assert store.get(mine).owner == "a" and store.get(nobodys).owner is None
    assert [row.task_id for row in store.list(None, None, 10, owner="b")] == [theirs]


def test_a_store_file_of_the_first_schema_gains_the_owner_column_from_the_options(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE tasks (task_id TEXT PRIMARY KEY, status TEXT NOT NULL, audio_path TEXT, options TEXT NOT NULL,
                            result TEXT, error TEXT, attempts INTEGER NOT NULL DEFAULT 0,
                            created_at REAL NOT NULL, updated_at REAL NOT NULL);
        INSERT INTO tasks VALUES ('20250101000000000001', 'error', NULL, '{"owner": "k1"}', NULL,
                                  'Traceback (most recent call last):\n  ...\nRuntimeError: boom', 1, 0, 0);
    """)
    old.commit()
    old.close()
    store = SqliteTaskStore(path)
    record = store.get("20250101000000000001")
    assert record.owner == "k1"
    assert [row.task_id for row in store.list(None, None, 10, owner="k1")] == ["20250101000000000001"]
    assert record.failure.summary == "Transcription failed; the server's log has the details"


def test_unknown_task_is_none(tmp_path):
    assert SqliteTaskStore(tmp_path / "t.db").get("20250101000000000000") is None


def test_expire_removes_only_tasks_that_ended_before_the_cutoff(tmp_path):
    store = SqliteTaskStore(tmp_path / "t.db")
    old_done, old_failed, queued = (store.create("/x", {}) for _ in range(3))
    store.finish(old_done, {"text": ""})
    store.fail(old_failed, Failure.told(ErrorKind.INTERNAL, "boom"))
    cutoff = time.time() + 1
    assert store.expire(cutoff) == 2
    assert store.get(old_done) is None and store.get(old_failed) is None
    assert store.get(queued).status == "queued"


def test_create_refuses_beyond_max_queued_even_from_many_threads(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from asr_server.store.records import QueueFull

    store = SqliteTaskStore(tmp_path / "t.db")

    def create(_: int) -> bool:
        try:
            store.create("/x", {}, max_queued=10)
            return True
        except QueueFull:
            return False

    with ThreadPoolExecutor(16) as pool:
        accepted = sum(pool.map(create, range(50)))
    assert accepted == 10 and store.queued() == 10


def test_reads_see_writes_made_on_another_thread_at_once(tmp_path):
    import threading

    store = SqliteTaskStore(tmp_path / "t.db")
    assert store.queued() == 0  # this thread's read connection now exists
    ids = []
    writer = threading.Thread(target=lambda: ids.append(store.create("/x", {})))
    writer.start()
    writer.join()
    assert store.get(ids[0]).status == "queued" and store.queued() == 1


def test_an_owners_unfinished_tasks_are_counted_until_they_end(tmp_path):
    store = SqliteTaskStore(tmp_path / "t.db")
    first, second = store.create("/x", {}, owner="a"), store.create("/x", {}, owner="a")
    store.create("/x", {}, owner="b")
    store.claim(1)
    assert store.unfinished("a") == 2
    store.finish(first, {"text": ""})
    store.delete(second)
    assert (store.unfinished("a"), store.unfinished("b")) == (0, 1)
