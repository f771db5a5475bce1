"""The speech guard: silence, noise, tones and music give no text in sequential mode. Every
non-speech sound is made here; the speech is espeak-ng's. That speech keeps faster-whisper's
output with the guard on (the default) is test_equivalence.py's to prove."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from asr_server.config import DecodingOptions, SchedulerConfig
from asr_server.engine.audio import decode
from asr_server.whisper.speech_guard import Speech
from conftest import Job, run_jobs, write_wav

RATE = 16000
SPOKEN = "The quick brown fox jumps over the lazy dog near the river bank."


def pink_noise(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """White noise shaped to 1/f power in the frequency domain."""
    n = int(seconds * RATE)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum[1:] /= np.sqrt(np.arange(1, len(spectrum)))
    noise = np.fft.irfft(spectrum, n)
    return 0.2 * noise / np.abs(noise).max()


def melody(seconds: float) -> np.ndarray:
    """Notes of a major scale with three harmonics each, a quarter second apiece."""
    notes = [261.63, 293.66, 329.63, 349.23, 392.0, 440.0, 493.88, 523.25]
    note = int(0.25 * RATE)
    t = np.arange(note) / RATE
    envelope = np.minimum(1, np.minimum(t, t[::-1]) * 40)
    pieces = [envelope * sum(np.sin(2 * np.pi * notes[i % 8] * k * t) / k for k in (1, 2, 3))
              for i in range(int(seconds / 0.25))]
    return 0.25 * np.concatenate(pieces)


def espeak(text: str, path: Path) -> np.ndarray:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is missing: `make test-deps` installs it")
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, timeout=60)
    return decode(str(path), RATE)


@pytest.fixture(scope="module")
def sounds(tmp_path_factory) -> dict[str, str]:
    """Each kind of non-speech, as a file of 20 to 60 s. Unguarded, Whisper writes "You You"
    over the minute of silence and a syllable over and over for the melody."""
    folder = tmp_path_factory.mktemp("nonspeech")
    rng = np.random.default_rng(7)
    t = np.arange(20 * RATE) / RATE
    return {
        "digital silence": str(write_wav(folder / "silence.wav", np.zeros(60 * RATE))),
        "a melody": str(write_wav(folder / "melody.wav", melody(60))),
        "low noise": str(write_wav(folder / "low_noise.wav", 0.002 * rng.standard_normal(20 * RATE))),
        "pink noise": str(write_wav(folder / "pink.wav", pink_noise(20, rng))),
        "a tone": str(write_wav(folder / "tone.wav", 0.3 * np.sin(2 * np.pi * 440 * t))),
    }


INVENTED_OVER = ("digital silence", "a melody")  # what unguarded Whisper writes text for


def transcribe(engine, paths: list[str], **options) -> dict[str, dict]:
    jobs = [Job(str(i), path) for i, path in enumerate(paths)]
    source, _ = run_jobs(engine, jobs, SchedulerConfig(max_batch_size=8), DecodingOptions(**options))
    assert not source.errors, source.errors
    return {path: source.results[str(i)] for i, path in enumerate(paths)}


def test_a_span_meets_speech_that_overlaps_it_or_lies_within_the_slack():
    speech = Speech(((1.0, 2.0), (10.0, 12.5)))
    assert speech.meets(1.5, 1.6) and speech.meets(0.0, 1.1) and speech.meets(12.6, 14.0)
    assert not speech.meets(3.0, 9.0) and not speech.meets(13.0, 20.0)


def test_non_speech_of_a_known_language_gives_no_text_and_no_segments(engine, sounds):
    results = transcribe(engine, list(sounds.values()), language="en")
    for kind, path in sounds.items():
        assert (results[path]["text"], results[path]["segments"]) == ("", []), kind


def test_non_speech_gives_no_text_when_its_language_is_detected_on_it(engine, sounds):
    # The first window is decoded to detect the language: its invented segments are dropped.
    paths = [sounds[kind] for kind in INVENTED_OVER]
    results = transcribe(engine, paths)
    for path in paths:
        assert (results[path]["text"], results[path]["segments"]) == ("", []), path


def test_without_the_guard_whisper_writes_text_over_a_minute_of_silence(engine, sounds):
    path = sounds["digital silence"]  # decoded at temperature 0; the melody falls back to sampling
    assert transcribe(engine, [path], speech_guard=False)[path]["text"].strip(), "the guard would have nothing to do"


def test_no_text_is_invented_in_a_long_silence_after_speech(engine, tmp_path):
    speech = espeak(SPOKEN, tmp_path / "spoken.wav")
    path = str(write_wav(tmp_path / "then_silence.wav", np.concatenate([speech, np.zeros(45 * RATE, np.float32)])))
    result = transcribe(engine, [path])[path]
    spoken_until = len(speech) / RATE
    assert "fox" in result["text"].lower() and "lazy" in result["text"].lower()
    assert all(segment["start"] < spoken_until + 1 for segment in result["segments"])

