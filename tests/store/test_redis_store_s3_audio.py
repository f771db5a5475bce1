"""The Redis task store with its audio in S3: Redis keeps records only, the bucket keeps no audio
past its task."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from asr_server.errors import ErrorKind, Failure
from asr_server.store.redis_store import RedisTaskStore


@pytest.fixture
def store(tmp_path: Path, redis_url: str, redis_prefix: str, s3_store):
    audio = s3_store()
    opened = RedisTaskStore(redis_url, "a", tmp_path / "spool", key_prefix=redis_prefix, audio=lambda _: audio)
    yield opened
    opened.close()


def upload(tmp_path: Path, data: bytes = b"RIFF-audio") -> str:
    path = tmp_path / f"upload-{time.monotonic_ns()}"
    path.write_bytes(data)
    return str(path)


def test_an_upload_goes_to_the_bucket_and_redis_holds_no_audio(store, tmp_path, redis_url, redis_prefix):
    task_id = store.create(upload(tmp_path), {"language": "en"})
    assert list(store.audio.stored(older_than_s=0)) == [task_id]
    assert not list(redis.Redis.from_url(redis_url).scan_iter(f"{redis_prefix}audio:*"))


def test_a_claim_spools_the_audio_from_the_bucket(store, tmp_path):
    task_id = store.create(upload(tmp_path, b"bytes of speech"), {})
    (record,) = store.claim(1)
    assert record.task_id == task_id and Path(record.audio_path).read_bytes() == b"bytes of speech"


def test_the_audio_is_removed_when_the_task_ends(store, tmp_path):
    done, failed = store.create(upload(tmp_path), {}), store.create(upload(tmp_path), {})
    store.claim(2)
    assert store.finish(done, {"text": "hi"})
    assert store.fail(failed, Failure.told(ErrorKind.INTERNAL, "boom"))
    assert list(store.audio.stored(older_than_s=0)) == []


def test_the_audio_is_removed_when_the_task_is_deleted(store, tmp_path):
    task_id = store.create(upload(tmp_path), {})
    assert store.delete(task_id)
    assert list(store.audio.stored(older_than_s=0)) == []


def test_the_sweep_removes_audio_no_waiting_task_needs_and_keeps_the_rest(store, tmp_path):
    waiting = store.create(upload(tmp_path), {})
    ended = store.create(upload(tmp_path), {})
    store.claim(2)
    store.audio.remove = lambda task_id: None  # the replica dies before it removes the audio
    store.finish(ended, {"text": "hi"})
    del store.audio.remove
    store.audio.put("20000101000000000000", Path(upload(tmp_path)))  # a task that no longer exists
    assert store.remove_orphan_audio(older_than_s=0) == 2
    assert list(store.audio.stored(older_than_s=0)) == [waiting]


def test_the_sweep_keeps_the_audio_of_an_upload_still_writing_its_task(store, tmp_path):
    task_id = store._reserve_id()  # create() between storing the audio and writing the record
    store.audio.put(task_id, Path(upload(tmp_path)))
    assert store.remove_orphan_audio(older_than_s=0) == 0
    assert list(store.audio.stored(older_than_s=0)) == [task_id]
