"""The engine loop: it claims work, prepares it, and executes the batching policy's plans.

It knows tasks only through ``WorkSource`` (claim / finish / fail). Claimed tasks are prepared
(audio decoded with PyAV, log-mel features computed) in worker threads; each prepared task
becomes a ``Transcription`` that offers its next window. Each step the loop gathers the offered
windows (a short recording's trimmed to its own length, ``Window.encoder_frames``), asks
``policy.BatchPolicy`` what to do with them, and runs that batch through the engine, holds back
for company, or waits for work. What to batch, and when to wait, is the policy's alone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol


from asr_server.scheduling.policy import BatchPolicy, Hold, Idle
from asr_server.scheduling.preparation import prepare
from asr_server.config import DecodingOptions, SchedulerConfig, apply_decoding
from asr_server.errors import Failure
from asr_server.whisper.chunking import ChunkedTranscription
from asr_server.whisper.batch_decoding import decode_windows
from asr_server.whisper.transcription import Transcription, Window
from asr_server.whisper.units import Engine

log = logging.getLogger("asr_server.scheduling.scheduler")


class Job(Protocol):
    task_id: str
    audio_path: str | None
    options: dict[str, Any]


class WorkSource(Protocol):
    """The scheduler's view of the task store."""

    def claim(self, limit: int) -> list[Job]: ...
    def finish(self, task_id: str, result: dict[str, Any]) -> None: ...
    def fail(self, task_id: str, failure: Failure) -> None: ...


@dataclass
class _Active:
    task_id: str
    transcription: Transcription | ChunkedTranscription
    options: dict[str, Any]


ProgressHook = Callable[[str, float, float], None]
Finalize = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]  # (result, task options) -> result


