"""The running service: the store, the engine and the scheduler, wired and started in order.

The store opens first (so uploads are accepted and kept from the first moment); the model then
loads in a background thread, and the scheduler starts once it is loaded. ``/readyz`` reflects
that; ``/healthz`` only says the process is up.
"""

from __future__ import annotations

import fcntl
import logging
import threading
from pathlib import Path
from typing import Any

from .config import Settings
from .models import resolve_model
from .scheduler import Scheduler
from .store import SqliteTaskStore
from .task_bodies import task_body
from .task_options import decoding_for, finalizer
from .webhooks import Notifier

log = logging.getLogger("asr_server.service")


class DataDirLocked(Exception):
    """Another process already serves from this data directory."""


class _NotifyingSource:
    """The store as the scheduler's work source, with a webhook sent when a task ends."""

    def __init__(self, store: SqliteTaskStore, notifier: Notifier) -> None:
        self._store = store
        self._notifier = notifier
        self._callbacks: dict[str, str] = {}  # task id -> callback_url, for claimed tasks that have one

    def claim(self, limit: int) -> list[Any]:
        records = self._store.claim(limit)
        for record in records:
            if record.options.get("callback_url"):
                self._callbacks[record.task_id] = record.options["callback_url"]
        return records

    def finish(self, task_id: str, result: dict[str, Any]) -> None:
        self._store.finish(task_id, result)
        self._notify(task_id)

    def fail(self, task_id: str, error: str) -> None:
        self._store.fail(task_id, error)
        self._notify(task_id)

    def _notify(self, task_id: str) -> None:
        url = self._callbacks.pop(task_id, None)
        if url:  # only then is the stored body read back
            self._notifier.send(url, task_id, task_body(task_id, self._store.get(task_id))[1])


class Service:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data_dir = Path(settings.server.data_dir).expanduser().resolve()
        self.uploads_dir = self.data_dir / "uploads"
        self.max_upload_bytes = int(settings.server.max_upload_mb * 1_000_000)
        self.store: SqliteTaskStore | None = None
        self.scheduler: Scheduler | None = None
        self.load_error: str | None = None
        self._lock_file: Any = None
        self._loader: threading.Thread | None = None
        self.notifier: Notifier | None = None
        self._progress: dict[str, float] = {}  # task id -> fraction of its audio done (in memory)

    @property
    def ready(self) -> bool:
        return self.scheduler is not None and self.scheduler.running

    def open(self) -> None:
        """Open the data directory and the store; queue again what a dead process left running."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.uploads_dir.mkdir(exist_ok=True)
        self._lock_file = open(self.data_dir / ".lock", "w")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataDirLocked(f"another asr-server process is using {self.data_dir}") from None
        self.store = SqliteTaskStore(self.data_dir / "tasks.sqlite3", self.settings.store.max_attempts)
        requeued = self.store.requeue_running()
        if requeued:
            log.info("queued again %d task(s) left running by a previous process", requeued)
        self._remove_orphan_uploads()

    def _remove_orphan_uploads(self) -> None:
        assert self.store is not None
        live = self.store.live_audio_paths()
        for path in self.uploads_dir.iterdir():
            if str(path) not in live:
                path.unlink(missing_ok=True)

    def start_engine(self) -> None:
        self._loader = threading.Thread(target=self._load_engine, name="asr-loader", daemon=True)
        self._loader.start()

    def _load_engine(self) -> None:
        from .engine import WhisperEngine  # heavy import, off the start-up path

        try:
            model = self.settings.model
            model_dir = resolve_model(model.name, model.resolved_cache_dir())
            engine = WhisperEngine(model_dir, model)
            assert self.store is not None
            self.notifier = Notifier(self.settings.webhooks)
            scheduler = Scheduler(
                engine,
                _NotifyingSource(self.store, self.notifier),
                self.settings.scheduler,
                self.settings.decoding,
                detect_on_window=self.settings.scheduler.detect_on_window,
                on_progress=self._record_progress,
                finalize=finalizer(self.settings.output),
                options_for=decoding_for(self.settings.decoding, self.settings.output),
            )
            scheduler.start()
            self.scheduler = scheduler
            log.info("model %s loaded from %s; scheduler running", model.name, model_dir)
        except Exception as exc:
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.exception("the model could not be loaded")

    def _record_progress(self, task_id: str, fraction: float, duration: float) -> None:
        self._progress[task_id] = fraction
        if fraction >= 1.0:
            self._progress.pop(task_id, None)

    def progress(self, task_id: str) -> float:
        """How much of a task's audio is transcribed, 0..1 (0 until its first window is done)."""
        return round(self._progress.get(task_id, 0.0), 3)

    def task_created(self) -> None:
        if self.scheduler is not None:
            self.scheduler.notify()

    def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.notifier is not None:
            self.notifier.stop()
        if self.store is not None:
            self.store.close()
        if self._lock_file is not None:
            self._lock_file.close()
