"""A scripted engine for the unit tests of the scheduler and of decoding: no model, every call
recorded, and scripted tokens back, so that bookkeeping can be checked exactly."""

from __future__ import annotations

import threading
import wave
from pathlib import Path

import numpy as np
from faster_whisper.tokenizer import Tokenizer

from asr_server.engine.whisper_engine import Generated


class ScriptedEngine:
    """Looks like WhisperEngine; each window decodes to one segment covering the window."""

    sampling_rate = 16000
    frames_per_window = 3000
    seconds_per_frame = 0.01
    frames_per_second = 100
    input_stride = 2
    time_precision = 0.02
    max_length = 448
    is_multilingual = True

    def __init__(self, hf_tokenizer, fail_when=None, stops_short_when_trimmed=False, stops_short=False) -> None:
        self._hf = hf_tokenizer
        # True: a decoding on a trimmed encoding ends its segment at 0.2 s, so seek stops there.
        self.stops_short_when_trimmed = stops_short_when_trimmed
        self.stops_short = stops_short  # True: every decoding does, whole ones too
        self.generate_calls: list[list[list[int]]] = []
        self.fail_when = fail_when
        self.lock = threading.Lock()
        self.trim_at: list[int | None] = []  # what encode() was told of each window
        self.encode_calls: list[int] = []  # how many inputs each encode() call had
        self.generated_lengths: list[int] = []  # the encoding length of each item decoded

    def tokenizer(self, task, language):
        return Tokenizer(self._hf, True, task=task, language=language)

    def features(self, audio):
        frames = len(audio) // 160 + 1
        # Row 0 carries the audio's loudness so each task's windows are recognisable.
        out = np.zeros((80, frames), np.float32)
        out[0, :] = float(np.abs(audio).max())
        return out

    def features_of(self, pcm):
        return self.features(pcm.all())

    def encode(self, windows, trim_at=None):
        self.encode_calls.append(len(windows))
        trim_at = list(trim_at or [None] * len(windows))
        self.trim_at.extend(trim_at)
        return [w[:, : (frames or 3000) // 2].T.copy() for w, frames in zip(windows, trim_at, strict=True)]

    def detect_language(self, encoded):
        assert len({len(enc) for enc in encoded}) == 1, "CTranslate2 takes one encoding length per call"
        return [[("en", 0.9), ("de", 0.1)] for _ in encoded]

    def generate(self, encoded, prompts, params):
        sot = self.tokenizer("transcribe", "en").sot
        assert len({len(enc) for enc in encoded}) == 1, "CTranslate2 takes one encoding length per call"
        positions = {prompt.index(sot) for prompt in prompts}
        assert len(positions) == 1, "CTranslate2 needs <|startoftranscript|> at one position"
        with self.lock:
            self.generate_calls.append(prompts)
            self.generated_lengths.extend(len(enc) for enc in encoded)
        if self.fail_when is not None and self.fail_when(encoded):
            raise RuntimeError("scripted engine failure")
        tok = self.tokenizer("transcribe", "en")
        outputs = []
        for enc, prompt in zip(encoded, prompts, strict=True):
            loudness = round(float(enc[0, 0]), 2)
            words = 1 + len(prompt) % 3  # vary the text length, hence the next prompt's length
            text = tok.encode(" loud" + f" {loudness:.2f}" * words)
            end = [tok.timestamp_begin + 10]
            if self.stops_short or (self.stops_short_when_trimmed and len(enc) < 1500):
                end *= 2  # a closed segment with text to come: Whisper seeks to its end
            outputs.append(Generated([tok.timestamp_begin] + text + end, -0.1, 0.0))
        return outputs


def tone(path: Path, seconds: float, loudness: float) -> str:
    """A WAV file of a tone: what stands in for speech for the scripted engine, whose features
    carry each recording's loudness."""
    samples = (np.sin(np.arange(int(16000 * seconds)) / 5) * loudness * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(samples.tobytes())
    return str(path)
