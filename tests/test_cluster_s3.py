"""Two replicas on ``configs/cluster-s3.toml`` behind nginx: Redis holds records, the object
store holds the audio, and a replica killed with -9 loses nothing.

Everything is real and on loopback: Redis, SeaweedFS's S3 server on 127.0.0.1:8333 (the file's
own address), nginx running ``configs/nginx.conf``, and the servers with the bundled model.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from conftest import ServerProcess, free_port, submit
from object_store import CREDENTIALS
from test_cluster import Nginx, english_clips, held_by

TASKS = 10
BUCKET = "asr-audio"  # configs/cluster-s3.toml's


@pytest.fixture
def s3_cluster(tmp_path: Path, redis_url: str, redis_prefix: str, object_store) -> Iterator:
    audio_prefix = f"test-{uuid.uuid4().hex[:10]}/"
    env = {
        **CREDENTIALS,
        "ASR_STORE__REDIS_URL": redis_url,
        "ASR_STORE__KEY_PREFIX": redis_prefix,
        "ASR_STORE__VISIBILITY_TIMEOUT_S": "3",
        "ASR_AUDIO_STORE__S3_PREFIX": audio_prefix,
        "ASR_SCHEDULER__MAX_ACTIVE_TASKS": "2",  # leave work in the shared queue for the other
        "ASR_SCHEDULER__POLL_INTERVAL_MS": "100",
        "ASR_MODEL__CPU_THREADS": "1",  # two engines on two cores
    }
    replicas = [
        ServerProcess(tmp_path / f"data-r{i}", extra_env={**env, "ASR_SERVER__REPLICA_NAME": f"r{i}"},
                      args=["--config", "configs/cluster-s3.toml"])
        for i in (1, 2)
    ]
    for replica in replicas:
        replica.start()
    nginx = Nginx(tmp_path, [r.port for r in replicas]).start()
    yield nginx, replicas, audio_prefix
    nginx.stop()
    for replica in replicas:
        replica.stop()


def objects(object_store, prefix: str) -> set[str]:
    listing = object_store.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return {item["Key"][len(prefix):] for item in listing.get("Contents", [])}


def test_audio_waits_in_the_bucket_and_tasks_survive_a_replica_killed_mid_work(
    s3_cluster, object_store, redis_url, redis_prefix
):
    nginx, (r1, r2), audio_prefix = s3_cluster
    client = redis.Redis.from_url(redis_url)
    ids = []
    for clip in english_clips(TASKS):
        response = submit(nginx.url, clip, language="en")
        assert response.status_code == 201, response.text
        ids.append(response.json()["task_id"])

    waiting = {raw.decode() for raw in client.zrange(f"{redis_prefix}queued", 0, -1)}
    assert waiting, "every task ended before it could be looked at"
    assert waiting <= objects(object_store, audio_prefix)  # the waiting tasks' audio is in the bucket
    sizes = {key.decode(): client.memory_usage(key) for key in client.scan_iter(f"{redis_prefix}*")}
    assert max(sizes.values()) <= 16 * 1024, sizes  # Redis holds records, not audio

    deadline = time.monotonic() + 60
    while not (lost := held_by(redis_url, redis_prefix, "r1")):
        assert time.monotonic() < deadline, "r1 never took a task"
        time.sleep(0.05)
    r1.kill()

    with httpx.Client(base_url=nginx.url, timeout=70) as http:
        for task_id in ids:
            deadline = time.monotonic() + 240
            while (response := http.get(f"/api/v1/asr/task/{task_id}", params={"wait": 30})).status_code == 202:
                assert time.monotonic() < deadline, f"task {task_id} never ended"
            assert response.status_code == 200, response.text
            assert response.json()["result"]["text"].strip()
    for task_id in lost:  # r1's tasks were taken again by r2, their audio read again from the bucket
        assert int(client.hget(f"{redis_prefix}task:{task_id}", "attempts")) == 2
    assert objects(object_store, audio_prefix) == set()  # no audio left once every task ended


def test_a_replica_that_cannot_reach_the_object_store_says_so_and_refuses_uploads(
    server_factory, redis_url, redis_prefix, tmp_path
):
    port = free_port()  # nothing listens on it
    replica = server_factory(args=["--config", "configs/cluster-s3.toml"], extra_env={
        **CREDENTIALS, "ASR_STORE__REDIS_URL": redis_url, "ASR_STORE__KEY_PREFIX": redis_prefix,
        "ASR_AUDIO_STORE__S3_ENDPOINT_URL": f"http://127.0.0.1:{port}", "ASR_AUDIO_STORE__S3_TIMEOUT_S": "1",
    }).start(wait_ready=False)
    ready = httpx.get(f"{replica.url}/readyz", timeout=10)
    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable" and f"127.0.0.1:{port}" in ready.json()["error"]
    response = submit(replica.url, english_clips(1)[0])
    assert response.status_code == 503 and "Retry-After" in response.headers
    assert response.json() == {"error": "The audio store cannot be reached; retry"}
    assert f"127.0.0.1:{port}" in replica.log_path.read_text()  # said at start-up too
