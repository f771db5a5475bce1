"""``compose.yaml`` brought up with podman-compose: the cluster checks of tests/test_cluster.py
through its nginx, with two replicas of the image, Redis with its append-only file and SeaweedFS;
the replica killed comes back at another address and nginx finds it (configs/nginx-compose.sh).

No registry is reachable here, so Redis, nginx and SeaweedFS run from one local stand-in image
(``tests/container/services.Containerfile``); compose.yaml gives their commands either way. Run by
``make container-test``; everything is published on loopback only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import REPO, free_port, submit
from containers import build, podman, podman_env
from test_cluster import english_clips
from test_container import image  # noqa: F401 - the fixture

pytestmark = pytest.mark.skipif(not os.environ.get("ASR_CONTAINER_TEST"), reason="make container-test runs it")
SERVICES = "localhost/asr-test-services:bookworm"
TASKS = 10
LARGEST_KEY = """local most = 0
for _, key in ipairs(redis.call('KEYS', 'asr:*')) do most = math.max(most, redis.call('MEMORY', 'USAGE', key)) end
return most"""


@pytest.fixture(scope="session")
def services(tmp_path_factory) -> str:
    if shutil.which("podman-compose") is None:
        pytest.skip("podman-compose is not installed (make container-test installs it)")
    weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    context = tmp_path_factory.mktemp("services")
    shutil.copy(weed, context / "weed")
    build(SERVICES, REPO / "tests" / "container" / "services.Containerfile", context)
    return SERVICES


class Compose:
    def __init__(self, server_image: str, services: str) -> None:
        self.project = f"asrtest{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**podman_env(), "ASR_IMAGE": server_image, "REDIS_IMAGE": services, "SEAWEEDFS_IMAGE": services,
                    "NGINX_IMAGE": services, "ASR_PUBLISH": f"127.0.0.1:{self.port}", "ASR_CPU_THREADS": "1"}

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["podman-compose", "-p", self.project, "-f", str(REPO / "compose.yaml"), *args],
                                env=self.env, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    def redis(self, *command: str) -> str:
        return podman("exec", self.container("redis"), "redis-cli", *command).stdout.strip()


@pytest.fixture
def cluster(image, services) -> Iterator[Compose]:  # noqa: F811 - the fixture
    compose = Compose(image, services)
    compose("up", "-d")
    try:
        yield compose
    finally:
        compose("down", "-v")
        podman("network", "rm", "-f", f"{compose.project}_default", check=False)  # down leaves it


def replicas_ready(url: str, timeout: float = 180) -> None:
    """Wait until nginx has had a 200 from /readyz of both replicas."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while seen != {"asr-1", "asr-2"}:
        assert time.monotonic() < deadline, f"only {seen} became ready"
        try:
            response = httpx.get(f"{url}/readyz", timeout=5)
            if response.status_code == 200:
                seen.add(response.headers["x-asr-replica"])
        except httpx.HTTPError:
            pass
        time.sleep(0.2)


def held_by_asr_1(cluster: Compose) -> list[str]:
    running = cluster.redis("ZRANGE", "asr:running", "0", "-1").split()
    return [task for task in running if cluster.redis("HGET", f"asr:task:{task}", "lease").startswith("asr-1/")]


def test_the_compose_cluster_loses_no_task_when_a_replica_is_killed(cluster):
    replicas_ready(cluster.url)
    assert cluster.redis("CONFIG", "GET", "appendonly").split() == ["appendonly", "yes"]
    ids, answered_by = [], set()
    for clip in english_clips(TASKS):
        response = submit(cluster.url, clip, language="en")
        assert response.status_code == 201, response.text
        answered_by.add(response.headers["x-asr-replica"])
        ids.append(response.json()["task_id"])
    assert answered_by == {"asr-1", "asr-2"}  # round robin spread the uploads
    assert int(cluster.redis("EVAL", LARGEST_KEY, "0")) <= 16 * 1024  # the audio waits in S3, not Redis

    deadline = time.monotonic() + 60
    while not held_by_asr_1(cluster):
        assert time.monotonic() < deadline, "asr-1 never took a task"
        time.sleep(0.1)
    podman("kill", "--signal", "KILL", cluster.container("asr-1"))
    lost = held_by_asr_1(cluster)  # read after the kill: asr-1 cannot have ended these
    assert lost, "asr-1 ended its tasks before it was killed"

    with httpx.Client(base_url=cluster.url, timeout=70) as http:
        for task_id in ids:
            deadline = time.monotonic() + 300
            while (response := http.get(f"/api/v1/asr/task/{task_id}", params={"wait": 30})).status_code == 202:
                assert time.monotonic() < deadline, f"task {task_id} never ended"
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "done" and response.json()["result"]["text"].strip()
    for task_id in lost:  # taken again after asr-1 died, and ended once
        assert cluster.redis("HGET", f"asr:task:{task_id}", "attempts") == "2"
    assert cluster.redis("ZCARD", "asr:queued") == cluster.redis("ZCARD", "asr:running") == "0"

    podman("start", cluster.container("asr-1"))  # a no-op where its restart policy has done it
    replicas_ready(cluster.url)  # it rejoins behind nginx
