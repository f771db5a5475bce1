"""The Redis task store, against a real Redis: what two replicas sharing it rely on."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from asr_server.errors import ErrorKind, Failure
from asr_server.store.redis_store import RedisTaskStore


@pytest.fixture
def open_store(tmp_path: Path, redis_url: str, redis_prefix: str):
    stores: list[RedisTaskStore] = []

    def make(replica: str = "a", **kwargs) -> RedisTaskStore:
        store = RedisTaskStore(redis_url, replica, tmp_path / replica / "spool", key_prefix=redis_prefix, **kwargs)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def upload(tmp_path: Path, data: bytes = b"RIFF-audio") -> str:
    path = tmp_path / f"upload-{time.monotonic_ns()}"
    path.write_bytes(data)
    return str(path)


def test_create_moves_the_upload_into_redis_and_get_reads_it_back(open_store, tmp_path):
    store = open_store()
    path = upload(tmp_path)
    task_id = store.create(path, {"language": "en"})
    assert not Path(path).exists()
    record = store.get(task_id)
    assert (record.status, record.options, record.attempts) == ("queued", {"language": "en"}, 0)


def test_ids_are_unique_across_replicas_and_keep_the_seed_format(open_store, tmp_path):
    a, b = open_store("a"), open_store("b")
    ids = [store.create(upload(tmp_path), {}) for _ in range(50) for store in (a, b)]
    assert len(set(ids)) == 100
    assert all(len(i) == 20 and i.isdigit() for i in ids)


def test_an_unknown_id_has_no_record(open_store):
    assert open_store().get("20990101000000000000") is None


def test_a_claim_hands_each_task_to_one_replica_with_its_audio(open_store, tmp_path):
    a, b = open_store("a"), open_store("b")
    ids = [a.create(upload(tmp_path, f"audio {i}".encode()), {"n": i}) for i in range(4)]
    first, second = a.claim(3), b.claim(3)
    assert [r.task_id for r in first] == ids[:3]
    assert [r.task_id for r in second] == ids[3:]
    assert Path(first[0].audio_path).read_bytes() == b"audio 0"
    assert a.get(ids[0]).status == "running"
    assert a.claim(5) == [] and b.claim(5) == []


def test_finishing_writes_the_result_and_removes_the_audio(open_store, tmp_path, redis_url, redis_prefix):
    store = open_store()
    task_id = store.create(upload(tmp_path), {})
    (record,) = store.claim(1)
    assert store.finish(task_id, {"text": " hi"})
    assert store.get(task_id).result == {"text": " hi"}
    assert not Path(record.audio_path).exists()
    assert redis.Redis.from_url(redis_url).exists(f"{redis_prefix}audio:{task_id}") == 0


def test_a_dead_replicas_task_is_taken_again_after_the_visibility_timeout(open_store, tmp_path):
    dead = open_store("dead", visibility_timeout_s=1)
    dead.close()  # stops renewing, as a killed process would
    alive = open_store("alive", visibility_timeout_s=1)
    task_id = alive.create(upload(tmp_path), {})
    assert [r.task_id for r in dead.claim(1)] == [task_id]
    assert alive.claim(1) == []
    time.sleep(1.2)
    (again,) = alive.claim(1)
    assert (again.task_id, again.attempts) == (task_id, 2)


def test_a_live_replica_keeps_its_lease_past_the_visibility_timeout(open_store, tmp_path):
    holder = open_store("holder", visibility_timeout_s=1)
    other = open_store("other", visibility_timeout_s=1)
    holder.create(upload(tmp_path), {})
    assert holder.claim(1)
    time.sleep(2.0)  # the heartbeat renews every third of the timeout
    assert other.claim(1) == []


def test_a_late_result_from_a_replica_that_lost_its_lease_is_discarded(open_store, tmp_path):
    slow = open_store("slow", visibility_timeout_s=1)
    slow.close()
    fast = open_store("fast", visibility_timeout_s=1)
    task_id = fast.create(upload(tmp_path), {})
    slow.claim(1)
    time.sleep(1.2)
    fast.claim(1)
    assert fast.finish(task_id, {"text": "from fast"})
    assert not slow.finish(task_id, {"text": "from slow"})
    assert fast.get(task_id).result == {"text": "from fast"}


def test_a_restarted_replica_hands_back_its_old_tasks_at_once(open_store, tmp_path):
    before = open_store("r1", visibility_timeout_s=600)
    task_id = before.create(upload(tmp_path), {})
    before.claim(1)
    before.close()
    after = open_store("r1", visibility_timeout_s=600)
    assert after.requeue_running() == 1
    assert [r.task_id for r in after.claim(1)] == [task_id]


def test_a_claim_past_max_attempts_is_leased_but_its_audio_is_not_spooled(open_store, tmp_path):
    # The service gives such a task up (test_task_events.py); its failure is written under the lease.
    store = open_store("r", max_attempts=1, visibility_timeout_s=1)
    task_id = store.create(upload(tmp_path), {})
    store.claim(1)
    store.requeue_running()
    spooled = tmp_path / "r" / "spool" / task_id
    spooled.unlink()  # as a restarted replica removes what its first claim spooled
    [again] = store.claim(1)
    assert (again.task_id, again.attempts, again.audio_path) == (task_id, 2, None)
    assert not spooled.exists()
    assert store.fail(task_id, Failure.told(ErrorKind.ABANDONED, "given up"))
    record = store.get(task_id)
    assert (record.status, record.error_kind, record.error) == ("error", ErrorKind.ABANDONED, "given up")


def test_the_owner_is_stored_with_the_task_and_lists_filter_by_it(open_store, tmp_path):
    store = open_store()
    mine, theirs = store.create(upload(tmp_path), {}, owner="a"), store.create(upload(tmp_path), {}, owner="b")
    assert store.get(mine).owner == "a"
    assert [row.task_id for row in store.list(None, None, 10, owner="b")] == [theirs]
    assert {record.owner for record in store.claim(2)} == {"a", "b"}


def test_no_task_field_is_written_that_nothing_reads(open_store, tmp_path, redis_url, redis_prefix):
    store = open_store()
    task_id = store.create(upload(tmp_path), {}, owner="a")
    store.claim(1)
    store.finish(task_id, {"text": ""})
    fields = {key.decode() for key in redis.Redis.from_url(redis_url).hkeys(f"{redis_prefix}task:{task_id}")}
    assert "updated" not in fields and fields <= {"status", "options", "owner", "result", "error", "error_kind",
                                                  "error_message", "attempts", "progress", "created", "reserved",
                                                  "delivery_attempt"}


def test_list_pages_in_id_order_and_filters_by_status(open_store, tmp_path):
    store = open_store()
    ids = [store.create(upload(tmp_path), {}) for _ in range(5)]
    store.claim(1)
    assert [t.task_id for t in store.list(None, None, 3)] == ids[:3]
    assert [t.task_id for t in store.list(None, ids[2], 10)] == ids[3:]
    assert [t.task_id for t in store.list("running", None, 10)] == ids[:1]


def test_queue_position_counts_the_queued_tasks_ahead(open_store, tmp_path):
    store = open_store()
    ids = [store.create(upload(tmp_path), {}) for _ in range(3)]
    assert [store.queue_position(i) for i in ids] == [0, 1, 2]
    assert store.queued() == 3


def test_delete_removes_the_task_and_a_running_task_cannot_be_finished_after(open_store, tmp_path):
    store = open_store()
    task_id = store.create(upload(tmp_path), {})
    store.claim(1)
    assert store.delete(task_id)
    assert store.get(task_id) is None
    assert not store.finish(task_id, {"text": "late"})
    assert store.get(task_id) is None
    assert not store.delete(task_id)


def test_finished_tasks_expire_after_the_retention_time(open_store, tmp_path, redis_url, redis_prefix):
    store = open_store(result_ttl_s=100)
    task_id = store.create(upload(tmp_path), {})
    store.claim(1)
    store.finish(task_id, {"text": ""})
    ttl = redis.Redis.from_url(redis_url).ttl(f"{redis_prefix}task:{task_id}")
    assert 0 < ttl <= 100


def test_progress_is_shared_with_every_replica_and_never_revives_a_deleted_task(open_store, tmp_path):
    a, b = open_store("a"), open_store("b")
    task_id = a.create(upload(tmp_path), {})
    a.claim(1)
    a.set_progress(task_id, 0.25)
    assert b.get(task_id).progress == 0.25
    b.delete(task_id)
    a.set_progress(task_id, 0.5)
    assert b.get(task_id) is None


def test_an_owners_unfinished_tasks_are_counted_until_they_end(open_store, tmp_path):
    store = open_store()
    first, second = (store.create(upload(tmp_path), {}, owner="a") for _ in range(2))
    store.create(upload(tmp_path), {}, owner="b")
    store.claim(1)
    assert store.unfinished("a") == 2
    store.finish(first, {"text": ""})
    store.delete(second)
    assert (store.unfinished("a"), store.unfinished("b")) == (0, 1)


def test_an_ended_tasks_delivery_is_held_in_redis_for_any_replica(open_store, tmp_path):
    store, other = open_store("a"), open_store("b")
    task_id = store.create(upload(tmp_path), {"callback_url": "http://127.0.0.1:9/hook"})
    store.claim(1)
    store.finish(task_id, {"text": ""})
    [pending] = other.take_deliveries(10, 60)
    assert (pending.task_id, pending.url, pending.attempt) == (task_id, "http://127.0.0.1:9/hook", 1)
    assert store.take_deliveries(10, 60) == [], "taken by one replica: not by another while it is made"
    other.delivery_retry(task_id, 2, 0)
    assert [d.attempt for d in store.take_deliveries(10, 60)] == [2]
    store.delivery_done(task_id)
    assert other.take_deliveries(10, 0) == []


def test_requests_per_minute_are_counted_in_redis_for_every_replica(redis_url, redis_prefix):
    from asr_server.service.rate_limits import RequestLimiter

    one, other = (RequestLimiter(redis_url, namespace=f"{redis_prefix}rate") for _ in range(2))
    assert [one.hit("key:a", 2), other.hit("key:a", 2)] == [None, None]
    assert one.hit("key:a", 2) is not None and other.hit("key:a", 2) is not None, "both replicas see both requests"
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"*{redis_prefix}rate*"):  # the limiter's keys hold the prefix inside
        client.delete(key)
