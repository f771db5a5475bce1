"""WhisperEngine: how it creates its model."""

from __future__ import annotations

import threading
from pathlib import Path
from unittest.mock import MagicMock

from asr_server import engine as engine_module
from asr_server.config import ModelConfig
from asr_server.engine import WhisperEngine


def test_engine_creates_its_model_on_a_thread_that_has_ended_when_it_returns(monkeypatch) -> None:
    """A model loaded on a thread that lives on (the caller's) leaves libgomp with more threads
    than CPUs, and every decode then pays for sleeping OpenMP workers (benchmarks/model_thread.py)."""
    loaded_on: list[threading.Thread] = []

    def fake_whisper_model(*args, **kwargs) -> MagicMock:
        loaded_on.append(threading.current_thread())
        return MagicMock()

    monkeypatch.setattr(engine_module, "WhisperModel", fake_whisper_model)
    WhisperEngine(Path("unused"), ModelConfig())

    assert len(loaded_on) == 1
    assert loaded_on[0] is not threading.current_thread()
    assert not loaded_on[0].is_alive()
