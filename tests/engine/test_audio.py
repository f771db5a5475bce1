"""Audio decoding: faster-whisper's samples, without its garbage collection per file."""

from __future__ import annotations

import gc

import numpy as np
import pytest
from faster_whisper.audio import decode_audio

from asr_server.engine.audio import decode
from conftest import AUDIO

CLIPS = ["jfk.flac", "hotwords.mp3", "multilingual.mp3", "stereo_diarization.wav"]


@pytest.mark.parametrize("name", CLIPS)
def test_decoded_samples_equal_faster_whispers(name):
    ours = decode(str(AUDIO / name), 16000)
    theirs = decode_audio(str(AUDIO / name), sampling_rate=16000)
    assert ours.dtype == np.float32
    assert np.array_equal(ours, theirs)


def collections_during(action) -> tuple[list[int], int]:
    """The generations of the garbage collections that ran during ``action`` (automatic ones
    are off), and how many unreachable objects a collection finds after it."""
    generations: list[int] = []

    def record(phase, info):
        if phase == "start":
            generations.append(info["generation"])

    gc.collect()
    gc.disable()
    gc.callbacks.append(record)
    try:
        action()
        gc.callbacks.remove(record)
        return generations, gc.collect()
    finally:
        if record in gc.callbacks:
            gc.callbacks.remove(record)
        gc.enable()


def test_decoding_runs_no_garbage_collection():
    generations, _ = collections_during(lambda: [decode(str(AUDIO / name), 16000) for name in CLIPS])
    assert generations == []


def test_decoding_leaves_no_reference_cycles():
    _, unreachable = collections_during(lambda: [decode(str(AUDIO / name), 16000) for name in CLIPS])
    assert unreachable == 0


def test_faster_whispers_decoding_does_collect_garbage():
    # The reason for this module: if faster-whisper stops collecting, it can go.
    generations, _ = collections_during(lambda: decode_audio(str(AUDIO / "jfk.flac")))
    assert 2 in generations
