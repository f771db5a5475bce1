"""Two replicas sharing a real Redis behind a real nginx: a replica killed with -9 loses nothing.

nginx runs ``configs/nginx.conf``, the file the README gives, with its ports and paths replaced.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from conftest import EVAL, REPO, ServerProcess, free_port, submit

TASKS = 20


def english_clips(count: int) -> list[Path]:
    rows = [json.loads(line) for line in (EVAL / "manifest.jsonl").read_text().splitlines()]
    clips = [EVAL / r["file"] for r in rows if r["lang"] == "en" and 4 <= r["duration_s"] <= 15]
    assert len(clips) >= count
    return clips[:count]


class Nginx:
    def __init__(self, workdir: Path, upstreams: list[int]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        text = (REPO / "configs" / "nginx.conf").read_text()
        text = text.replace("/tmp/asr-nginx", str(workdir / "nginx"))
        text = text.replace("listen 127.0.0.1:8000;", f"listen 127.0.0.1:{self.port};")
        text = text.replace("127.0.0.1:8001", f"127.0.0.1:{upstreams[0]}")
        text = text.replace("127.0.0.1:8002", f"127.0.0.1:{upstreams[1]}")
        self.conf = workdir / "nginx.conf"
        self.conf.write_text(text)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Nginx:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen([nginx, "-c", str(self.conf), "-g", "daemon off;"])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/healthz", timeout=2)
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise TimeoutError("nginx did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def cluster(tmp_path: Path, redis_url: str, redis_prefix: str) -> Iterator[tuple[Nginx, list[ServerProcess]]]:
    env = {
        "ASR_STORE__KIND": "redis",
        "ASR_STORE__REDIS_URL": redis_url,
        "ASR_STORE__KEY_PREFIX": redis_prefix,
        "ASR_STORE__VISIBILITY_TIMEOUT_S": "3",
        "ASR_SCHEDULER__MAX_ACTIVE_TASKS": "4",  # leave work in the shared queue for the other
        "ASR_SCHEDULER__POLL_INTERVAL_MS": "100",
        "ASR_MODEL__CPU_THREADS": "1",  # two engines on two cores
    }
    replicas = [
        ServerProcess(tmp_path / f"data-r{i}", extra_env={**env, "ASR_SERVER__REPLICA_NAME": f"r{i}"})
        for i in (1, 2)
    ]
    for replica in replicas:
        replica.start()
    nginx = Nginx(tmp_path, [r.port for r in replicas]).start()
    yield nginx, replicas
    nginx.stop()
    for replica in replicas:
        replica.stop()


def held_by(redis_url: str, prefix: str, replica: str) -> list[str]:
    """Ids of the tasks whose lease this replica holds, read from Redis itself."""
    client = redis.Redis.from_url(redis_url)
    held = []
    for raw in client.zrange(f"{prefix}running", 0, -1):
        lease = client.hget(f"{prefix}task:{raw.decode()}", "lease")
        if lease and lease.decode().startswith(f"{replica}/"):
            held.append(raw.decode())
    return held


def test_tasks_survive_a_replica_killed_mid_work_and_every_answer_comes_through_nginx(
    cluster, redis_url, redis_prefix
):
    nginx, (r1, r2) = cluster
    clips = english_clips(TASKS)
    answered_by = set()
    ids = []
    for clip in clips:
        response = submit(nginx.url, clip, language="en")
        assert response.status_code == 201, response.text
        answered_by.add(response.headers["x-asr-replica"])
        ids.append(response.json()["task_id"])
    assert answered_by == {"r1", "r2"}  # round robin spread the uploads

    deadline = time.monotonic() + 60
    while not (lost := held_by(redis_url, redis_prefix, "r1")):
        assert time.monotonic() < deadline, "r1 never took a task"
        time.sleep(0.05)
    r1.kill()

    results = {}
    deadline = time.monotonic() + 240
    while len(results) < TASKS:
        assert time.monotonic() < deadline, f"only {len(results)} of {TASKS} tasks ended"
        for task_id in ids:
            if task_id in results:
                continue
            response = httpx.get(f"{nginx.url}/api/v1/asr/task/{task_id}", timeout=10)
            assert response.headers["x-asr-replica"] == "r2"  # the survivor answers every GET
            if response.status_code != 202:
                results[task_id] = response
        time.sleep(0.2)

    for response in results.values():
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "done" and body["result"]["text"].strip(), body
    client = redis.Redis.from_url(redis_url)
    for task_id in lost:  # r1's tasks were taken again by r2 and ended once, from a second attempt
        assert int(client.hget(f"{redis_prefix}task:{task_id}", "attempts")) == 2
    assert client.zcard(f"{redis_prefix}running") == 0 and client.zcard(f"{redis_prefix}queued") == 0
    assert not list(client.scan_iter(f"{redis_prefix}audio:*"))  # audio removed as tasks ended

    r1.start()  # same name, same data dir: it rejoins
    seen = set()
    deadline = time.monotonic() + 30
    while seen != {"r1", "r2"}:
        assert time.monotonic() < deadline, f"after the restart only {seen} answered"
        response = httpx.get(f"{nginx.url}/api/v1/asr/task/{ids[0]}", timeout=10)
        assert response.status_code == 200 and response.json() == results[ids[0]].json()
        seen.add(response.headers["x-asr-replica"])
        time.sleep(0.1)


def test_a_task_uploaded_to_one_replica_is_answered_alike_by_the_other(cluster):
    _, (r1, r2) = cluster
    clip = english_clips(1)[0]
    task_id = submit(r1.url, clip, language="en").json()["task_id"]
    deadline = time.monotonic() + 120
    while (first := httpx.get(f"{r1.url}/api/v1/asr/task/{task_id}", timeout=10)).status_code == 202:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    second = httpx.get(f"{r2.url}/api/v1/asr/task/{task_id}", timeout=10)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert re.fullmatch(r"\d{20}", task_id)


def test_audio_over_the_redis_cap_gets_413_and_nothing_is_kept(server_factory, redis_url, redis_prefix):
    replica = server_factory(extra_env={
        "ASR_STORE__KIND": "redis", "ASR_STORE__REDIS_URL": redis_url, "ASR_STORE__KEY_PREFIX": redis_prefix,
        "ASR_STORE__MAX_AUDIO_MB": "1",
    }).start(wait_ready=False)
    response = submit(replica.url, EVAL / "en_jfk_inaugural.flac")  # 1.15 MB
    assert response.status_code == 413
    assert response.json() == {"error": "Upload too large: the limit is 1 MB"}
    assert list(redis.Redis.from_url(redis_url).scan_iter(f"{redis_prefix}*")) == []
