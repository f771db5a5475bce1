"""Shared fixtures: the real model, the shared speech clips, and real server processes.

Every test that loads the model, starts a process (a server, Redis, nginx, a browser, the CLI)
or runs the real scheduler is marked ``slow`` here, from the fixtures it uses and the helpers
it calls; ``pytest -m "not slow"`` is the fast lane of unit tests.
"""

from __future__ import annotations

import inspect
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import wave
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from asr_server.scheduling.memory_source import Job, ListSource  # tests import them from here too

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
AUDIO = SHARED / "audio"
EVAL = SHARED / "eval"
JFK_TEXT = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
# A prompt that changes what Whisper writes for hotwords.mp3 ("confu i" without it), so that a
# prompt lost on the way shows in the text.
PROMPT_CLIP = AUDIO / "hotwords.mp3"
PROMPT = "ComfyUI, Blender"


def write_wav(path: Path, samples: np.ndarray) -> Path:
    """``samples`` (floats in -1..1, 16 kHz mono) as a 16-bit WAV file at ``path``."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes())
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def audio_dir() -> Path:
    if not AUDIO.is_dir():
        pytest.fail(f"the shared speech clips are missing: {AUDIO}")
    return AUDIO


@pytest.fixture(scope="session")
def hf_tokenizer():
    """The bundled model's tokenizer alone (no model loaded), for scripted engines."""
    import tokenizers

    from asr_server.config import ModelConfig
    from asr_server.engine.models import resolve_model

    config = ModelConfig()
    model_dir = resolve_model(config.name, config.resolved_cache_dir())
    return tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))


@pytest.fixture(scope="session")
def engine():
    from asr_server.config import ModelConfig
    from asr_server.engine.models import resolve_model
    from asr_server.engine.whisper_engine import WhisperEngine

    config = ModelConfig()
    return WhisperEngine(resolve_model(config.name, config.resolved_cache_dir()), config)


@pytest.fixture(scope="session")
def prompted_reference(engine) -> dict[str, str]:
    """faster-whisper's own text of PROMPT_CLIP with PROMPT and no language, per task."""
    out = {}
    for task in ("transcribe", "translate"):
        segments, _ = engine.whisper_model.transcribe(str(PROMPT_CLIP), initial_prompt=PROMPT, task=task)
        out[task] = "".join(segment.text for segment in segments)
    assert "ComfyUI" in out["transcribe"]
    return out


