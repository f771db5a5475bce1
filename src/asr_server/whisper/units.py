"""The contracts between a recording's transcription, the batches it is decoded in, and the engine.

``Engine`` is what Whisper's semantics need of a model (a scripted one serves in unit tests);
``Outcome`` is a window's accepted decoding after temperature fallback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from faster_whisper.tokenizer import Tokenizer

from asr_server.config import DecodingOptions
from asr_server.engine.audio import Pcm
from asr_server.engine.log_mel import LogMel
from asr_server.engine.whisper_engine import Generated, GenerateParams


class Engine(Protocol):
    """What the transcription needs of an engine (a fake one serves in unit tests)."""

    sampling_rate: int
    frames_per_window: int
    seconds_per_frame: float
    frames_per_second: int
    input_stride: int
    time_precision: float
    max_length: int
    is_multilingual: bool

    def tokenizer(self, task: str, language: str | None) -> Tokenizer: ...
    def features(self, audio: np.ndarray) -> np.ndarray: ...
    def features_of(self, pcm: Pcm) -> np.ndarray | LogMel: ...
    def encode(self, windows: list[np.ndarray], trim_at: Sequence[int | None] | None = None) -> list[np.ndarray]: ...
    def detect_language(self, encoded: list[np.ndarray]) -> list[list[tuple[str, float]]]: ...
    def generate(self, encoded: list[np.ndarray], prompts: list[list[int]],
                 params: GenerateParams) -> list[Generated]: ...
    def add_word_timestamps(self, segments: list[list[dict[str, Any]]], tokenizer: Tokenizer, encoded: np.ndarray,
                            num_frames: int, prepend: str, append: str, last_speech: float) -> float: ...


@dataclass
class Outcome:
    """A window's accepted decoding after temperature fallback."""

    generated: Generated
    avg_logprob: float
    temperature: float
    compression_ratio: float
    encoded: np.ndarray | None = None  # the window's encoder output, for word timestamps
    trimmed: bool = False  # decoded on a trimmed encoding (Window.encoder_frames)


def is_silent(options: DecodingOptions, outcome: Outcome) -> bool:
    """Whisper's rule for a window to be skipped as silence: a no-speech probability above
    ``no_speech_threshold``, and no confident text either (``log_prob_threshold``)."""
    if options.no_speech_threshold is None or outcome.generated.no_speech_prob <= options.no_speech_threshold:
        return False
    return not (options.log_prob_threshold is not None and outcome.avg_logprob > options.log_prob_threshold)
