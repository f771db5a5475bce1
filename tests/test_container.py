"""The image from the ``Containerfile``, built and run with podman: it transcribes offline, runs as
a non-root user, and a task interrupted by SIGTERM ends done after a restart on the same volume.

Run by ``make container-test`` (ASR_CONTAINER_TEST=1), not by ``make test``: building the image
takes minutes. Everything listens on loopback.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from conftest import AUDIO, free_port, submit, wait_for_task, wait_until_running
from containers import logs, missing_tools, podman, server_image, wait_ready

pytestmark = pytest.mark.skipif(not os.environ.get("ASR_CONTAINER_TEST"), reason="make container-test runs it")


@pytest.fixture(scope="session")
def image() -> str:
    if (why := missing_tools()) is not None:
        pytest.skip(why)
    return server_image()


class Container:
    """One container of the image on a loopback port, with /data on a named volume."""

    def __init__(self, image: str, volume: str, env: dict[str, str]) -> None:
        self.image, self.volume, self.env = image, volume, env
        self.name = f"asr-test-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def run(self) -> float:
        """Start it and return the seconds until /readyz answers 200."""
        env = [arg for name, value in self.env.items() for arg in ("-e", f"{name}={value}")]
        started = time.monotonic()
        podman("run", "-d", "--name", self.name, "-p", f"127.0.0.1:{self.port}:8000", "-v", f"{self.volume}:/data",
               *env, self.image)
        wait_ready(self.url, container=self.name)
        return time.monotonic() - started

    def remove(self) -> None:
        podman("rm", "-f", "-t", "0", self.name, check=False)


@pytest.fixture
def volume() -> Iterator[str]:
    name = f"asr-test-{uuid.uuid4().hex[:8]}"
    podman("volume", "create", name)
    yield name
    podman("volume", "rm", "-f", name, check=False)


def test_the_image_is_labelled_runs_as_a_non_root_user_and_starts_offline(image):
    inspected = json.loads(podman("image", "inspect", image).stdout)[0]
    config = inspected["Config"]
    assert config["User"] == "asr" and "/data" in config["Volumes"] and "8000/tcp" in config["ExposedPorts"]
    assert config["Labels"]["io.asr-server.model.licenses"] == "MIT"
    assert "readyz" in " ".join(inspected["Healthcheck"]["Test"])
    # No network at all: the model and everything it needs are in the image.
    result = podman("run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c",
                    "id -u && asr-server provision --config /etc/asr-server/config.toml && "
                    "python3 -c 'import importlib.util as u; print(u.find_spec(\"pip\"))'", timeout=120)
    uid, model, pip = result.stdout.split()
    assert uid == "10001" and model == "/opt/asr-server/models/whisper-base" and pip == "None"


def test_a_task_stopped_by_sigterm_mid_work_ends_done_after_a_restart_on_the_same_volume(image, volume):
    # No drain: SIGTERM hands the running task back to the queue at once.
    env = {"ASR_SERVER__SHUTDOWN_TIMEOUT_S": "0", "ASR_SCHEDULER__MAX_ACTIVE_TASKS": "1"}
    first = Container(image, volume, env)
    try:
        print(f"\nstart to /readyz: {first.run():.1f} s")
        assert podman("healthcheck", "run", first.name, check=False).returncode == 0
        warm = wait_for_task(first.url, submit(first.url, AUDIO / "jfk.flac").json()["task_id"])
        assert "ask not what your country" in warm.json()["result"]["text"].lower()

        ids = [submit(first.url, AUDIO / name).json()["task_id"] for name in ("multilingual.mp3", "jfk.flac")]
        wait_until_running(first.url, ids[0])
        podman("stop", "-t", "30", first.name)  # SIGTERM, SIGKILL only after 30 s
        assert podman("inspect", "--format", "{{.State.ExitCode}}", first.name).stdout.strip() == "0"
        said = logs(first.name)
        assert "draining" in said and "go back to the queue" in said, said[-3000:]
    finally:
        first.remove()

    second = Container(image, volume, {})
    try:
        print(f"restart to /readyz: {second.run():.1f} s")
        for task_id in ids:
            response = wait_for_task(second.url, task_id, timeout=300)
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "done" and response.json()["result"]["text"].strip()
        assert httpx.get(f"{second.url}/api/v1/asr/task/{warm.json()['task_id']}").json() == warm.json()
    finally:
        second.remove()
