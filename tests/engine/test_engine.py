"""WhisperEngine: how it creates its model, and how it encodes a window that ends in silence."""

from __future__ import annotations

import threading
from pathlib import Path
from unittest.mock import MagicMock

import numpy as np
from faster_whisper.audio import pad_or_trim

from asr_server.config import ModelConfig
from asr_server.engine import whisper_engine as engine_module
from asr_server.engine.audio import decode
from asr_server.engine.whisper_engine import WhisperEngine
from conftest import EVAL


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


def speech_window(engine, seconds: float):
    """Features of a 30 s window: real speech for ``seconds``, then faster-whisper's padding."""
    audio = decode(str(EVAL / "en_long_ljspeech_LJ001-0009_to_0032.flac"), engine.sampling_rate)
    features = engine.features(audio[: int(seconds * engine.sampling_rate)])
    return pad_or_trim(features[:, : features.shape[-1] - 1])


def test_a_trimmed_window_is_encoded_over_its_first_frames_alone(engine) -> None:
    features = speech_window(engine, seconds=6.0)
    trimmed, whole = engine.encode([features, features], trim_at=[1000, None])
    alone, = engine.encode([features[:, :1000]])
    assert trimmed.shape[0] == 500 and whole.shape[0] == 1500
    np.testing.assert_array_equal(trimmed, alone)
    assert not np.allclose(trimmed, whole[:500], atol=1e-3), "the trimmed encoding attends to its own frames only"
