"""The engine loop: it claims work, prepares it, and executes the scheduler core's plans.

It knows tasks only through ``WorkSource`` (claim / finish / fail). Claimed tasks are prepared
(audio decoded with PyAV, log-mel features computed) in worker threads; each prepared task
becomes a ``Transcription`` that offers its next window. Each step the loop asks
``core.SchedulerCore`` for a plan and runs that batch through the engine, holds back for
company, or waits for work; it hands the outcomes back to the core and records the tasks that
ended. What to batch, in what order and when to wait is the core's and its policy's alone.
"""

from __future__ import annotations

import heapq
import logging
import math
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from asr_server.config import DecodingOptions, SchedulerConfig, apply_decoding
from asr_server.errors import Failure
from asr_server.scheduling.core import Ended, Priority, SchedulerCore, Task, priority_shares
from asr_server.scheduling.model_pool import ModelPool, PoolClosed
from asr_server.scheduling.policy import BatchPolicy, Hold, Idle, Run, preparation_rank
from asr_server.scheduling.preparation import prepare
from asr_server.scheduling.speaker_work import SpeakerWork
from asr_server.speakers.labels import label_result
from asr_server.whisper.batch_decoding import decode_windows
from asr_server.whisper.transcription import TrimRule
from asr_server.whisper.units import Engine

log = logging.getLogger("asr_server.scheduling.scheduler")


class Job(Protocol):
    """What the scheduler reads of a claimed task (read-only, so that a store's ``TaskRecord``
    and ``memory_source.Job``, whose path is never None, both are one)."""

    @property
    def task_id(self) -> str: ...
    @property
    def audio_path(self) -> str | None: ...
    @property
    def options(self) -> dict[str, Any]: ...


class WorkSource(Protocol):
    """The scheduler's view of the task store."""

    def claim(self, limit: int) -> Sequence[Job]: ...
    def finish(self, task_id: str, result: dict[str, Any]) -> None: ...
    def fail(self, task_id: str, failure: Failure) -> None: ...


def _size(path: str | None) -> int:
    """The audio file's size in bytes: what ranks its preparation (0 when unknown)."""
    try:
        return os.path.getsize(path) if path else 0
    except OSError:
        return 0


def _on_monotonic_clock(unix_time: float | None) -> float | None:
    """A task option's wall-clock time (``deadline_at``) on the clock the core's plans use."""
    return None if unix_time is None else time.monotonic() + (unix_time - time.time())


ProgressHook = Callable[[str, float, float], None]
Finalize = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]  # (result, task options) -> result


