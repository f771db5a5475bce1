"""The scheduler core: which tasks the engine holds, which windows run next, and what each
step's outcomes do to them.

It owns what vLLM's ``Scheduler`` owns: the tasks being prepared and the active ones,
admission (``max_active_tasks``), cancellation and drain. ``schedule(now)`` returns the step's
plan (``policy.Run``, ``Hold`` or ``Idle``); ``update(plan, outcomes, now)`` applies what the
engine returned, and ``update_failed(plan, failure)`` a step that failed; both say which tasks
ended. No thread, no lock, no clock of its own: one owner calls it (the engine loop,
``scheduler.Scheduler``, or a test), and every rule that depends on time takes ``now``.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from asr_server.errors import Failure
from asr_server.scheduling.policy import BatchPolicy, Hold, Idle, Plan, Run
from asr_server.whisper.chunking import ChunkedTranscription
from asr_server.whisper.transcription import Transcription, Window
from asr_server.whisper.units import Outcome

COST_WEIGHT = 0.3  # how much the last step moves the running measure of a window's cost


class Priority(StrEnum):
    """What the client expects: ``interactive`` (someone waits on it live) runs before
    ``batch`` (file tasks, the default); see ``policy`` for the bound that keeps batch moving."""

    INTERACTIVE = "interactive"
    BATCH = "batch"


@dataclass(eq=False)  # identity: two tasks are never equal
class Task:
    """A task the engine holds, with what its scheduling needs."""

    task_id: str
    transcription: Transcription | ChunkedTranscription
    options: dict[str, Any] = field(default_factory=dict)
    priority: Priority = Priority.BATCH
    deadline: float | None = None  # on the caller's clock
    model: str = ""
    engine: Any = None  # the model's engine, which decodes its windows
    served: int = 0  # windows decoded so far
    waiting_since: float = 0.0  # when its windows on offer were offered

    def release(self) -> None:
        """Give back what its features hold; it leaves the engine."""
        for part in self.transcription.parts:
            part.release()


@dataclass(frozen=True, eq=False)
class Candidate:
    """One window on offer, as the policy sees it (``policy.Batchable``)."""

    window: Window
    task: Task

    step_cost_s: float = 0.0  # the window's expected share of a step (SchedulerCore.candidates)
    model_time: float = 0.0  # its model's share of engine time so far (SchedulerCore.model_time)

    @property
    def batch_key(self) -> tuple[Any, ...]:
        """A batch never mixes models, nor trimmed windows with whole ones (they take separate
        engine calls anyway, and a short clip would wait for the whole windows' step); within
        that, the window's own key."""
        return (self.task.model, self.window.encoder_frames is not None, *self.window.batch_key)

    @property
    def interactive(self) -> bool:
        return self.task.priority == Priority.INTERACTIVE

    @property
    def deadline(self) -> float | None:
        return self.task.deadline

    @property
    def served(self) -> int:
        return self.task.served

    @property
    def waiting_since(self) -> float:
        return self.task.waiting_since


def priority_shares(batch: Sequence[Candidate], seconds: float) -> dict[str, float]:
    """A step's engine time by the priority of the work it served, shared by its windows."""
    shares: defaultdict[str, float] = defaultdict(float)
    for candidate in batch:
        shares[candidate.task.priority.value] += seconds / len(batch)
    return dict(shares)


@dataclass
class Ended:
    """A task that left the engine: finished (``failure`` None) or failed."""

    task: Task
    failure: Failure | None = None


@dataclass
class Counters:
    """What the core has done, for ``/readyz``, ``/metrics`` and benchmarks."""

    batch_sizes: Counter[int] = field(default_factory=Counter)  # windows per engine step -> steps
    windows_decoded: int = 0
    windows_trimmed: int = 0  # of those, encoded over their own length (Window.encoder_frames)
    windows_retried_whole: int = 0  # of those, decoded on a whole encoding after all (decode_windows)
    audio_seconds_done: float = 0.0
    engine_seconds: float = 0.0  # time spent in the engine's steps
    engine_seconds_by_priority: Counter[str] = field(default_factory=Counter)
    # steps by the models of their windows ("a+b" would be a batch that mixed two: never)
    steps_by_model: Counter[str] = field(default_factory=Counter)


class SchedulerCore:
    """Tasks from claim to end, and the plan of each engine step."""

    def __init__(self, policy: BatchPolicy, max_active_tasks: int) -> None:
        self.policy = policy
        self.max_active_tasks = max_active_tasks
        self.preparing: set[str] = set()
        self.active: list[Task] = []
        self.cancelled: set[str] = set()  # being prepared: dropped when they arrive
        self.draining = False
        self.counters = Counters()
        # A running measure of a whole window's share of a step's time: what the policy fits
        # into a step (``policy.BatchPolicy.max_step_s``). Not measured yet, a window counts as
        # filling a step, so the first step of whole windows runs one.
        self.whole_window_cost_s = math.inf
        # Engine seconds each model has had while it had work: the policy serves the model
        # with the least first, so that models share the engine equally while both have work.
        # A model that gets work after having none starts level with the least of those
        # that have work, not at what it had before: idle time earns no credit.
        self.model_time: dict[str, float] = {}

    # -- admission ---------------------------------------------------------------------------

    def room(self) -> int:
        """How many more tasks may be claimed now (none while draining)."""
        if self.draining:
            return 0
        return max(0, self.max_active_tasks - len(self.active) - len(self.preparing))

    def claimed(self, task_ids: Sequence[str]) -> None:
        """These tasks are being prepared."""
        self.preparing.update(task_ids)

    def prepared(self, task_id: str, task: Task | None, now: float) -> Task | None:
        """A preparation ended: with its task, which becomes active, or None when it failed.
        Returns a task cancelled while it was prepared, for the caller to release."""
        self.preparing.discard(task_id)
        if task_id in self.cancelled:
            self.cancelled.discard(task_id)
            return task
        if task is not None:
            task.waiting_since = now
            if all(other.model != task.model for other in self.active):
                busy = [self.model_time.get(other.model, 0.0) for other in self.active]
                self.model_time[task.model] = max(self.model_time.get(task.model, 0.0), min(busy, default=0.0))
            self.active.append(task)
        return None

    def cancel(self, task_id: str) -> Task | None:
        """Drop a task (it was deleted): an active one leaves now and is returned for the caller
        to release; one being prepared is dropped when it arrives; any other is ignored."""
        for task in self.active:
            if task.task_id == task_id:
                self.active.remove(task)
                return task
        if task_id in self.preparing:
            self.cancelled.add(task_id)
        return None

    def drain(self) -> None:
        """Claim nothing more; the tasks already held run to their end."""
        self.draining = True

    @property
    def held(self) -> int:
        """Tasks being prepared or active."""
        return len(self.preparing) + len(self.active)

    # -- steps -------------------------------------------------------------------------------

    def candidates(self) -> list[Candidate]:
        """Each active task's windows on offer, with their expected cost.

        Only whole windows count against the step budget. A trimmed window is a short clip's
        whole recording: a short clip that arrives while a step of them runs would queue
        behind them anyway (it has been served no more than they have), so capping their
        steps would protect nobody and would cost a burst of short clips its batching. The
        budget is for long recordings, whose later windows a newcomer overtakes."""
        return [Candidate(window, task, 0.0 if window.encoder_frames is not None else self.whole_window_cost_s,
                          self.model_time.get(task.model, 0.0))
                for task in self.active for window in task.transcription.windows()]

    def schedule(self, now: float) -> Plan:
        """The next step: a batch of candidates to run, a hold, or nothing to do."""
        return self.policy.schedule(self.candidates(), len(self.preparing), now)

    def update(self, plan: Run, outcomes: Sequence[Outcome], now: float, seconds: float) -> list[Ended]:
        """Apply a step's outcomes (one per window of ``plan.batch``, in order) that took
        ``seconds`` of engine time; the tasks that ended, finished or failed."""
        batch: list[Candidate] = plan.batch
        self._count(batch, outcomes, seconds)
        ended: list[Ended] = []
        for candidate, outcome in zip(batch, outcomes, strict=True):
            task = candidate.task
            if task not in self.active:
                continue  # another of its windows failed in this step
            before = task.transcription.seconds_done
            try:
                candidate.window.complete(outcome)
            except Exception as exc:
                self.active.remove(task)
                ended.append(Ended(task, Failure.of(exc)))
                continue
            self.counters.audio_seconds_done += task.transcription.seconds_done - before
        for task in {id(c.task): c.task for c in batch}.values():
            task.served += sum(c.task is task for c in batch)
            task.waiting_since = now
        return ended + self.take_finished()

    def update_failed(self, plan: Run, failure: Failure) -> list[Ended]:
        """A step the engine failed: every task with a window in it fails, and no other."""
        ended = []
        for task in {id(c.task): c.task for c in plan.batch}.values():
            if task in self.active:
                self.active.remove(task)
                ended.append(Ended(task, failure))
        return ended

    def take_finished(self) -> list[Ended]:
        """The active tasks with nothing left to decode, removed."""
        finished = [task for task in self.active if task.transcription.finished]
        for task in finished:
            self.active.remove(task)
        return [Ended(task) for task in finished]

    def _count(self, batch: Sequence[Candidate], outcomes: Sequence[Outcome], seconds: float) -> None:
        counters = self.counters
        counters.batch_sizes[len(batch)] += 1
        counters.windows_decoded += len(batch)
        trimmed = [c.window.encoder_frames is not None for c in batch]
        counters.windows_trimmed += sum(trimmed)
        counters.windows_retried_whole += sum(t and not o.trimmed for t, o in zip(trimmed, outcomes, strict=True))
        counters.engine_seconds += seconds
        if not trimmed[0]:  # a batch holds one kind (Candidate.batch_key)
            share, before = seconds / len(batch), self.whole_window_cost_s
            self.whole_window_cost_s = share if math.isinf(before) else before + COST_WEIGHT * (share - before)
        counters.engine_seconds_by_priority.update(priority_shares(batch, seconds))
        models = sorted({c.task.model for c in batch})
        counters.steps_by_model["+".join(models)] += 1
        for model in models:
            self.model_time[model] = self.model_time.get(model, 0.0) + seconds

    def stats(self) -> dict[str, Any]:
        counters = self.counters
        return {
            "active_tasks": len(self.active),
            "preparing_tasks": len(self.preparing),
            "windows_decoded": counters.windows_decoded,
            "windows_trimmed": counters.windows_trimmed,
            "windows_retried_whole": counters.windows_retried_whole,
            "audio_seconds_done": round(counters.audio_seconds_done, 3),
            "batch_sizes": {str(size): count for size, count in sorted(counters.batch_sizes.items())},
            "mean_windows_per_step": round(counters.windows_decoded / max(1, counters.batch_sizes.total()), 3),
            "engine_seconds": round(counters.engine_seconds, 3),
            "engine_seconds_by_priority": {
                k: round(v, 3) for k, v in sorted(counters.engine_seconds_by_priority.items())
            },
            "steps_by_model": dict(sorted(counters.steps_by_model.items())),
        }


__all__ = ["Candidate", "Ended", "Hold", "Idle", "Priority", "Run", "SchedulerCore", "Task"]
