"""The models a scheduler decodes with: loaded when first needed (or at start-up), shared by
every task that uses them, unloaded when idle.

A task holds its model from its preparation to its end (``acquire`` / ``release``), so a model
is never unloaded under a task. An idle model (held by no task) is unloaded once it has been
idle for its ``unload_after_s``, or sooner when loading another would pass ``max_loaded``: the
least recently used idle model goes first. When every loaded model is held and the cap is
reached, ``acquire`` waits until one is released. A model that fails to load fails the
``acquire`` with ``ModelUnavailable``; the next ``acquire`` tries again (the files may have
appeared).

Threads: ``acquire`` blocks (it may load a model for seconds), so preparation workers call it,
never the engine thread. Every rule that depends on time takes ``now`` from ``clock``, which a
test replaces.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("asr_server.scheduling.model_pool")


class ModelUnavailable(Exception):
    """A model that could not be loaded; the message says which and why."""


class UnknownModel(KeyError):
    """A model id this pool does not know."""


class PoolClosed(Exception):
    """The pool closed while an ``acquire`` waited: the server is stopping."""


@dataclass
class ModelSpec:
    """How to load one model, and how long it may stay loaded unused."""

    load: Callable[[], Any]  # returns the loaded engine
    unload_after_s: float = 0.0  # 0: keep it loaded


@dataclass
class _Slot:
    spec: ModelSpec
    engine: Any = None
    holders: int = 0
    loading: bool = False
    last_used: float = 0.0
    error: str | None = None


class ModelPool:
    """Models by id; see the module docstring."""

    def __init__(self, specs: Mapping[str, ModelSpec], max_loaded: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._slots = {model_id: _Slot(spec) for model_id, spec in specs.items()}
        self._max_loaded = max_loaded  # 0: no limit
        self._clock = clock
        self._cv = threading.Condition()
        self._closed = False

    @classmethod
    def of(cls, engine: Any, model_id: str = "") -> ModelPool:
        """A pool of one engine that is already loaded (tests, ``asr-server transcribe``)."""
        pool = cls({model_id: ModelSpec(lambda: engine)})
        pool._slots[model_id].engine = engine
        return pool

    def acquire(self, model_id: str) -> Any:
        """The model's engine, loaded if need be, held until ``release``. Raises UnknownModel
        or ModelUnavailable."""
        with self._cv:
            slot = self._slot(model_id)
            while True:
                if self._closed:
                    raise PoolClosed(model_id)
                if slot.engine is not None:
                    slot.holders += 1
                    slot.last_used = self._clock()
                    return slot.engine
                if not slot.loading and self._make_room():
                    slot.loading = True
                    break
                self._cv.wait()
        try:
            engine = slot.spec.load()
        except Exception as exc:
            with self._cv:
                slot.loading = False
                slot.error = f"{type(exc).__name__}: {exc}"
                self._cv.notify_all()
            log.exception("model %s could not be loaded", model_id)
            raise ModelUnavailable(f"The model '{model_id}' could not be loaded: {exc}") from exc
        with self._cv:
            slot.loading, slot.engine, slot.error = False, engine, None
            slot.holders += 1
            slot.last_used = self._clock()
            self._cv.notify_all()
        log.info("model %s loaded", model_id)
        return engine

    def release(self, model_id: str) -> None:
        """A task that held the model has ended."""
        with self._cv:
            slot = self._slot(model_id)
            slot.holders -= 1
            slot.last_used = self._clock()
            self._cv.notify_all()

    def close(self) -> None:
        """Stop waiting: every ``acquire`` still waiting raises ``PoolClosed``."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    def unload_idle(self) -> list[str]:
        """Unload the models idle for their ``unload_after_s``; the ids unloaded."""
        now = self._clock()
        with self._cv:
            idle = [model_id for model_id, slot in self._slots.items()
                    if slot.engine is not None and not slot.holders and slot.spec.unload_after_s
                    and now - slot.last_used >= slot.spec.unload_after_s]
            for model_id in idle:
                self._unload(model_id)
        return idle

    def status(self) -> dict[str, dict[str, Any]]:
        """Each model: loaded or not, tasks holding it, and why its last load failed."""
        with self._cv:
            return {model_id: {"loaded": slot.engine is not None, "loading": slot.loading,
                               "tasks": slot.holders, "error": slot.error}
                    for model_id, slot in self._slots.items()}

    def loaded(self, model_id: str) -> Any:
        """The model's engine if it is loaded, else None (no hold is taken)."""
        with self._cv:
            return self._slot(model_id).engine

    def _slot(self, model_id: str) -> _Slot:
        try:
            return self._slots[model_id]
        except KeyError:
            raise UnknownModel(model_id) from None

    def _make_room(self) -> bool:
        """Under the lock: whether one more model may load now, after unloading the least
        recently used idle one if the cap requires it."""
        if not self._max_loaded:
            return True
        in_memory = [(slot.last_used, model_id) for model_id, slot in self._slots.items()
                     if slot.engine is not None or slot.loading]
        if len(in_memory) < self._max_loaded:
            return True
        idle = sorted((used, model_id) for used, model_id in in_memory
                      if self._slots[model_id].engine is not None and not self._slots[model_id].holders)
        if not idle:
            return False
        self._unload(idle[0][1])
        return True

    def _unload(self, model_id: str) -> None:
        slot = self._slots[model_id]
        slot.engine = None  # CTranslate2 frees the model's memory with its last reference
        log.info("model %s unloaded", model_id)
