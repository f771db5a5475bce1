"""Compact samples and a long recording's features, a window at a time: faster-whisper's values
in bounded memory, held in files nobody else can see."""

from __future__ import annotations

import tempfile
import tracemalloc

import numpy as np
import pytest
from faster_whisper.feature_extractor import FeatureExtractor

from asr_server.engine.audio import Pcm, decode, decode_pcm
from asr_server.engine.log_mel import PIECE_FRAMES, LogMel, features_of
from conftest import AUDIO

EXTRACTOR = FeatureExtractor()
# faster-whisper's own features change by this much with the number of BLAS threads (one
# matrix product's rounding); a window at a time may differ from them by no more.
ONE_ULP = 1.2e-7


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """A little over three minutes of real speech, whose frame count is not a multiple of a
    piece's, so that the last piece is a partial one."""
    clip = decode(str(AUDIO / "multilingual.mp3"))
    audio = np.concatenate([clip, clip, clip, clip[: 16000 * 7 + 123]])
    assert (len(audio) // 160 + 1) % PIECE_FRAMES
    return audio


def pcm_of(audio: np.ndarray, in_memory: int) -> Pcm:
    pcm = Pcm(in_memory)
    for start in range(0, len(audio), 100_000):
        pcm.append((audio[start : start + 100_000] * 32768).astype(np.int16))
    return pcm


def test_pcm_gives_back_the_samples_it_was_given_in_memory_and_spilled(speech):
    kept, spilled = pcm_of(speech, len(speech)), pcm_of(speech, 16000)
    assert not kept.spilled and spilled.spilled
    for pcm in (kept, spilled):
        assert pcm.count == len(speech)
        assert np.array_equal(pcm.all(), speech)
        assert np.array_equal(pcm.read(123_456, 654_321), speech[123_456:654_321])


def test_decoded_pcm_holds_decodes_samples():
    pcm = decode_pcm(str(AUDIO / "multilingual.mp3"), in_memory=16000)
    assert pcm.spilled
    assert np.array_equal(pcm.all(), decode(str(AUDIO / "multilingual.mp3")))


def test_decoding_stops_once_a_recording_passes_the_limit():
    pcm = decode_pcm(str(AUDIO / "multilingual.mp3"), max_samples=16000 * 5)
    assert 16000 * 5 < pcm.count < 16000 * 50


def test_a_recording_in_memory_gets_faster_whispers_features_exactly():
    audio = decode(str(AUDIO / "jfk.flac"))
    features = features_of(pcm_of(audio, len(audio)), EXTRACTOR)
    assert isinstance(features, np.ndarray)
    assert np.array_equal(features, EXTRACTOR(audio))


def test_a_long_recordings_features_match_faster_whispers_within_one_ulp(speech):
    features = features_of(pcm_of(speech, 16000), EXTRACTOR)
    whole = EXTRACTOR(speech)
    assert isinstance(features, LogMel)
    assert features.shape == whole.shape
    read = np.concatenate([features[:, start : start + 3000] for start in range(0, whole.shape[1], 3000)], axis=1)
    assert np.abs(read - whole).max() <= ONE_ULP
    assert np.array_equal(features[:, 2990:3010], read[:, 2990:3010])  # any range reads the same values


def test_a_long_recordings_features_take_a_few_windows_of_memory(speech):
    pcm = pcm_of(speech, 16000)
    tracemalloc.start()
    try:
        features_of(pcm, EXTRACTOR)
        _, chunked_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        EXTRACTOR(pcm.all())
        _, whole_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert chunked_peak < 40e6  # a few windows' transforms
    assert whole_peak > 5 * chunked_peak


def test_spilled_samples_and_features_leave_no_file_behind(speech, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    pcm = pcm_of(speech, 16000)
    features = features_of(pcm, EXTRACTOR)
    assert list(tmp_path.iterdir()) == []  # unnamed while open: gone even after kill -9
    features.close()
    pcm.close()
    with pytest.raises(ValueError):
        features[:, 0:10]
