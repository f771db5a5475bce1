"""The audio stores, each against the real thing: a directory, a Redis, an S3-compatible server."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import redis

from asr_server.store.audio_store import AudioStoreUnavailable, LocalAudioStore, RedisAudioStore
from conftest import free_port


@pytest.fixture(params=["local", "redis", "s3"])
def audio_store(request, tmp_path):
    if request.param == "local":
        yield LocalAudioStore(tmp_path / "shared")
    elif request.param == "redis":
        client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
        yield RedisAudioStore(client, request.getfixturevalue("redis_prefix"))
        client.close()
    else:
        yield request.getfixturevalue("s3_store")()


def upload(tmp_path: Path, data: bytes = b"RIFF-audio") -> Path:
    path = tmp_path / f"upload-{time.monotonic_ns()}"
    path.write_bytes(data)
    return path


def test_put_takes_the_file_and_fetch_gives_back_its_bytes(audio_store, tmp_path):
    path = upload(tmp_path, b"some audio bytes")
    audio_store.put("20261202000000000001", path)
    assert not path.exists()
    assert audio_store.fetch("20261202000000000001", tmp_path / "spooled")
    assert (tmp_path / "spooled").read_bytes() == b"some audio bytes"


def test_fetch_of_audio_never_stored_or_removed_is_false(audio_store, tmp_path):
    assert not audio_store.fetch("20261202000000000002", tmp_path / "spooled")
    audio_store.put("20261202000000000003", upload(tmp_path))
    audio_store.remove("20261202000000000003")
    assert not audio_store.fetch("20261202000000000003", tmp_path / "spooled")
    audio_store.remove("20261202000000000003")  # twice: nothing


def test_stored_lists_each_task_with_audio(audio_store, tmp_path):
    ids = {f"2026120200000000001{i}" for i in range(3)}
    for task_id in ids:
        audio_store.put(task_id, upload(tmp_path))
    assert set(audio_store.stored(older_than_s=0)) == ids
    assert audio_store.problem() is None


def test_local_store_lists_only_audio_older_than_asked(tmp_path):
    store = LocalAudioStore(tmp_path / "shared")
    store.put("20261202000000000020", upload(tmp_path))
    store.put("20261202000000000021", upload(tmp_path))
    old = time.time() - 3600
    os.utime(tmp_path / "shared" / "20261202000000000020", (old, old))
    assert list(store.stored(older_than_s=600)) == ["20261202000000000020"]


def test_s3_store_creates_its_bucket_with_a_lifecycle_rule(s3_store, object_store):
    store = s3_store(bucket="asr-test-new-bucket", prefix="audio/", expire_days=3)
    rules = object_store.client().get_bucket_lifecycle_configuration(Bucket=store.bucket)["Rules"]
    assert [(r["Filter"]["Prefix"], r["Expiration"]["Days"], r["Status"]) for r in rules] == [("audio/", 3, "Enabled")]


def test_s3_store_sends_a_large_file_in_parts(s3_store, object_store, tmp_path):
    store = s3_store(multipart_threshold_mb=5)
    data = os.urandom(12 * 1024 * 1024)
    store.put("20261202000000000030", upload(tmp_path, data))
    head = object_store.client().head_object(Bucket=store.bucket, Key=f"{store.prefix}20261202000000000030")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].strip('"').endswith("-3")  # a multipart upload of three 5 MiB parts
    assert store.fetch("20261202000000000030", tmp_path / "spooled")
    assert (tmp_path / "spooled").read_bytes() == data


def test_s3_store_out_of_reach_names_the_endpoint_and_refuses_uploads(s3_store, tmp_path):
    port = free_port()  # nothing listens on it
    store = s3_store(endpoint_url=f"http://127.0.0.1:{port}", timeout_s=1)
    assert f"127.0.0.1:{port}" in (store.problem() or "")
    with pytest.raises(AudioStoreUnavailable, match=f"127.0.0.1:{port}"):
        store.put("20261202000000000040", upload(tmp_path))


def test_s3_store_with_wrong_credentials_says_so(s3_store, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    problem = s3_store().problem() or ""
    assert "403" in problem or "Forbidden" in problem or "SignatureDoesNotMatch" in problem, problem