class Scheduler:
    def __init__(
        self,
        engine: Engine,
        source: WorkSource,
        config: SchedulerConfig,
        defaults: DecodingOptions,
        on_progress: ProgressHook | None = None,
        finalize: Finalize | None = None,
        options_for: Callable[[dict[str, Any]], DecodingOptions] | None = None,
        on_batch: Callable[[int, float], None] | None = None,
        max_audio_seconds: float = 0,
    ) -> None:
        self._max_audio_seconds = max_audio_seconds  # 0: no limit
        self._engine = engine
        self._trim_margin_frames = (round(config.trim_margin_s / engine.seconds_per_frame)
                                    if config.trim_short_clips else None)
        # Detection on a trimmed encoding needs the window's own encoding to detect on.
        self._trim_detection_below = (config.trim_detection_below
                                      if config.detect_on_window and config.trim_detection_below < 1 else None)
        self._on_batch = on_batch  # (windows, seconds) after each engine step, for metrics
        self._source = source
        self._config = config
        self._on_progress = on_progress
        self._finalize = finalize
        # A task's decoding options: the service's rule, or the defaults with its overrides.
        self._options_for = options_for or (lambda options: apply_decoding(defaults, options))
        self._cv = threading.Condition()
        self._prepared: deque[_Active] = deque()
        self._active: list[_Active] = []
        self._stopping = False
        self._cancelled: set[str] = set()  # tasks to drop at the next step (see cancel)
        self._preparing: set[str] = set()  # ids of the tasks being prepared
        self._draining = False
        self._wake = False
        self._thread: threading.Thread | None = None
        self._policy = BatchPolicy(config.max_batch_size, config.max_wait_ms / 1000)
        self._pool = ThreadPoolExecutor(config.prepare_workers, thread_name_prefix="asr-prepare")
        self.batch_sizes: Counter[int] = Counter()
        self.windows_decoded = 0
        self.windows_trimmed = 0  # of those, encoded over their own length (Window.encoder_frames)
        self.windows_retried_whole = 0  # of those, decoded on a whole encoding after all (decode_windows)
        self.audio_seconds_done = 0.0
        self.engine_seconds = 0.0  # time spent in decode_windows: how busy the engine is

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="asr-engine", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    def notify(self) -> None:
        """Tell the loop that new work may be waiting in the source."""
        with self._cv:
            self._wake = True
            self._cv.notify_all()

    def cancel(self, task_id: str) -> None:
        """Stop a task's work (it was deleted): its windows leave the engine at the next step,
        its audio and features are freed, and nothing is recorded for it. A task this scheduler
        does not hold is ignored; one still being prepared is dropped when it is ready."""
        with self._cv:
            self._cancelled.add(task_id)
            self._cv.notify_all()

    def drain(self) -> None:
        """Claim nothing more; the tasks already held run to their end."""
        with self._cv:
            self._draining = True

    @property
    def idle(self) -> bool:
        """Nothing held: no task being prepared, waiting or decoded."""
        with self._cv:
            return not self._active and not self._prepared and not self._preparing

    def stop(self, timeout: float = 10.0) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        # Preparations not started are dropped; those under way end before the source closes.
        self._pool.shutdown(wait=True, cancel_futures=True)

    def stats(self) -> dict[str, Any]:
        """Counters for operators and benchmarks: load now, and batch sizes so far."""
        with self._cv:  # the engine thread updates these counters under the same lock
            return {
                "active_tasks": len(self._active) + len(self._prepared),
                "preparing_tasks": len(self._preparing),
                "windows_decoded": self.windows_decoded,
                "windows_trimmed": self.windows_trimmed,
                "windows_retried_whole": self.windows_retried_whole,
                "audio_seconds_done": round(self.audio_seconds_done, 3),
                "batch_sizes": {str(size): count for size, count in sorted(self.batch_sizes.items())},
                "engine_seconds": round(self.engine_seconds, 3),
            }

    # -- preparation (worker threads) ------------------------------------------------------

    def _intake(self) -> None:
        with self._cv:
            if self._draining:
                return
            room = self._config.max_active_tasks - len(self._active) - len(self._prepared) - len(self._preparing)
            self._wake = False
        if room <= 0:
            return
        jobs = self._source.claim(room)
        if not jobs:
            return
        with self._cv:
            self._preparing.update(job.task_id for job in jobs)
        for job in jobs:
            self._pool.submit(self._prepare, job)

    def _prepare(self, job: Job) -> None:
        prepared: _Active | None = None
        try:
            options = job.options or {}
            # A task may ask for faster-whisper's exact computation (form field pack=false):
            # then its window is encoded whole, never trimmed.
            margin = self._trim_margin_frames if options.get("pack", True) else None
            transcription = prepare(job.audio_path, self._options_for(options), self._engine, margin,
                                    self._max_audio_seconds, self._trim_detection_below)
            prepared = _Active(job.task_id, transcription, options)
        except Exception as exc:
            log.warning("task %s failed in preparation", job.task_id, exc_info=True, extra={"task_id": job.task_id})
            self._fail(job.task_id, Failure.of(exc))
        finally:
            with self._cv:
                self._preparing.discard(job.task_id)
                if job.task_id in self._cancelled:
                    self._cancelled.discard(job.task_id)
                elif prepared is not None:
                    self._prepared.append(prepared)
                self._cv.notify_all()

    # -- the engine loop ---------------------------------------------------------------------

    def _run(self) -> None:
        poll = self._config.poll_interval_ms / 1000
        while True:
            with self._cv:
                if self._stopping:
                    return
            try:
                self._intake()
            except Exception:
                log.exception("claiming work failed; retrying")
            self._admit()
            self._finish_completed()
            windows = self._offered_windows()
            with self._cv:
                preparing = len(self._preparing)
            plan = self._policy.schedule(windows, preparing, time.monotonic())
            if isinstance(plan, Idle):
                with self._cv:
                    if not self._stopping and not self._wake and not self._prepared:
                        self._cv.wait(poll)
            elif isinstance(plan, Hold):
                self._hold(plan.until)  # then plan again, with whatever arrived
            else:
                self._step(plan.batch)

    def _admit(self) -> None:
        with self._cv:
            while self._prepared:
                self._active.append(self._prepared.popleft())
            cancelled = [a for a in self._active if a.task_id in self._cancelled]
            for active in cancelled:
                self._active.remove(active)
            self._cancelled &= self._preparing  # only those still to arrive keep their mark
        for active in cancelled:
            self._release(active)
            log.info("task cancelled: its windows leave the engine", extra={"task_id": active.task_id})

    def _offered_windows(self) -> list[Window]:
        """Each active task's next window, oldest task first."""
        return [window for active in self._active for window in active.transcription.windows()]

    def _hold(self, until: float) -> None:
        """Wait until a prepared task arrives, none is being prepared any more, or ``until``."""
        with self._cv:
            while self._preparing and not self._prepared and not self._stopping:
                left = until - time.monotonic()
                if left <= 0:
                    return
                self._cv.wait(left)

    def _step(self, batch: list[Window]) -> None:
        self._policy.stepped()
        by_part = {id(part): a for a in self._active for part in a.transcription.parts}
        started = time.perf_counter()
        try:
            outcomes = decode_windows(self._engine, batch, self._config.detect_on_window)
        except Exception as exc:
            log.exception("a batch of %d windows failed", len(batch))
            error = Failure.of(exc)
            for active in {id(a): a for a in (by_part[id(w.owner)] for w in batch)}.values():
                self._drop(active, error)
            return
        elapsed = time.perf_counter() - started
        with self._cv:
            self.batch_sizes[len(batch)] += 1
            self.windows_decoded += len(batch)
            self.windows_trimmed += sum(w.encoder_frames is not None for w in batch)
            self.windows_retried_whole += sum(w.encoder_frames is not None and not o.trimmed
                                              for w, o in zip(batch, outcomes))
            self.engine_seconds += elapsed
        if self._on_batch is not None:
            self._on_batch(len(batch), elapsed)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("decoded %d windows in %.2f s; %d tasks active, %d being prepared",
                      len(batch), elapsed, len(self._active), len(self._preparing))
        for window, outcome in zip(batch, outcomes):
            active = by_part[id(window.owner)]
            if active not in self._active:
                continue  # another window of the task failed in this step
            t = active.transcription
            done_before = t.seconds_done
            try:
                window.complete(outcome)
            except Exception as exc:
                self._drop(active, Failure.of(exc))
                continue
            with self._cv:
                self.audio_seconds_done += t.seconds_done - done_before
            if self._on_progress is not None and t.seconds_done != done_before:
                self._on_progress(active.task_id, t.progress, t.duration)
        self._finish_completed()

    def _finish_completed(self) -> None:
        for active in [a for a in self._active if a.transcription.finished]:
            with self._cv:  # idle and stats() read the list under the lock
                self._active.remove(active)
            self._release(active)
            try:
                result = active.transcription.result()
                if self._finalize is not None:
                    result = self._finalize(result, active.options)
                self._source.finish(active.task_id, result)
            except Exception as exc:
                log.exception("could not record the result of task %s", active.task_id,
                              extra={"task_id": active.task_id})
                self._fail(active.task_id, Failure.of(exc))

    def _drop(self, active: _Active, error: Failure) -> None:
        with self._cv:
            if active in self._active:
                self._active.remove(active)
        self._release(active)
        self._fail(active.task_id, error)

    def _release(self, active: _Active) -> None:
        """A task leaving the engine: its features are freed."""
        for part in active.transcription.parts:
            part.release()

    def _fail(self, task_id: str, error: Failure) -> None:
        try:
            self._source.fail(task_id, error)
        except Exception:
            log.exception("could not record the failure of task %s", task_id, extra={"task_id": task_id})