class Scheduler:
    """The threads around a ``SchedulerCore``: an intake thread claims work, worker threads
    prepare it, and the engine thread executes the core's plans and records what ended. The
    core's tasks are the engine thread's alone; other threads reach them through the inbox
    below (arrivals, cancellations, drain), which the engine thread hands to the core at the
    top of each step. The intake thread asks the core for room and tells it of claims under the
    lock, which is where the engine thread hands it the inbox."""

    def __init__(
        self,
        engine: Engine | ModelPool,
        source: WorkSource,
        config: SchedulerConfig,
        defaults: DecodingOptions,
        on_progress: ProgressHook | None = None,
        finalize: Finalize | None = None,
        options_for: Callable[[dict[str, Any]], DecodingOptions] | None = None,
        on_batch: Callable[[int, float, dict[str, float]], None] | None = None,
        max_audio_seconds: float = 0,
        model: str = "",
        speaker_cache: Path | None = None,
    ) -> None:
        self._max_audio_seconds = max_audio_seconds  # 0: no limit
        # The models, by id; ``model`` is the one a task that names none uses. One engine
        # stands for a pool of that one model.
        self._models = engine if isinstance(engine, ModelPool) else ModelPool.of(engine, model)
        self._model = model
        self._on_batch = on_batch  # (windows, seconds, seconds by priority) after each step, for metrics
        self._source = source
        self._config = config
        self._on_progress = on_progress
        self._finalize = finalize
        # A task's decoding options: the service's rule, or the defaults with its overrides.
        self._options_for = options_for or (lambda options: apply_decoding(defaults, options))
        policy = BatchPolicy(config.max_batch_size, config.max_wait_ms / 1000, config.starvation_bound_s,
                             config.max_step_s or math.inf)
        self._core = SchedulerCore(policy, config.max_active_tasks)
        self._cv = threading.Condition()
        # The inbox, under _cv: what other threads tell the engine thread.
        self._arrived: deque[tuple[str, Task | None]] = deque()  # preparations that ended
        self._to_prepare: list[tuple[tuple[int, int, int], Job]] = []  # a heap: claimed, not yet prepared
        self._claims = 0
        self._cancel: set[str] = set()
        self._draining = False
        self._wake = False
        self._stopping = False
        self._held = 0  # the core's tasks, as of the engine thread's last look (under _cv)
        self._stats: dict[str, Any] = self._core.stats()
        self._thread: threading.Thread | None = None
        self._claimer: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(config.prepare_workers, thread_name_prefix="asr-prepare")
        # Speaker labels (task option diarize): their own worker, beside decoding.
        self._speakers = SpeakerWork(self._cv, speaker_cache)  # speaker_cache: the models' cache

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="asr-engine", daemon=True)
        self._claimer = threading.Thread(target=self._claim_loop, name="asr-intake", daemon=True)
        self._thread.start()
        self._claimer.start()

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
            self._cancel.add(task_id)
            self._cv.notify_all()

    def drain(self) -> None:
        """Claim nothing more; the tasks already held run to their end."""
        with self._cv:
            self._draining = True

    @property
    def idle(self) -> bool:
        """Nothing held: no task being prepared, waiting or decoded."""
        with self._cv:
            return not self._held and not self._arrived and not self._speakers.pending

    def stop(self, timeout: float = 10.0) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        self._models.close()  # a preparation waiting for a model stops waiting
        for thread in (self._claimer, self._thread):
            if thread is not None:
                thread.join(timeout)
        # Preparations not started are dropped; those under way end before the source closes.
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._speakers.close()

    def stats(self) -> dict[str, Any]:
        """Counters for operators and benchmarks: load now, and batch sizes so far."""
        with self._cv:
            return dict(self._stats)

    @property
    def batch_sizes(self) -> Counter[int]:
        """Windows per engine step -> steps, so far."""
        return Counter({int(size): n for size, n in self.stats()["batch_sizes"].items()})

    # -- preparation (worker threads) ------------------------------------------------------

    def _claim_loop(self) -> None:
        """The intake thread: it claims work when told of some (an upload, a task that ended and
        left room) and every poll interval, so that a task is claimed and prepared while the
        engine runs a step, not after it."""
        poll = self._config.poll_interval_ms / 1000
        while True:
            with self._cv:
                if not self._wake and not self._stopping:
                    self._cv.wait(poll)
                if self._stopping:
                    return
                self._wake = False
            try:
                self._intake()
                self._models.unload_idle()
            except Exception:
                log.exception("claiming work failed; retrying")

    def _intake(self) -> None:
        """Claim as many tasks as the core has room for, and prepare them."""
        for _ in range(self._claim()):
            self._pool.submit(self._prepare_next)

    def _claim(self) -> int:
        """Claim as many tasks as the core has room for, queued for preparation; how many."""
        with self._cv:
            room = 0 if self._draining else self._core.room()
        if room <= 0:
            return 0
        jobs = self._source.claim(room)
        if not jobs:
            return 0
        with self._cv:
            self._core.claimed([job.task_id for job in jobs])
            self._held = self._core.held
            for job in jobs:
                self._claims += 1
                interactive = (job.options or {}).get("priority") == Priority.INTERACTIVE
                rank = preparation_rank(interactive, _size(job.audio_path), self._claims)
                heapq.heappush(self._to_prepare, (rank, job))
        return len(jobs)

    def _prepare_next(self) -> None:
        """Prepare the claimed task that ranks first (``policy.preparation_rank``) now, not the
        one claimed first."""
        with self._cv:
            _, job = heapq.heappop(self._to_prepare)
        self._prepare(job)

    def _trim_rule(self, engine: Engine) -> TrimRule | None:
        """The one trimming rule of every task that may be trimmed. Detection on a trimmed
        encoding needs the window's own encoding to detect on."""
        config = self._config
        if not config.trim_short_clips:
            return None
        below = config.trim_detection_below if config.detect_on_window and config.trim_detection_below < 1 else None
        return TrimRule(round(config.trim_margin_s / engine.seconds_per_frame), below)

    def _prepare(self, job: Job) -> None:
        task: Task | None = None
        held: str | None = None  # the model this preparation holds
        try:
            options = job.options or {}
            model = options.get("model") or self._model
            engine = self._models.acquire(model)  # may wait for the model to load
            held = model
            # A task may ask for faster-whisper's exact computation (form field pack=false):
            # then its window is encoded whole, never trimmed.
            trim = self._trim_rule(engine) if options.get("pack", True) else None
            hints = options.get("diarize")
            beside = None if hints is None else (lambda pcm: self._speakers.start(job.task_id, pcm, hints))
            transcription = prepare(job.audio_path, self._options_for(options), engine, trim,
                                    self._max_audio_seconds, self._config.prompt_bucket_tokens or None, beside)
            task = Task(job.task_id, transcription, options, Priority(options.get("priority", "batch")),
                        deadline=_on_monotonic_clock(options.get("deadline_at")), model=model, engine=engine)
        except PoolClosed:
            log.info("task %s left unprepared: the server is stopping", job.task_id, extra={"task_id": job.task_id})
        except Exception as exc:
            if held is not None:
                self._models.release(held)
            self._speakers.drop(job.task_id)
            log.warning("task %s failed in preparation", job.task_id, exc_info=True, extra={"task_id": job.task_id})
            self._fail(job.task_id, Failure.of(exc))
        finally:
            with self._cv:
                self._arrived.append((job.task_id, task))
                self._cv.notify_all()

    # -- the engine loop ---------------------------------------------------------------------

    def run_until_idle(self) -> None:
        """The loop on the calling thread, without its threads or waits: claim what there is
        room for, prepare it, and run the core's plans until the source has nothing left.
        Every claim is prepared before the next plan, so nothing is ever being prepared and a
        plan never holds back: the batches depend on the work alone, not on timing (tests)."""
        while True:
            claimed = self._claim()
            for _ in range(claimed):
                self._prepare_next()
            for task in self._take_inbox():
                self._let_go(task)
            self._record(self._core.take_finished())
            plan = self._core.schedule(time.monotonic())
            if isinstance(plan, Run):
                self._step(plan)
                continue
            if claimed:
                continue
            # Asking for windows may have found a task done (the rest of a recording without
            # speech is passed over): reap it, and stop once no task is left.
            reaped = self._core.take_finished()
            self._record(reaped)
            if not self._core.active:
                return
            if not reaped:
                raise RuntimeError("active tasks offer no window and are not finished")

    def _run(self) -> None:
        poll = self._config.poll_interval_ms / 1000
        while True:
            with self._cv:
                if self._stopping:
                    return
            released = self._take_inbox()
            for task in released:
                self._let_go(task)
                self._speakers.drop(task.task_id)
                log.info("task cancelled: its windows leave the engine", extra={"task_id": task.task_id})
            self._record(self._core.take_finished())
            plan = self._core.schedule(time.monotonic())
            if isinstance(plan, Idle):
                with self._cv:
                    if not self._stopping and not self._arrived and not self._cancel:
                        self._cv.wait(poll)
            elif isinstance(plan, Hold):
                self._hold(plan.until)  # then plan again, with whatever arrived
            else:
                self._step(plan)

    def _take_inbox(self) -> list[Task]:
        """Hand the inbox to the core; the tasks that leave the engine for a cancellation."""
        released = []
        now = time.monotonic()
        with self._cv:
            if self._draining:
                self._core.drain()
            for task_id in self._cancel:
                if (task := self._core.cancel(task_id)) is not None:
                    released.append(task)
            self._cancel.clear()
            while self._arrived:
                task_id, arrived = self._arrived.popleft()
                if (dropped := self._core.prepared(task_id, arrived, now)) is not None:
                    released.append(dropped)
            self._held = self._core.held
            self._stats = self._core.stats()
        return released

    def _hold(self, until: float) -> None:
        """Wait until a prepared task arrives, none is being prepared any more, or ``until``."""
        with self._cv:
            while self._core.preparing and not self._arrived and not self._stopping and not self._cancel:
                left = until - time.monotonic()
                if left <= 0:
                    return
                self._cv.wait(left)

    def _let_go(self, task: Task) -> None:
        """A task leaves the engine: its features and its hold on its model go."""
        task.release()
        self._models.release(task.model)

    def _step(self, plan: Run) -> None:
        windows = [candidate.window for candidate in plan.batch]
        engine = plan.batch[0].task.engine  # a batch holds one model (Candidate.batch_key)
        started = time.perf_counter()
        try:
            outcomes = decode_windows(engine, windows, self._config.detect_on_window)
        except Exception as exc:
            log.exception("a batch of %d windows failed", len(windows))
            self._record(self._core.update_failed(plan, Failure.of(exc)))
            return
        elapsed = time.perf_counter() - started
        done_before = {id(c.task): c.task.transcription.seconds_done for c in plan.batch}
        ended = self._core.update(plan, outcomes, time.monotonic(), elapsed)
        with self._cv:
            self._stats = self._core.stats()
        if self._on_batch is not None:
            self._on_batch(len(windows), elapsed, priority_shares(plan.batch, elapsed))
        if log.isEnabledFor(logging.DEBUG):
            log.debug("decoded %d windows in %.2f s; %d tasks active, %d being prepared",
                      len(windows), elapsed, len(self._core.active), len(self._core.preparing))
        if self._on_progress is not None:
            for task in {id(c.task): c.task for c in plan.batch}.values():
                t = task.transcription
                if t.seconds_done != done_before[id(task)]:
                    self._on_progress(task.task_id, t.progress, t.duration)
        self._record(ended)

    def _record(self, ended: list[Ended]) -> None:
        """Store what ended: a finished task's result, a failed one's failure."""
        if not ended:
            return
        for end in ended:
            self._let_go(end.task)
            if end.failure is not None:
                self._speakers.drop(end.task.task_id)
                self._fail(end.task.task_id, end.failure)
                continue
            try:
                result = end.task.transcription.result()
            except Exception as exc:
                self._speakers.drop(end.task.task_id)
                log.exception("could not record the result of task %s", end.task.task_id,
                              extra={"task_id": end.task.task_id})
                self._fail(end.task.task_id, Failure.of(exc))
                continue
            # A task with speaker labels is recorded when they are found too: at once when they
            # already are, else by the speaker worker when it ends (never waited for here).
            self._speakers.then(end.task.task_id, partial(self._finish, end.task, result))
        with self._cv:
            self._held = self._core.held
            self._stats = self._core.stats()
            self._wake = True  # room for more: the intake thread claims
            self._cv.notify_all()

    def _finish(self, task: Task, result: dict[str, Any], turns: Future[Any] | None) -> None:
        if turns is not None and turns.cancelled():
            # The server stopped before the speaker work began: nothing is recorded, so the
            # task is still running in the store and goes back to the queue (Service.close).
            log.info("task %s left unrecorded: the server is stopping", task.task_id, extra={"task_id": task.task_id})
            return
        try:
            if turns is not None:
                result = {**result, "speaker_turns": turns.result()}
                if self._finalize is None:
                    result = label_result(result, result.pop("speaker_turns"), keep_words=True)
            if self._finalize is not None:
                result = self._finalize(result, task.options)
            if "model" in task.options:  # a task that chose its model learns which ran
                result = {**result, "model": task.model}
            self._source.finish(task.task_id, result)
        except Exception as exc:
            log.exception("could not record the result of task %s", task.task_id, extra={"task_id": task.task_id})
            self._fail(task.task_id, Failure.of(exc))

    def _fail(self, task_id: str, error: Failure) -> None:
        try:
            self._source.fail(task_id, error)
        except Exception:
            log.exception("could not record the failure of task %s", task_id, extra={"task_id": task_id})
