"""The CTranslate2 Whisper engine: arrays in, tokens out.

It knows nothing of HTTP, tasks or Whisper's windowing rules; it loads the model once (through
faster-whisper's ``WhisperModel``, which brings the tokenizer and the feature extractor) and
runs batched encoder, language-detection and decoder calls. CTranslate2 releases the GIL while
it computes, so the event loop and audio decoding keep running beside it.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer

from .config import ModelConfig


@dataclass(frozen=True)
class GenerateParams:
    """Options of one generate() call; every item of a batch shares them."""

    beam_size: int
    patience: float
    length_penalty: float
    repetition_penalty: float
    no_repeat_ngram_size: int
    max_length: int
    suppress_blank: bool
    suppress_tokens: tuple[int, ...]
    max_initial_timestamp_index: int
    temperature: float
    best_of: int


@dataclass(frozen=True)
class Generated:
    """One item's decoder output: the best hypothesis and its scores."""

    tokens: list[int]
    score: float
    no_speech_prob: float


class WhisperEngine:
    """One loaded Whisper model; safe to call from one engine thread at a time.

    On CPU the weights are loaded twice. The model faster-whisper loads, on every thread,
    encodes a lone window and detects languages. A second copy runs ``decode_workers``
    single-threaded workers (CTranslate2's ``inter_threads``): a batch is decoded in parts, one
    per worker, side by side, and its windows are encoded side by side too. On the 2-core VMs a
    decoder call took more than twice as long on two threads as on one, and a batch of 8 was
    decoded 1.7x as fast in two halves side by side as in one call on both threads
    (benchmarks/decode_workers.py, RESULTS.md). The tokens are the same either way."""

    def __init__(self, model_dir: Path, config: ModelConfig) -> None:
        self._whisper = WhisperModel(
            str(model_dir),
            device=config.device,
            device_index=config.device_index,
            compute_type=config.compute_type,
            cpu_threads=config.cpu_threads,
        )
        self.model: ctranslate2.models.Whisper = self._whisper.model
        self.feature_extractor = self._whisper.feature_extractor
        self.sampling_rate: int = self.feature_extractor.sampling_rate
        self.frames_per_window: int = self.feature_extractor.nb_max_frames
        self.seconds_per_frame: float = self.feature_extractor.time_per_frame
        self.frames_per_second: int = self._whisper.frames_per_second
        self.input_stride: int = self._whisper.input_stride
        self.time_precision: float = self._whisper.time_precision
        self.max_length: int = self._whisper.max_length
        self.is_multilingual: bool = self.model.is_multilingual
        self._to_cpu = self.model.device == "cuda"
        self._encode_batch_size = config.encode_batch_size
        on_cpu = self.model.device == "cpu"
        self.decode_workers: int = (config.decode_workers or os.cpu_count() or 1) if on_cpu else 1
        self._workers: ctranslate2.models.Whisper | None = None
        self._encoding: ThreadPoolExecutor | None = None
        if self.decode_workers > 1:
            self._workers = ctranslate2.models.Whisper(
                str(model_dir), device="cpu", compute_type=config.compute_type,
                intra_threads=1, inter_threads=self.decode_workers,
            )
            self._encoding = ThreadPoolExecutor(self.decode_workers, thread_name_prefix="asr-encode")

    @property
    def whisper_model(self) -> WhisperModel:
        """The underlying faster-whisper model (for baselines and comparisons)."""
        return self._whisper

    def tokenizer(self, task: str, language: str | None) -> Tokenizer:
        return Tokenizer(self._whisper.hf_tokenizer, self.is_multilingual, task=task, language=language)

    def features(self, audio: np.ndarray) -> np.ndarray:
        """Log-mel features of a whole recording (computed at once, as faster-whisper does)."""
        return self.feature_extractor(audio)

    def encode(self, windows: list[np.ndarray]) -> list[np.ndarray]:
        """Run the encoder on padded 30 s windows, ``encode_batch_size`` at a time; one host
        array per window (the decoder batch may then combine windows encoded apart). Several
        windows are encoded side by side on the workers; a lone one on every thread."""
        chunks = [windows[start : start + self._encode_batch_size]
                  for start in range(0, len(windows), self._encode_batch_size)]
        if self._workers is None or self._encoding is None or len(windows) == 1:
            encoded = [self.model.encode(_storage(chunk), to_cpu=self._to_cpu) for chunk in chunks]
        else:
            workers = self._workers
            encoded = list(self._encoding.map(lambda chunk: workers.encode(_storage(chunk)), chunks))
        return [window for out in encoded for window in np.asarray(out)]

    def detect_language(self, encoded: list[np.ndarray]) -> list[list[tuple[str, float]]]:
        """Language probabilities per window, best first, codes without markers."""
        results = self.model.detect_language(_storage(encoded))
        return [[(token[2:-2], prob) for token, prob in result] for result in results]

    def add_word_timestamps(self, segments: list[list[dict]], tokenizer: Tokenizer, encoded: np.ndarray,
                            num_frames: int, prepend: str, append: str, last_speech: float) -> float:
        """faster-whisper's word timing for one window's segments (adds "words", adjusts edges)."""
        return self._whisper.add_word_timestamps(segments, tokenizer, _storage([encoded]), num_frames,
                                                 prepend, append, last_speech)

    def generate(self, encoded: list[np.ndarray], prompts: list[list[int]], params: GenerateParams) -> list[Generated]:
        """Decode a batch. CTranslate2 requires <|startoftranscript|> at one position in all prompts."""
        if params.temperature > 0:
            sampling = {
                "beam_size": 1,
                "num_hypotheses": params.best_of,
                "sampling_topk": 0,
                "sampling_temperature": params.temperature,
            }
        else:
            sampling = {"beam_size": params.beam_size, "patience": params.patience}
        options = dict(
            length_penalty=params.length_penalty,
            repetition_penalty=params.repetition_penalty,
            no_repeat_ngram_size=params.no_repeat_ngram_size,
            max_length=params.max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=params.suppress_blank,
            suppress_tokens=list(params.suppress_tokens),
            max_initial_timestamp_index=params.max_initial_timestamp_index,
            **sampling,
        )
        if self._workers is None:
            results = self.model.generate(_storage(encoded), prompts, **options)
        else:
            # One asynchronous call per worker, on a contiguous part of the batch; CTranslate2
            # runs them side by side and the results come back in the batch's order.
            calls = [self._workers.generate(_storage(encoded[part]), prompts[part], asynchronous=True, **options)
                     for part in _parts(len(encoded), self.decode_workers)]
            results = [pending.result() for call in calls for pending in call]
        return [Generated(r.sequences_ids[0], r.scores[0], r.no_speech_prob) for r in results]


def _storage(encoded: list[np.ndarray]) -> ctranslate2.StorageView:
    return ctranslate2.StorageView.from_array(np.ascontiguousarray(np.stack(encoded)))


def _parts(size: int, workers: int) -> list[slice]:
    """A batch cut into at most ``workers`` contiguous parts of near-equal size."""
    count = max(1, min(size, workers))
    bounds = [round(n * size / count) for n in range(count + 1)]
    return [slice(start, end) for start, end in zip(bounds, bounds[1:])]
