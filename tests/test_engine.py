"""The engine: decoding a batch in parts on single-threaded workers, side by side, changes
nothing in its output, only in how fast it comes (benchmarks/decode_workers.py)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from faster_whisper.audio import decode_audio, pad_or_trim

from asr_server.config import ModelConfig
from asr_server.engine import GenerateParams, WhisperEngine, _parts
from asr_server.models import resolve_model
from conftest import AUDIO

CLIPS = ["jfk.flac", "hotwords.mp3", "stereo_diarization.wav"]
BEAM = GenerateParams(beam_size=5, patience=1, length_penalty=1, repetition_penalty=1, no_repeat_ngram_size=0,
                      max_length=448, suppress_blank=True, suppress_tokens=(-1,), max_initial_timestamp_index=50,
                      temperature=0.0, best_of=5)


def load_engine(**config) -> WhisperEngine:
    model = ModelConfig(**config)
    return WhisperEngine(resolve_model(model.name, model.resolved_cache_dir()), model)


@pytest.fixture(scope="module")
def one_call() -> WhisperEngine:
    return load_engine(decode_workers=1)


@pytest.fixture(scope="module")
def side_by_side() -> WhisperEngine:
    return load_engine(decode_workers=2)


@pytest.fixture(scope="module")
def windows(one_call) -> list[np.ndarray]:
    """The clips' first 30 s windows, as the scheduler hands them to the engine."""
    out = []
    for name in CLIPS:
        features = one_call.features(decode_audio(str(AUDIO / name), sampling_rate=one_call.sampling_rate))
        out.append(pad_or_trim(features[:, : features.shape[-1] - 1]))
    return out


def english_prompt(engine: WhisperEngine) -> list[int]:
    return list(engine.tokenizer("transcribe", "en").sot_sequence)


def test_windows_encoded_side_by_side_equal_windows_encoded_on_every_thread(one_call, side_by_side, windows):
    for apart, together in zip(one_call.encode(windows), side_by_side.encode(windows)):
        np.testing.assert_allclose(apart, together, atol=1e-4)


def test_a_batch_decoded_in_parts_side_by_side_gives_the_tokens_of_one_call(one_call, side_by_side, windows):
    encoded = one_call.encode(windows)
    prompts = [english_prompt(one_call)] * len(encoded)
    expected = one_call.generate(encoded, prompts, BEAM)
    got = side_by_side.generate(encoded, prompts, BEAM)
    assert [g.tokens for g in got] == [e.tokens for e in expected]
    assert [g.score for g in got] == pytest.approx([e.score for e in expected], abs=1e-3)
    assert len({tuple(g.tokens) for g in got}) == len(CLIPS)  # three clips, three texts, in batch order


def test_a_lone_window_decodes_on_one_worker_to_the_same_tokens(one_call, side_by_side, windows):
    encoded = one_call.encode(windows[:1])
    prompt = [english_prompt(one_call)]
    assert side_by_side.generate(encoded, prompt, BEAM)[0].tokens == one_call.generate(encoded, prompt, BEAM)[0].tokens


def test_on_cpu_the_default_is_one_worker_per_core(engine):
    assert engine.decode_workers == (os.cpu_count() or 1)


@pytest.mark.parametrize("size, workers", [(8, 2), (5, 2), (1, 2), (3, 8), (7, 3)])
def test_a_batch_is_cut_into_contiguous_parts_of_near_equal_size(size, workers):
    parts = _parts(size, workers)
    assert len(parts) == min(size, workers)
    assert [i for part in parts for i in range(size)[part]] == list(range(size))
    lengths = [part.stop - part.start for part in parts]
    assert max(lengths) - min(lengths) <= 1
