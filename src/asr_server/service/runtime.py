"""The running service: the store, the engine and the scheduler, wired and started in order.

The store opens first (so uploads are accepted and kept from the first moment); the model then
loads in a background thread, and the scheduler starts once it is loaded. ``/readyz`` reflects
that; ``/healthz`` only says the process is up.
"""

from __future__ import annotations

import fcntl
import logging
import shutil
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from asr_server.config import Settings
from asr_server.scheduling.scheduler import Scheduler
from asr_server.service.bodies import task_body
from asr_server.service.metrics import Metrics
from asr_server.service.model_loading import model_pool
from asr_server.service.rate_limits import RequestLimiter
from asr_server.service.task_events import TaskEvents
from asr_server.service.task_options import decoding_for, finalizer
from asr_server.service.tasks import Tasks
from asr_server.service.waiters import TaskWaiters
from asr_server.service.webhooks import Notifier
from asr_server.store.audio_store import AudioStore, LocalAudioStore
from asr_server.store.records import TaskStore
from asr_server.store.sqlite_store import SqliteTaskStore

log = logging.getLogger("asr_server.service.runtime")


class DataDirLocked(Exception):
    """Another process already serves from this data directory."""


class Service:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data_dir = Path(settings.server.data_dir).expanduser().resolve()
        self.uploads_dir = self.data_dir / "uploads"
        self.replica = settings.server.replica_name or f"{socket.gethostname()}:{settings.server.port}"
        limit_mb = settings.server.max_upload_mb
        if settings.audio_kind == "redis":
            limit_mb = min(limit_mb, settings.store.max_audio_mb)
        self.max_upload_bytes = int(limit_mb * 1_000_000)
        self.store: TaskStore | None = None
        self.scheduler: Scheduler | None = None
        self.model_pool = model_pool(settings)
        self.load_error: str | None = None
        self._lock_file: Any = None
        self._loader: threading.Thread | None = None
        self.notifier: Notifier | None = None
        self.metrics = Metrics()
        self.waiters = TaskWaiters()  # GETs waiting for their task to end (?wait=)
        self.metrics.waiting_requests.set_function(lambda: self.waiters.count)
        self.tasks = Tasks(self)  # the one task path both APIs call
        self.request_limiter = self._request_limiter()
        self._closing = threading.Event()
        self.draining = False
        self._sweeper: threading.Thread | None = None

    def _request_limiter(self) -> RequestLimiter:
        """limits.requests_per_minute (or a key's own), counted where every replica sees it
        (Redis) or here."""
        store = self.settings.store
        uri = store.redis_url if store.kind == "redis" else "memory://"
        return RequestLimiter(uri, namespace=f"{store.key_prefix}rate")

    @property
    def ready(self) -> bool:
        return (self.scheduler is not None and self.scheduler.running and not self.draining
                and self.audio_problem is None)

    def disk_full(self) -> bool:
        """The data directory's filesystem has less than ``server.min_free_disk_mb`` free."""
        minimum = self.settings.server.min_free_disk_mb * 1_000_000
        return minimum > 0 and shutil.disk_usage(self.data_dir).free < minimum

    def begin_drain(self) -> None:
        """Refuse new tasks and claim no more; see shutdown.py."""
        self.draining = True
        if self.scheduler is not None:
            self.scheduler.drain()

    def drained(self) -> bool:
        return self.scheduler is None or self.scheduler.idle

    def open(self) -> None:
        """Open the data directory and the store; queue again what a dead process left running."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.uploads_dir.mkdir(exist_ok=True)
        self._lock_file = open(self.data_dir / ".lock", "w")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataDirLocked(f"another asr-server process is using {self.data_dir}") from None
        self.store = self._open_store()
        requeued = self.store.requeue_running()
        if requeued:
            log.info("queued again %d task(s) left running by a previous process", requeued)
        self._remove_orphan_uploads()
        self._sweeper = threading.Thread(target=self._sweep, name="asr-sweep", daemon=True)
        self._sweeper.start()

    def _open_store(self) -> TaskStore:
        config = self.settings.store
        if config.kind == "redis":
            from asr_server.store.redis_store import RedisTaskStore  # the redis client only where it is used

            return RedisTaskStore(
                config.redis_url, self.replica, self.uploads_dir / "claimed",
                key_prefix=config.key_prefix, max_attempts=config.max_attempts,
                visibility_timeout_s=config.visibility_timeout_s, result_ttl_s=config.result_ttl_hours * 3600,
                audio=self._audio_store_factory(),
            )
        return SqliteTaskStore(self.data_dir / "tasks.sqlite3")

    def _audio_store_factory(self) -> Callable[[Any], AudioStore] | None:
        """How the Redis store keeps audio: None for beside the records (its default)."""
        config = self.settings.audio_store
        kind = self.settings.audio_kind
        if kind == "local":
            return lambda _redis: LocalAudioStore(Path(config.dir).expanduser())
        if kind == "s3":
            from asr_server.store.s3_audio_store import S3AudioStore  # boto3 only where it is used

            return lambda _redis: S3AudioStore(
                config.s3_bucket, endpoint_url=config.s3_endpoint_url, region=config.s3_region,
                prefix=config.s3_prefix, multipart_threshold_mb=config.s3_multipart_threshold_mb,
                expire_days=config.s3_expire_days, timeout_s=config.s3_timeout_s,
            )
        return None

    @property
    def audio_problem(self) -> str | None:
        """Why uploaded audio cannot be stored or read now (a shared audio store out of reach)."""
        audio = getattr(self.store, "audio", None)
        return None if audio is None else audio.problem()

    def _sweep(self) -> None:
        """The background sweep: expired tasks (the embedded store; Redis expires its own keys)
        and orphan uploads (a file no task refers to, untouched for twice the upload idle
        timeout: an upload that died between its last byte and its task)."""
        ttl = self.settings.store.result_ttl_hours * 3600
        interval = self.settings.server.sweep_interval_s
        if ttl:
            interval = min(interval, max(1.0, ttl / 10))
        while not self._closing.wait(interval):
            try:
                if ttl and isinstance(self.store, SqliteTaskStore):
                    removed = self.store.expire(time.time() - ttl)
                    if removed:
                        log.info("retention: removed %d finished task(s) older than %.4g h", removed, ttl / 3600)
                orphan_age_s = 2 * self.settings.server.upload_idle_timeout_s
                self._remove_orphan_uploads(older_than_s=orphan_age_s)
                remove_orphan_audio = getattr(self.store, "remove_orphan_audio", None)  # a shared store's
                if remove_orphan_audio is not None and self.audio_problem is None:
                    removed = remove_orphan_audio(older_than_s=orphan_age_s)
                    if removed:
                        log.info("removed the audio of %d ended task(s) left in the audio store", removed)
            except Exception:
                log.exception("sweep failed; retrying")

    def _remove_orphan_uploads(self, older_than_s: float | None = None) -> None:
        """At start-up (no age given) every file no task needs, spooled audio included; later,
        only top-level uploads untouched for ``older_than_s`` (one still arriving is fresh)."""
        assert self.store is not None
        live = self.store.live_audio_paths()
        paths = self.uploads_dir.rglob("*") if older_than_s is None else self.uploads_dir.iterdir()
        cutoff = time.time() - (older_than_s or 0)
        for path in paths:
            if path.is_file() and str(path) not in live and (older_than_s is None or path.stat().st_mtime < cutoff):
                path.unlink(missing_ok=True)
                if older_than_s is not None:
                    log.info("removed orphan upload %s", path.name)

    def start_engine(self) -> None:
        self._loader = threading.Thread(target=self._load_engine, name="asr-loader", daemon=True)
        self._loader.start()

    def models_status(self) -> dict[str, dict[str, Any]]:
        """Each configured model, the default first: loaded or not, and why its last load failed."""
        return self.model_pool.status()

    def _load_startup_models(self) -> None:
        """Load the models configured to load at start-up, the default first: a default that
        fails leaves the server unready; another one's failure is in its status, and its tasks
        try again."""
        for model_id, config in self.settings.all_models.items():
            if config.load != "startup":
                continue
            try:
                self.model_pool.acquire(model_id)
            except Exception:
                if model_id == self.settings.model.model_id:
                    raise
                continue
            self.model_pool.release(model_id)

    def _load_engine(self) -> None:
        try:
            self._load_startup_models()
            model = self.settings.model
            assert self.store is not None
            self.notifier = Notifier(self.settings.webhooks, self.store, self._webhook_body)
            scheduler = Scheduler(
                self.model_pool,
                TaskEvents(self.store, self.notifier, self.metrics, self.waiters, self.settings.store.max_attempts),
                self.settings.scheduler,
                self.settings.decoding,
                on_progress=self._record_progress,
                finalize=finalizer(self.settings.output, self.settings.decoding),
                options_for=decoding_for(self.settings.decoding, self.settings.output),
                on_batch=self.metrics.observe_batch,
                max_audio_seconds=self.settings.server.max_audio_seconds,
                model=model.model_id,
                speaker_cache=model.resolved_cache_dir(),
            )
            scheduler.start()
            self.scheduler = scheduler
            if hasattr(self.store, "on_lease_lost"):  # shared stores tell of tasks deleted or taken elsewhere
                self.store.on_lease_lost = scheduler.cancel
            log.info("scheduler running; models: %s", ", ".join(self.settings.all_models))
        except Exception as exc:
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.exception("the model could not be loaded")

    def _webhook_body(self, task_id: str) -> dict[str, Any] | None:
        """What a webhook for an ended task carries: its GET body; None once the task is gone."""
        assert self.store is not None
        record = self.store.get(task_id)
        return None if record is None else task_body(task_id, record, self.settings.server.expose_tracebacks)[1]

    def _record_progress(self, task_id: str, fraction: float, duration: float) -> None:
        """The store keeps a running task's progress (SQLite in memory, Redis in the task, so
        that every replica sees it); finished audio is counted for the metrics."""
        assert self.store is not None
        try:
            self.store.set_progress(task_id, fraction)
        except Exception:
            log.warning("could not record the progress of task %s", task_id, exc_info=True)
        if fraction >= 1.0:
            self.metrics.audio_seconds.inc(duration)

    def task_created(self) -> None:
        if self.scheduler is not None:
            self.scheduler.notify()

    def close(self) -> None:
        """Stop the engine, hand back what it still held, close the store."""
        self._closing.set()
        self.waiters.close()
        if self.scheduler is not None:
            # The engine stops between steps: waiting for the step under way (seconds) keeps the
            # process from tearing down under CTranslate2 mid-generate.
            self.scheduler.stop(timeout=60.0)
            if self.store is not None:
                handed_back = self.store.requeue_running()
                if handed_back:
                    log.info("handed %d unfinished task(s) back to the queue", handed_back)
        if self.notifier is not None:
            self.notifier.stop()
        if self.store is not None:
            self.store.close()
        if self._lock_file is not None:
            self._lock_file.close()