class ServerProcess:
    """``asr-server serve`` in a child process, on a free loopback port."""

    def __init__(self, data_dir: Path, extra_env: dict[str, str] | None = None, args: list[str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Stopping a test server should not wait out a drain; tests of shutdown set their own.
        self.extra_env = {"ASR_SERVER__SHUTDOWN_TIMEOUT_S": "0", **(extra_env or {})}
        self.args = args or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"server-{self.port}.log"

    def start(self, wait_ready: bool = True) -> ServerProcess:
        env = {**os.environ, **self.extra_env}
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "asr_server", "serve", "--port", str(self.port),
             "--data-dir", str(self.data_dir), *self.args],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO,
        )
        self.wait("/readyz" if wait_ready else "/healthz")
        return self

    def wait(self, path: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
            try:
                if httpx.get(self.url + path, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{path} not 200 within {timeout} s:\n{self.log_path.read_text()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator:
    started: list[ServerProcess] = []

    def make(data_dir: Path | None = None, **kwargs) -> ServerProcess:
        server = ServerProcess(data_dir or tmp_path / "data", **kwargs)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


def serving(data_dir: Path, env: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    """A ready server on ``data_dir`` for a fixture to ``yield from``; stopped at teardown."""
    process = ServerProcess(data_dir, extra_env=env).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One ready server shared by a module's tests."""
    yield from serving(tmp_path_factory.mktemp("server") / "data")


def wait_for_task(url: str, task_id: str, timeout: float = 120,
                  headers: dict[str, str] | None = None) -> httpx.Response:
    """Poll a task until it is no longer processing; return the last response."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = httpx.get(f"{url}/api/v1/asr/task/{task_id}", timeout=10, headers=headers)
        if response.status_code != 202:
            return response
        time.sleep(0.1)
    raise TimeoutError(f"task {task_id} still processing after {timeout} s")


def wait_until_running(url: str, task_id: str, timeout: float = 60) -> None:
    """Wait until the scheduler has claimed a task (the task list says it is running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = httpx.get(f"{url}/api/v1/asr/tasks", params={"status": "running"}, timeout=10).json()["tasks"]
        if any(task["task_id"] == task_id for task in listed):
            return
        time.sleep(0.05)
    raise TimeoutError(f"task {task_id} was never claimed")


def submit(url: str, path: Path, field: str = "file", **data: str) -> httpx.Response:
    with open(path, "rb") as handle:
        return httpx.post(f"{url}/api/v1/asr/task", files={field: (path.name, handle)}, data=data, timeout=60)


def _catching(run, failures: list[BaseException]) -> None:
    try:
        run()
    except BaseException as exc:
        failures.append(exc)


def run_jobs(engine, jobs: list[Job], config, options):
    """Run jobs through a real Scheduler until all end, on one thread (``run_until_idle``: every
    job prepared before the first step, so the batches depend on the jobs alone); returns
    (source, scheduler). No errors allowed."""
    from asr_server.scheduling.scheduler import Scheduler

    source = ListSource(jobs)
    scheduler = Scheduler(engine, source, config, options)
    # On a thread of its own that ends, as the server's engine thread: CTranslate2's OpenMP
    # workers stay with the thread that calls it (docs/decisions.md, a passing thread).
    failures: list[BaseException] = []
    worker = threading.Thread(target=lambda: _catching(scheduler.run_until_idle, failures), name="asr-engine")
    worker.start()
    worker.join()
    assert not failures, failures
    assert source.done.is_set(), "a job was left undone"
    assert not source.errors, source.errors
    return source, scheduler


def _redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis: the machine's own on 127.0.0.1:6379 when it answers, else a ``redis-server``
    started here on a free port (``make test`` installs Debian's package when it is absent)."""
    if _redis_answers("redis://127.0.0.1:6379/0"):
        yield "redis://127.0.0.1:6379/0"
        return
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 20
    while not _redis_answers(url):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("redis-server did not start")
        time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are removed afterwards."""
    import uuid

    import redis

    prefix = f"asr-test-{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)


@pytest.fixture(scope="session")
def object_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """A real S3-compatible store on 127.0.0.1:8333 (tests/object_store.py)."""
    from object_store import SeaweedS3

    store = SeaweedS3(tmp_path_factory.mktemp("s3")).start()
    yield store
    store.stop()


@pytest.fixture
def aws_credentials(monkeypatch):
    """The object store's keys, where boto3 looks for them: the environment."""
    from object_store import CREDENTIALS

    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def s3_store(object_store, aws_credentials):
    """Makes S3 audio stores on the object store: one bucket, a prefix of their own."""
    stores = []

    def make(**kwargs):
        from asr_server.store.s3_audio_store import S3AudioStore

        kwargs.setdefault("endpoint_url", object_store.url)
        kwargs.setdefault("prefix", f"test-{uuid.uuid4().hex[:10]}/")
        store = S3AudioStore(kwargs.pop("bucket", "asr-test-audio"), **kwargs)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


# Fixtures that load the model or start a process, and calls that do the same from a test body.
SLOW_FIXTURES = {"engine", "server", "server_factory", "redis_url", "object_store"}
SLOW_CALLS = re.compile(r"\bsubprocess\.|\b(ServerProcess|serving|run_jobs|sync_playwright|Popen|main)\(")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: loads the model or starts a process (not in the fast lane)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        functions = [getattr(item, "function", None)]
        info = getattr(item, "_fixtureinfo", None)
        for defs in (info.name2fixturedefs.values() if info is not None else ()):
            functions.extend(definition.func for definition in defs)
        if SLOW_FIXTURES & names or any(_starts_something(f) for f in functions if f is not None):
            item.add_marker(pytest.mark.slow)


def _starts_something(function, seen: set | None = None) -> bool:
    """Whether a test or fixture, or a helper of its own module that it calls, makes a slow call."""
    seen = set() if seen is None else seen
    if function in seen or inspect.getsourcefile(function) == __file__:
        return False
    seen.add(function)
    source = inspect.getsource(function)
    if SLOW_CALLS.search(source):
        return True
    module = inspect.getmodule(function)
    helpers = (getattr(module, name, None) for name in set(re.findall(r"\b([a-z_]\w*)\(", source)))
    return any(_starts_something(helper, seen) for helper in helpers
               if inspect.isfunction(helper) and helper.__module__ == function.__module__)
