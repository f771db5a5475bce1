"""The CTranslate2 Whisper engine: arrays in, tokens out.

It knows nothing of HTTP, tasks or Whisper's windowing rules; it loads the model once (through
faster-whisper's ``WhisperModel``, which brings the tokenizer and the feature extractor) and
runs batched encoder, language-detection and decoder calls. CTranslate2 releases the GIL while
it computes, so the event loop and audio decoding keep running beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer

from asr_server.config import ModelConfig
from asr_server.engine.audio import Pcm
from asr_server.engine.log_mel import LogMel, features_of

T = TypeVar("T")


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
    """One loaded Whisper model; safe to call from one engine thread at a time."""

    def __init__(self, model_dir: Path, config: ModelConfig) -> None:
        self._whisper = on_a_passing_thread(lambda: WhisperModel(
            str(model_dir),
            device=config.device,
            device_index=config.device_index,
            compute_type=config.compute_type,
            cpu_threads=config.cpu_threads,
        ))
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

    @property
    def whisper_model(self) -> WhisperModel:
        """The underlying faster-whisper model (for baselines and comparisons)."""
        return self._whisper

    def tokenizer(self, task: str, language: str | None) -> Tokenizer:
        return Tokenizer(self._whisper.hf_tokenizer, self.is_multilingual, task=task, language=language)

    def features(self, audio: np.ndarray) -> np.ndarray:
        """Log-mel features of a whole recording (computed at once, as faster-whisper does)."""
        return self.feature_extractor(audio)

    def features_of(self, pcm: Pcm) -> np.ndarray | LogMel:
        """Log-mel features of decoded samples: at once for a short recording, a window at a
        time into a file for a long one (``log_mel``)."""
        return features_of(pcm, self.feature_extractor)

    def encode(self, windows: list[np.ndarray], trim_at: Sequence[int | None] | None = None) -> list[np.ndarray]:
        """Run the encoder on padded 30 s windows, ``encode_batch_size`` at a time; one host
        array per window (the decoder batch may then combine windows encoded apart).

        A window with ``trim_at[i]`` set is encoded over its first ``trim_at[i]`` feature frames
        only, and its encoding is that long (one position per ``input_stride`` frames): the
        decoder then attends to that much and no more. The encoder's cost grows faster than
        its input on CPU, with a step at 1,024 positions (20.48 s), and the decoder's
        cross-attention grows with the encoding's length (benchmarks/encoder_length.py)."""
        heads = [self.frames_per_window] * len(windows)
        for i, frames in enumerate(trim_at or ()):
            if frames is not None and frames < self.frames_per_window:
                heads[i] = frames
        out: list[np.ndarray] = [np.empty(0)] * len(windows)
        for frames in sorted(set(heads)):
            indices = [i for i, head in enumerate(heads) if head == frames]
            for i, encoding in zip(indices, self._encode([windows[i][:, :frames] for i in indices]), strict=True):
                out[i] = encoding
        return out

    def _encode(self, windows: list[np.ndarray]) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for start in range(0, len(windows), self._encode_batch_size):
            chunk = windows[start : start + self._encode_batch_size]
            batch = ctranslate2.StorageView.from_array(np.ascontiguousarray(np.stack(chunk)))
            out.extend(np.asarray(self.model.encode(batch, to_cpu=self._to_cpu)))
        return out

    def detect_language(self, encoded: list[np.ndarray]) -> list[list[tuple[str, float]]]:
        """Language probabilities per window, best first, codes without markers."""
        results = self.model.detect_language(_storage(encoded))
        return [[(token[2:-2], prob) for token, prob in result] for result in results]

    def add_word_timestamps(self, segments: list[list[dict[str, Any]]], tokenizer: Tokenizer, encoded: np.ndarray,
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
        results = self.model.generate(
            _storage(encoded),
            prompts,
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
        return [Generated(r.sequences_ids[0], r.scores[0], r.no_speech_prob) for r in results]


def on_a_passing_thread(build: Callable[[], T]) -> T:
    """Run ``build`` on a thread that has ended by the time this returns.

    Loading a CTranslate2 model runs OpenMP regions on the loading thread, and libgomp keeps that
    thread's team of workers for as long as the thread lives. Once libgomp manages more threads
    than there are CPUs, its workers stop spinning at barriers and sleep instead, and every later
    decode pays for the wake-ups, so a model loaded on a thread that lives on transcribes markedly
    slower (benchmarks/model_thread.py measures it). A thread that ends takes its team with it.
    Anything that creates a CTranslate2 model outside the engine (the benchmarks' baselines)
    should do it through this too.
    """
    with ThreadPoolExecutor(1, thread_name_prefix="asr-model-load") as pool:
        return pool.submit(build).result()


def _storage(encoded: list[np.ndarray]) -> ctranslate2.StorageView:
    return ctranslate2.StorageView.from_array(np.ascontiguousarray(np.stack(encoded)))
