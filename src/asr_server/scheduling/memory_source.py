"""An in-memory work source: a fixed list of jobs, for running the scheduler without a store.

The ``transcribe`` command uses it for files given on the command line; tests use it to drive
the scheduler directly.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from asr_server.errors import Failure


@dataclass
class Job:
    """A unit of work as the scheduler sees it (what a store's claim returns)."""

    task_id: str
    audio_path: str
    options: dict[str, Any] = field(default_factory=dict)


class ListSource:
    """Hands out its jobs once; collects results and errors; ``done`` is set when all ended."""

    def __init__(self, jobs: list[Job]) -> None:
        self._pending = list(jobs)
        self._total = len(self._pending)
        self._lock = threading.Lock()
        self.results: dict[str, dict[str, Any]] = {}
        self.errors: dict[str, str] = {}  # task id -> the failure's text (a traceback)
        self.failures: dict[str, Failure] = {}
        self.done = threading.Event()
        if not self._total:
            self.done.set()

    def claim(self, limit: int) -> list[Job]:
        with self._lock:
            taken, self._pending = self._pending[:limit], self._pending[limit:]
        return taken

    def finish(self, task_id: str, result: dict[str, Any]) -> None:
        with self._lock:
            self.results[task_id] = result
            self._check()

    def fail(self, task_id: str, failure: Failure) -> None:
        with self._lock:
            self.errors[task_id] = failure.text
            self.failures[task_id] = failure
            self._check()

    def _check(self) -> None:
        if len(self.results) + len(self.errors) == self._total:
            self.done.set()
