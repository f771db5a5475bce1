"""Whisper's sequential transcription, as a state machine advanced one window at a time.

``Transcription`` mirrors faster-whisper's ``WhisperModel.generate_segments`` loop (seek,
previous-text prompt, temperature fallback, no-speech skip, timestamp splitting) but instead of
calling the model itself it hands out ``Window`` units and takes their outcomes back, so that a
scheduler can decode windows of many recordings in one batch (``batch_decoding``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_suppressed_tokens

from asr_server.config import DecodingOptions
from asr_server.engine.log_mel import LogMel
from asr_server.engine.whisper_engine import GenerateParams
from asr_server.whisper.speech_guard import Speech
from asr_server.whisper.timestamps import split_by_timestamps
from asr_server.whisper.units import Engine, Outcome, is_silent

PROMPT_LANGUAGE = "en"  # builds the tokenizer that encodes an initial prompt before detection
TRIM_GRID_FRAMES = 100  # trimmed encodings are whole seconds long, so that batches share a length


@dataclass(frozen=True)
class TrimRule:
    """How a recording shorter than one window is trimmed (``Window.encoder_frames``): one rule
    for every recording a scheduler trims."""

    margin_frames: int  # padding kept after the audio
    detection_below: float | None = None  # None: a clip whose language is unknown is encoded whole;
    # else it is trimmed too, and detected again longer when the top language is below this


@dataclass
class Window:
    """One 30 s window of one transcription, ready to be batched."""

    owner: Transcription
    seek: int
    size: int
    previous_tokens: list[int]
    needs_language: bool

    def complete(self, outcome: Outcome) -> None:
        self.owner.complete(self, outcome)

    @property
    def batch_key(self) -> tuple[Any, ...]:
        """Windows with equal keys can share a generate() call: same <|startoftranscript|>
        position (CTranslate2's rule) and the same decoding parameters."""
        prompt_prefix = len(self.previous_tokens) + 1 if self.previous_tokens else 0
        return (prompt_prefix, self.owner.generation_key)

    def features(self) -> np.ndarray:
        return pad_or_trim(self.owner.features[:, self.seek : self.seek + self.size])

    @property
    def encoder_frames(self) -> int | None:
        """How far this window is encoded when it is trimmed, or None to encode it whole.

        A recording shorter than one window is trimmed by its owner's ``TrimRule``: encoded over
        its own frames and the rule's margin of the padding after them (rounded up to a second),
        and decoded on that encoding alone (``WhisperEngine.encode``). Both the encoder and the
        decoder's cross-attention then cost a fraction of a 30 s window's, and nothing of any
        other recording is in the computation. With word timestamps, or without a rule
        (``scheduler.trim_short_clips`` off, or a task sent with ``pack=false``), the window is
        encoded whole, exactly as faster-whisper does. A window whose language is still to be
        detected is trimmed only when the rule says below what probability to detect it again
        (see ``batch_decoding.decode_windows``)."""
        owner = self.owner
        rule = owner.trim
        if rule is None or self.seek != 0 or owner.options.word_timestamps:
            return None
        if self.needs_language and rule.detection_below is None:
            return None
        frames = int(np.ceil((owner.content_frames + rule.margin_frames) / TRIM_GRID_FRAMES) * TRIM_GRID_FRAMES)
        return frames if frames < owner.engine.frames_per_window else None

    def detection_features(self) -> np.ndarray | None:
        """The features faster-whisper detects the language on, when they differ from the
        window's own: a recording shorter than a window keeps its last feature frame there."""
        if self.size == self.owner.engine.frames_per_window:
            return None
        return pad_or_trim(self.owner.features[:, self.seek : self.seek + self.owner.engine.frames_per_window])

    def prompt(self) -> list[int]:
        tokenizer = self.owner.tokenizer
        prompt: list[int] = []
        if self.previous_tokens:
            prompt.append(tokenizer.sot_prev)
            prompt.extend(self.previous_tokens)
        prompt.extend(tokenizer.sot_sequence)
        if self.owner.options.without_timestamps:
            prompt.append(tokenizer.no_timestamps)
        return prompt


@dataclass(eq=False)  # a state machine: identity, not value, tells two apart
class Transcription:
    """The state of one recording's transcription between windows."""

    features: np.ndarray | LogMel  # (mels, frames), read a window at a time
    options: DecodingOptions
    engine: Engine
    seek: int = 0
    language: str | None = None
    language_probability: float = 1.0
    segments: list[dict[str, Any]] = field(default_factory=list)
    trim: TrimRule | None = None  # None: never trimmed (see Window.encoder_frames)
    speech: Speech | None = None  # where the speech guard found speech; None: no guard
    prompt_bucket: int | None = None  # previous-text prompts cut to a multiple of this; None: whole
    _last_speech: float = 0.0
    _all_tokens: list[int] = field(default_factory=list)
    _prompt_reset_since: int = 0
    _tokenizer: Tokenizer | None = None

    def __post_init__(self) -> None:
        self.content_frames = self.features.shape[-1] - 1
        self.duration = float(self.content_frames * self.engine.seconds_per_frame)
        language = self.options.language
        if not self.engine.is_multilingual:
            language = "en"
        if language is not None:
            self.set_language(language, 1.0)
        if self.options.initial_prompt is not None:
            # A text's tokens do not depend on the tokenizer's language, which a multilingual
            # tokenizer needs to be built: any one encodes the prompt before detection.
            tokenizer = self._tokenizer or self.engine.tokenizer(self.options.task, PROMPT_LANGUAGE)
            self._all_tokens.extend(tokenizer.encode(" " + self.options.initial_prompt.strip()))
        max_length = self.engine.max_length
        self.generation_key = (
            self.options.beam_size, self.options.best_of, self.options.patience,
            self.options.length_penalty, self.options.repetition_penalty,
            self.options.no_repeat_ngram_size, self.options.temperatures,
            self.options.suppress_blank, self.options.suppress_tokens,
            self.options.max_initial_timestamp, self.options.max_new_tokens,
            self.options.without_timestamps, max_length,
        )

    # -- the scheduler's view ------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.seek >= self.content_frames

    @property
    def progress(self) -> float:
        if self.content_frames <= 0:
            return 1.0
        return min(1.0, self.seek / self.content_frames)

    def release(self) -> None:
        """Give back what the features hold (a long recording's file) once nothing more will
        be decoded."""
        if isinstance(self.features, LogMel):
            self.features.close()

    @property
    def seconds_done(self) -> float:
        return min(self.seek, self.content_frames) * self.engine.seconds_per_frame

    @property
    def parts(self) -> list[Transcription]:
        """The transcriptions whose windows this task offers (one here; several when chunked)."""
        return [self]

    def windows(self) -> list[Window]:
        window = self.next_window()
        return [window] if window is not None else []

    @property
    def tokenizer(self) -> Tokenizer:
        assert self._tokenizer is not None, "language not known yet"
        return self._tokenizer

    def set_language(self, language: str, probability: float) -> None:
        self.language = language
        self.language_probability = probability
        self._tokenizer = self.engine.tokenizer(self.options.task, language)

    def next_window(self) -> Window | None:
        """The window at the current seek position, or None when the recording is done. With
        the speech guard, windows without speech are passed over once the language is known."""
        if self.speech is not None and self.language is not None:
            while not self.finished and not self._has_speech(*self._window_span()):
                self.seek += min(self.engine.frames_per_window, self.content_frames - self.seek)
        if self.finished:
            return None
        size = min(self.engine.frames_per_window, self.content_frames - self.seek)
        previous = self._all_tokens[self._prompt_reset_since :]
        previous = previous[-(self.engine.max_length // 2 - 1) :] if previous else []
        if self.prompt_bucket and len(previous) >= self.prompt_bucket:
            # Cut to a multiple of the bucket, oldest tokens first, as Whisper's own cap cuts:
            # windows of different recordings then share a prompt length, and so a batch.
            previous = previous[len(previous) % self.prompt_bucket :]
        return Window(self, self.seek, size, previous, needs_language=self.language is None)

    def covers(self, window: Window, outcome: Outcome) -> bool:
        """Whether taking this outcome would leave nothing of the recording to decode."""
        if is_silent(self.options, outcome):
            return window.seek + window.size >= self.content_frames
        _, seek = self._split_by_timestamps(outcome.generated.tokens, window)
        return seek >= self.content_frames

    def complete(self, window: Window, outcome: Outcome) -> None:
        """Take a window's outcome: append its segments and move the seek position on."""
        assert window.seek == self.seek, "outcomes must arrive in window order"
        options = self.options
        result = outcome.generated
        if is_silent(options, outcome):
            self.seek += window.size
            return

        previous_seek = self.seek
        pieces, self.seek = self._split_by_timestamps(result.tokens, window)
        if options.word_timestamps:
            self._add_words(pieces, window, outcome)
        self._end_within_recording(pieces)
        for piece in pieces:
            tokens = piece["tokens"]
            text = self.tokenizer.decode(tokens)
            if piece["start"] == piece["end"] or not text.strip():
                continue
            if not self._has_speech(piece["start"], piece["end"]):
                continue  # the guard: text the audio does not hold, kept out of the prompt too
            self._all_tokens.extend(tokens)
            segment = {
                "id": len(self.segments),
                "seek": previous_seek,
                "start": round(piece["start"], 3),
                "end": round(piece["end"], 3),
                "text": text,
                "tokens": tokens,
                "temperature": outcome.temperature,
                "avg_logprob": outcome.avg_logprob,
                "compression_ratio": outcome.compression_ratio,
                "no_speech_prob": result.no_speech_prob,
            }
            if options.word_timestamps:
                segment["words"] = piece.get("words", [])
            self.segments.append(segment)
        if not options.condition_on_previous_text or outcome.temperature > options.prompt_reset_on_temperature:
            self._prompt_reset_since = len(self._all_tokens)

    def _end_within_recording(self, pieces: list[dict[str, Any]]) -> None:
        """No segment or word ends after the recording. A window's timestamps may run into the
        padding after its audio (a trimmed clip cut at a longer neighbour's length reads some
        of it as time); what lies past the end is the end. A piece wholly past it is then
        empty, and dropped with the others that are."""
        end = self.duration
        for piece in pieces:
            piece["start"], piece["end"] = min(piece["start"], end), min(piece["end"], end)
            for word in piece.get("words", []):
                word["start"], word["end"] = min(word["start"], end), min(word["end"], end)

    def _has_speech(self, start: float, end: float) -> bool:
        return self.speech is None or self.speech.meets(start, end)

    def _window_span(self) -> tuple[float, float]:
        size = min(self.engine.frames_per_window, self.content_frames - self.seek)
        return self.seek * self.engine.seconds_per_frame, (self.seek + size) * self.engine.seconds_per_frame

    def _add_words(self, pieces: list[dict[str, Any]], window: Window, outcome: Outcome) -> None:
        """Word timings, as faster-whisper's word_timestamps gives them: aligned on the decoder's
        cross-attention, then used to set segment edges and, when the window ended mid-segment,
        where the next window starts."""
        assert outcome.encoded is not None, "word timestamps need the window's encoding"
        for piece in pieces:
            piece["seek"] = window.seek
        options = self.options
        self._last_speech = self.engine.add_word_timestamps(
            [pieces], self.tokenizer, outcome.encoded, window.size,
            options.prepend_punctuations, options.append_punctuations, self._last_speech,
        )
        tokens = outcome.generated.tokens
        begin = self.tokenizer.timestamp_begin
        single_timestamp_ending = len(tokens) >= 2 and tokens[-2] < begin <= tokens[-1]
        if not single_timestamp_ending:
            ends = [w["end"] for piece in pieces for w in piece.get("words", [])]
            last_end = ends[-1] if ends else (pieces[-1]["end"] if pieces else None)
            if last_end is not None and last_end > window.seek * self.engine.seconds_per_frame:
                self.seek = round(last_end * self.engine.frames_per_second)

    def result(self) -> dict[str, Any]:
        """Whisper's transcribe() output: text, segments, language."""
        return {
            "text": "".join(segment["text"] for segment in self.segments),
            "segments": self.segments,
            "language": self.language,
        }

    # -- decoding parameters ---------------------------------------------------------------

    def generate_params(self, prompt_length: int, temperature: float) -> GenerateParams:
        options = self.options
        max_length = self.engine.max_length
        if options.max_new_tokens is not None:
            max_length = min(max_length, prompt_length + options.max_new_tokens)
        suppress = options.suppress_tokens
        if suppress:
            suppress = get_suppressed_tokens(self.tokenizer, list(suppress))
        return GenerateParams(
            beam_size=options.beam_size,
            patience=options.patience,
            length_penalty=options.length_penalty,
            repetition_penalty=options.repetition_penalty,
            no_repeat_ngram_size=options.no_repeat_ngram_size,
            max_length=max_length,
            suppress_blank=options.suppress_blank,
            suppress_tokens=tuple(suppress or ()),
            max_initial_timestamp_index=int(round(options.max_initial_timestamp / self.engine.time_precision)),
            temperature=temperature,
            best_of=options.best_of,
        )

    def needs_fallback(self, outcome: Outcome) -> bool:
        options = self.options
        needed = False
        if (options.compression_ratio_threshold is not None
                and outcome.compression_ratio > options.compression_ratio_threshold):
            needed = True  # too repetitive
        if options.log_prob_threshold is not None and outcome.avg_logprob < options.log_prob_threshold:
            needed = True  # too improbable
            if (options.no_speech_threshold is not None
                    and outcome.generated.no_speech_prob > options.no_speech_threshold):
                needed = False  # silence: falling back will not help
        return needed

    def _split_by_timestamps(self, tokens: list[int], window: Window) -> tuple[list[dict[str, Any]], int]:
        """Cut a window's tokens into segments (times in the recording) and find the next seek."""
        split = split_by_timestamps(tokens, self.tokenizer.timestamp_begin, self.engine.time_precision,
                                    window.size * self.engine.seconds_per_frame)
        time_offset = window.seek * self.engine.seconds_per_frame
        pieces = [{**piece, "start": time_offset + piece["start"], "end": time_offset + piece["end"]}
                  for piece in split.pieces]
        if split.last_timestamp is None:
            return pieces, window.seek + window.size
        return pieces, window.seek + split.last_timestamp * self.engine.input_stride
