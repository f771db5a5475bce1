"""WhisperEngine: how it creates its model, and how it encodes a window that ends in silence."""

from __future__ import annotations

import threading
from pathlib import Path
from unittest.mock import MagicMock

import numpy as np
from conftest import EVAL
from faster_whisper.audio import pad_or_trim

from asr_server.engine import whisper_engine as engine_module
from asr_server.engine.audio import decode
from asr_server.config import ModelConfig
from asr_server.engine.whisper_engine import WhisperEngine


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


def speech_then_silence(engine, seconds: float):
    """Features of a 30 s window: real speech, then silent samples to the end (as a pack's)."""
    audio = decode(str(EVAL / "en_long_ljspeech_LJ001-0009_to_0032.flac"), engine.sampling_rate)
    window = np.zeros(30 * engine.sampling_rate, np.float32)
    window[: int(seconds * engine.sampling_rate)] = audio[: int(seconds * engine.sampling_rate)]
    features = engine.features(window)
    return pad_or_trim(features[:, : features.shape[-1] - 1])


def test_a_window_silent_from_a_frame_on_is_encoded_up_to_there_and_given_the_encoding_of_silence(engine) -> None:
    features = speech_then_silence(engine, seconds=18.0)
    whole, = engine.encode([features])
    cheap, = engine.encode([features], silent_from=[2000])
    silent, = engine.encode([np.full_like(features, round(float(features[0, 2000]), 1))])
    assert cheap.shape == whole.shape
    np.testing.assert_array_equal(cheap[1000:], silent[1000:])
    assert not np.allclose(cheap[:1000], whole[:1000], atol=1e-3), "the speech is encoded on its own"


def test_a_window_not_silent_where_it_is_said_to_be_is_encoded_whole(engine) -> None:
    features = speech_then_silence(engine, seconds=25.0)
    whole, = engine.encode([features])
    claimed, = engine.encode([features], silent_from=[2000])
    np.testing.assert_array_equal(claimed, whole)
