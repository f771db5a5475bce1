"""Speaker labels found beside decoding: one worker thread of their own, off the engine thread.

A task that asks for them (option ``diarize``) hands its decoded audio here once it is prepared
(``preparation.prepare``'s ``beside``); the worker reads it a region at a time and finds the
turns while the engine decodes the task's windows. When decoding ends, the scheduler records
the task through ``then``: at once if the turns are known, else from the worker when they are.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from asr_server.engine.audio import Pcm
from asr_server.speakers.clustering import Hints
from asr_server.speakers.diarize import diarize
from asr_server.speakers.encoder import load_encoder


class SpeakerWork:
    def __init__(self, cv: threading.Condition, cache_dir: Path | None = None, workers: int = 1) -> None:
        self._cv = cv  # the scheduler's: ``pending`` is read under it
        self._cache_dir = cache_dir  # where provision exported the encoder (speakers.encoder)
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None  # started by the first task that asks
        self._work: dict[str, tuple[Future[Any], Pcm]] = {}

    @property
    def pending(self) -> int:
        """Tasks whose labels are being found or not yet recorded."""
        return len(self._work)

    def start(self, task_id: str, pcm: Pcm, hints: dict[str, Any]) -> None:
        """Find ``task_id``'s turns from ``pcm`` (closed when done) with the task's ``hints``."""

        def run() -> Any:
            try:
                return diarize(pcm.read, pcm.count, load_encoder(cache_dir=self._cache_dir), Hints(**hints))
            finally:
                pcm.close()

        with self._cv:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="asr-speakers")
            self._work[task_id] = (self._pool.submit(run), pcm)

    def drop(self, task_id: str) -> None:
        """The task ended without a result (cancelled, failed): its labels are not wanted."""
        with self._cv:
            work = self._work.pop(task_id, None)
            self._cv.notify_all()
        if work is not None and work[0].cancel():
            work[1].close()  # never started: its audio is closed here

    def then(self, task_id: str, record: Callable[[Future[Any] | None], None]) -> None:
        """``record(turns)`` once the task's turns are found (None: it asked for none)."""
        with self._cv:
            work = self._work.get(task_id)
        if work is None:
            record(None)
            return

        def done(future: Future[Any]) -> None:
            try:
                record(future)
            finally:
                with self._cv:
                    self._work.pop(task_id, None)
                    self._cv.notify_all()

        work[0].add_done_callback(done)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
