"""The batching policy: which windows run next, or how long to hold them back. Pure: no threads,
no clock of its own, no engine.

Each step the scheduler core hands ``BatchPolicy.schedule`` the windows on offer, how many
tasks are still being prepared, and the time. It answers with a plan: ``Run`` a batch now,
``Hold`` it until a deadline in the hope of company, or ``Idle`` when nothing is on offer.

The rules:

- **Order.** Windows are served in this order: first a batch window that has waited
  ``starvation_bound_s`` or longer (so that no batch task is passed over for longer than that,
  whatever else arrives); then interactive windows (a client is waiting on them live); then,
  where several models have work, the model that has had the least engine time while it had
  work (so that a burst for one model cannot starve another: they take turns); then the
  earliest deadline; then the task that has had the fewest windows decoded so far; then the
  window that has waited longest. Serving the least-served task first (foreground-background
  scheduling) is what keeps a short clip from waiting behind long files: a new task has had
  nothing, so its window is next, and long files advance together, a window each.
- **Selection.** The first window's batch key (the model, CTranslate2's one
  <|startoftranscript|> position, and one set of decoding parameters), and up to
  ``max_batch_size`` windows that share it, in that order.
- **Step length.** A step is what new work waits for: a CTranslate2 call cannot be interrupted.
  So a batch holds no more windows than fit in ``max_step_s`` at each window's expected cost
  (``step_cost_s``, which the core measures for a long recording's whole windows and sets to
  zero for trimmed short clips), and at least one. On a GPU, where a batch costs little more
  than one window, batches fill to ``max_batch_size``; on a CPU, where cost grows with every
  window, steps of long files stay short enough for a clip to be answered soon.
- **Full.** A batch of ``max_batch_size`` windows, or as many as fit in a step, is full and
  runs at once: holding it back would gain nothing.
- **Hold back.** A batch that is not full is held only while other tasks are being prepared
  (their windows may join it), and for at most ``max_wait_s`` from when it was first held back,
  not from each arrival, so that a steady trickle cannot hold it longer. A lone request, with
  nothing else on the way, never waits; nor does an interactive window, nor a batch past any
  deadline of its windows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class Batchable(Protocol):
    """What the policy needs of a window on offer (``core.Candidate`` satisfies it)."""

    @property
    def batch_key(self) -> Any: ...
    @property
    def interactive(self) -> bool: ...
    @property
    def deadline(self) -> float | None: ...
    @property
    def served(self) -> int: ...
    @property
    def waiting_since(self) -> float: ...
    @property
    def step_cost_s(self) -> float: ...
    @property
    def model_time(self) -> float: ...


def preparation_rank(interactive: bool, audio_bytes: int, arrival: int) -> tuple[int, int, int]:
    """The order claimed tasks are prepared in (lowest first): interactive ones, then the
    smallest files, then the earliest claimed. A long file's preparation (decoding, features,
    the speech guard) takes seconds; a short clip claimed behind a dozen of them would wait for
    all of them before its window could be offered at all."""
    return (0 if interactive else 1, audio_bytes, arrival)


@dataclass(frozen=True)
class Run:
    """Decode these windows now, in one batch."""

    batch: list[Any]


@dataclass(frozen=True)
class Hold:
    """Wait for more windows until ``until`` (the caller's clock), then ask again."""

    batch: list[Any]
    until: float


@dataclass(frozen=True)
class Idle:
    """Nothing is on offer."""


Plan = Run | Hold | Idle


class BatchPolicy:
    """The rules of the module docstring, and the one piece of state they need: when the
    current batch was first held back (``holding_since``, cleared when a batch runs)."""

    def __init__(self, max_batch_size: int, max_wait_s: float, starvation_bound_s: float = math.inf,
                 max_step_s: float = math.inf) -> None:
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.starvation_bound_s = starvation_bound_s
        self.max_step_s = max_step_s
        self.holding_since: float | None = None

    def order(self, windows: Sequence[Batchable], now: float) -> list[Any]:
        """The windows in the order they are served (stable: equals keep their given order)."""

        def rank(window: Batchable) -> tuple[int, float, float, int, float]:
            starving = not window.interactive and now - window.waiting_since >= self.starvation_bound_s
            klass = 0 if starving else 1 if window.interactive else 2
            deadline = window.deadline if window.deadline is not None else math.inf
            return klass, window.model_time, deadline, window.served, window.waiting_since

        return sorted(windows, key=rank)

    def select(self, windows: Sequence[Batchable], now: float) -> list[Any]:
        ordered = self.order(windows, now)
        key = ordered[0].batch_key
        return self._fitting([w for w in ordered if w.batch_key == key])

    def _fitting(self, windows: Sequence[Batchable]) -> list[Any]:
        """The first windows that fit in one step: ``max_batch_size`` at most, and as many as
        ``max_step_s`` holds at their expected cost (one at least)."""
        batch: list[Any] = []
        cost = 0.0
        for window in windows[: self.max_batch_size]:
            cost += window.step_cost_s
            if batch and cost > self.max_step_s:
                break
            batch.append(window)
        return batch

    def is_full(self, batch: Sequence[Batchable]) -> bool:
        if len(batch) >= self.max_batch_size:
            return True
        return sum(w.step_cost_s for w in batch) + min(w.step_cost_s for w in batch) > self.max_step_s

    def schedule(self, windows: Sequence[Batchable], preparing: int, now: float) -> Plan:
        """The plan for this step. ``preparing``: tasks whose audio is still being prepared."""
        if not windows:
            return Idle()
        batch = self.select(windows, now)
        if self.is_full(batch) or not preparing or self.max_wait_s <= 0 or any(w.interactive for w in batch):
            return self._run(batch)
        if self.holding_since is None:
            self.holding_since = now
        deadlines = [w.deadline for w in batch if w.deadline is not None]
        until = min([self.holding_since + self.max_wait_s, *deadlines])
        return self._run(batch) if now >= until else Hold(batch, until)

    def _run(self, batch: list[Any]) -> Run:
        self.holding_since = None  # the next hold-back starts its own wait
        return Run(batch)
