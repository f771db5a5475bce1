"""The batching policy: which windows run next, or how long to hold them back. Pure: no threads,
no clock of its own, no engine.

Each step the engine loop hands ``BatchPolicy.schedule`` the windows on offer (oldest task
first), how many tasks are still being prepared, and the time. It
answers with a plan: ``Run`` a batch now, ``Hold`` it until a deadline in the hope of company, or
``Idle`` when nothing is on offer. The loop executes the plan and asks again; after a batch has
run it calls ``stepped`` (the split vLLM makes between ``schedule()`` and
``update_from_output()``).

The rules:

- **Selection.** The oldest window's batch key (CTranslate2 wants <|startoftranscript|> at one
  position in every prompt, and one set of decoding parameters), and up to ``max_batch_size``
  windows that share it, oldest first.
- **Full.** A batch of ``max_batch_size`` windows is full and runs at once: holding it back
  would gain nothing.
- **Hold back.** A batch that is not full is held only while other tasks are being prepared
  (their windows may join it), and for at most ``max_wait_s`` from when the loop first held back,
  not from each arrival, so that a steady trickle cannot hold it longer. A lone request, with
  nothing else on the way, never waits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class Batchable(Protocol):
    """What the policy needs of a window (``whisper.transcription.Window`` satisfies it)."""

    @property
    def batch_key(self) -> Any: ...


@dataclass(frozen=True)
class Run:
    """Decode these windows now, in one batch."""

    batch: list[Any]


@dataclass(frozen=True)
class Hold:
    """Wait for more windows until ``until`` (the loop's clock), then ask again."""

    batch: list[Any]
    until: float


@dataclass(frozen=True)
class Idle:
    """Nothing is on offer."""


Plan = Run | Hold | Idle


class BatchPolicy:
    """The batching rules of the module docstring, and the one piece of state they need: when
    the loop first held the current batch back."""

    def __init__(self, max_batch_size: int, max_wait_s: float) -> None:
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.holding_since: float | None = None

    def select(self, windows: Sequence[Batchable]) -> list[Any]:
        key = windows[0].batch_key
        return [w for w in windows if w.batch_key == key][: self.max_batch_size]

    def is_full(self, batch: Sequence[Any]) -> bool:
        return len(batch) >= self.max_batch_size

    def schedule(self, windows: Sequence[Batchable], preparing: int, now: float) -> Plan:
        """The plan for this step. ``preparing``: tasks whose audio is still being prepared."""
        if not windows:
            return Idle()
        batch = self.select(windows)
        if self.is_full(batch) or not preparing or self.max_wait_s <= 0:
            return Run(batch)
        if self.holding_since is None:
            self.holding_since = now
        until = self.holding_since + self.max_wait_s
        return Run(batch) if now >= until else Hold(batch, until)

    def stepped(self) -> None:
        """A batch ran: the next hold-back starts its own wait."""
        self.holding_since = None
