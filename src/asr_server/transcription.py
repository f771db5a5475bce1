"""Whisper's sequential transcription, as a state machine advanced one window at a time.

``Transcription`` mirrors faster-whisper's ``WhisperModel.generate_segments`` loop (seek,
previous-text prompt, temperature fallback, no-speech skip, timestamp splitting) but instead of
calling the model itself it hands out ``Window`` units and takes their outcomes back, so that a
scheduler can decode windows of many recordings in one batch. ``decode_windows`` runs a batch of
windows through an engine with Whisper's temperature fallback, batched per temperature.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_suppressed_tokens

from .config import DecodingOptions
from .engine import GenerateParams, Generated


MAX_PACK_ATTEMPTS = 2  # a clip that two packs could not give a clean result is decoded alone


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
    def encode(self, windows: list[np.ndarray], silent_from: Sequence[int | None] | None = None) -> list[np.ndarray]: ...
    def detect_language(self, encoded: list[np.ndarray]) -> list[list[tuple[str, float]]]: ...
    def generate(self, encoded: list[np.ndarray], prompts: list[list[int]], params: GenerateParams) -> list[Generated]: ...
    def add_word_timestamps(self, segments: list[list[dict[str, Any]]], tokenizer: Tokenizer, encoded: np.ndarray,
                            num_frames: int, prepend: str, append: str, last_speech: float) -> float: ...
    def align(self, tokenizer: Tokenizer, text_tokens: list[int], encoded: np.ndarray, num_frames: int) -> list[dict[str, Any]]: ...


class Unit(Protocol):
    """One item of a decoder batch: a task's window (``Window``) or several packed clips."""

    needs_language: bool
    retry_on_fallback: bool

    @property
    def owner(self) -> "Transcription": ...
    @property
    def transcriptions(self) -> list["Transcription"]: ...
    @property
    def batch_key(self) -> tuple[Any, ...]: ...
    def features(self) -> np.ndarray: ...
    def detection_features(self) -> np.ndarray | None: ...
    def prompt(self) -> list[int]: ...
    @property
    def silent_from(self) -> int | None:
        """A feature frame from which the window is silence for certain, which lets the engine
        encode only up to there (``WhisperEngine.encode``); None: encode it whole, exactly."""
    def complete(self, outcome: "Outcome") -> None: ...


@dataclass
class Window:
    """One 30 s window of one transcription, ready to be batched."""

    owner: "Transcription"
    seek: int
    size: int
    previous_tokens: list[int]
    needs_language: bool
    retry_on_fallback: ClassVar[bool] = True

    @property
    def transcriptions(self) -> list["Transcription"]:
        return [self.owner]

    def complete(self, outcome: "Outcome") -> None:
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
    def silent_from(self) -> int | None:
        """A recording of at most ``short_frames`` is feature padding after it, and its window
        may be encoded only that far (see ``Unit``) once its language is known; longer ones, and
        every window when the owner has no ``short_frames``, are encoded whole, as
        faster-whisper does. The scheduler sets it with packing on, whose clips are encoded so
        too (``scheduler.pack_fill_s``). Not for detection: on such an encoding a 2.4 s Mandarin
        clip was taken for English and came back empty (RESULTS.md, session 11)."""
        frames = self.owner.short_frames
        if (frames is not None and not self.needs_language and self.seek == 0
                and self.owner.content_frames <= frames):
            return frames
        return None

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


@dataclass
class Outcome:
    """A window's accepted decoding after temperature fallback."""

    generated: Generated
    avg_logprob: float
    temperature: float
    compression_ratio: float
    encoded: np.ndarray | None = None  # the window's encoder output, for word timestamps


@dataclass(eq=False)  # a state machine: identity, not value, tells two apart
class Transcription:
    """The state of one recording's transcription between windows."""

    features: np.ndarray
    options: DecodingOptions
    engine: Engine
    seek: int = 0
    language: str | None = None
    language_probability: float = 1.0
    segments: list[dict[str, Any]] = field(default_factory=list)
    windows_done: int = 0
    audio: np.ndarray | None = None  # kept only for clips short enough to be packed
    short_frames: int | None = None  # a recording this short may be encoded cheaply (Window.silent_from)
    pack_refused: str = ""  # why a pack could not give this clip a clean result; "" = it did not refuse
    pack_attempts: int = 0
    pack_apart: set[int] = field(default_factory=set)  # ids of clips it must not share a pack with again
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
            # The prompt tokens do not depend on the language: encode with a neutral tokenizer.
            tokenizer = self._tokenizer or self.engine.tokenizer(self.options.task, None)
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

    @property
    def seconds_done(self) -> float:
        return min(self.seek, self.content_frames) * self.engine.seconds_per_frame

    @property
    def parts(self) -> list["Transcription"]:
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

    @property
    def packable(self) -> bool:
        """Whether this clip may share a window with others (see ``packing``): untouched,
        under one window, language known, plain timestamped decoding with no prompt."""
        return (
            self.audio is not None and not self.pack_refused
            and self.pack_attempts <= MAX_PACK_ATTEMPTS  # the last one: a last-resort pair
            and self.seek == 0 and self.content_frames > 0
            and self.language is not None and not self._all_tokens
            and not self.options.without_timestamps and not self.options.word_timestamps
            and self.content_frames < self.engine.frames_per_window
        )

    @property
    def last_resort(self) -> bool:
        """Its packs could not give it a clean result, and it has not been refused: it may share
        one more window, with one other such clip, far apart (``packing._pairs``)."""
        return self.pack_attempts == MAX_PACK_ATTEMPTS and not self.pack_refused

    def complete_packed(self, segments: list[dict[str, Any]]) -> None:
        """Take the segments a pack gave this clip: the clip is then done."""
        self.windows_done += 1
        self.segments = [{**segment, "id": i} for i, segment in enumerate(segments)]
        self.seek = self.content_frames
        self.audio = None

    def next_window(self) -> Window | None:
        """The window at the current seek position, or None when the recording is done."""
        if self.finished:
            return None
        size = min(self.engine.frames_per_window, self.content_frames - self.seek)
        previous = self._all_tokens[self._prompt_reset_since :]
        previous = previous[-(self.engine.max_length // 2 - 1) :] if previous else []
        return Window(self, self.seek, size, previous, needs_language=self.language is None)

    def complete(self, window: Window, outcome: Outcome) -> None:
        """Take a window's outcome: append its segments and move the seek position on."""
        assert window.seek == self.seek, "outcomes must arrive in window order"
        options = self.options
        self.windows_done += 1
        result = outcome.generated
        if options.no_speech_threshold is not None:
            should_skip = result.no_speech_prob > options.no_speech_threshold
            if options.log_prob_threshold is not None and outcome.avg_logprob > options.log_prob_threshold:
                should_skip = False
            if should_skip:
                self.seek += window.size
                return

        previous_seek = self.seek
        pieces, self.seek = self._split_by_timestamps(result.tokens, window)
        if options.word_timestamps:
            self._add_words(pieces, window, outcome)
        for piece in pieces:
            tokens = piece["tokens"]
            text = self.tokenizer.decode(tokens)
            if piece["start"] == piece["end"] or not text.strip():
                continue
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
        if options.compression_ratio_threshold is not None and outcome.compression_ratio > options.compression_ratio_threshold:
            needed = True  # too repetitive
        if options.log_prob_threshold is not None and outcome.avg_logprob < options.log_prob_threshold:
            needed = True  # too improbable
            if options.no_speech_threshold is not None and outcome.generated.no_speech_prob > options.no_speech_threshold:
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


@dataclass
class Split:
    """A window's tokens cut into segments; times are seconds from the window's start.

    ``last_timestamp`` (in timestamp steps) is where the model stopped with text still to come,
    the point Whisper seeks to next; None when the model finished the window."""

    pieces: list[dict[str, Any]]
    last_timestamp: int | None


def split_by_timestamps(tokens: list[int], timestamp_begin: int, precision: float, window_seconds: float) -> Split:
    """Whisper's rule: a segment ends at every pair of consecutive timestamp tokens."""
    begin = timestamp_begin
    pieces: list[dict[str, Any]] = []
    single_timestamp_ending = len(tokens) >= 2 and tokens[-2] < begin <= tokens[-1]
    consecutive = [i for i in range(1, len(tokens)) if tokens[i] >= begin and tokens[i - 1] >= begin]
    if consecutive:
        slices = consecutive + ([len(tokens)] if single_timestamp_ending else [])
        last = 0
        for current in slices:
            sliced = tokens[last:current]
            pieces.append(
                {"start": (sliced[0] - begin) * precision, "end": (sliced[-1] - begin) * precision, "tokens": sliced}
            )
            last = current
        if single_timestamp_ending:
            return Split(pieces, None)
        return Split(pieces, tokens[last - 1] - begin)
    duration = window_seconds
    timestamps = [t for t in tokens if t >= begin]
    if timestamps and timestamps[-1] != begin:
        duration = (timestamps[-1] - begin) * precision
    return Split([{"start": 0.0, "end": duration, "tokens": tokens}], None)


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data))


def decode_windows(engine: Engine, windows: Sequence[Unit], detect_on_window: bool = False) -> list[Outcome]:
    """Encode, detect languages and decode a batch of windows that share a batch key.

    Language detection runs on exactly the features faster-whisper uses, which for a recording
    shorter than 30 s costs one more encoder pass; ``detect_on_window`` reuses the window's own
    encoding instead (faster, and the same language but in rare near-ties).
    Temperature fallback is batched too: the windows that fail at one temperature are decoded
    again together at the next, as faster-whisper does one window at a time.
    """
    if len({w.batch_key for w in windows}) > 1:
        raise ValueError("windows of one batch must share a batch key")
    inputs = [w.features() for w in windows]
    undetected = [i for i, w in enumerate(windows) if w.needs_language]
    detect_from = {i: i for i in undetected}
    if not detect_on_window:
        for i in undetected:
            own = windows[i].detection_features()
            if own is not None:
                detect_from[i] = len(inputs)
                inputs.append(own)
    encoded = engine.encode(inputs, [w.silent_from for w in windows] + [None] * (len(inputs) - len(windows)))
    if undetected:
        probabilities = engine.detect_language([encoded[detect_from[i]] for i in undetected])
        for i, probs in zip(undetected, probabilities):
            language, probability = probs[0]
            windows[i].owner.set_language(language, probability)
    prompts = [w.prompt() for w in windows]
    lead = windows[0].owner
    temperatures = lead.options.temperatures
    tried: list[list[Outcome]] = [[] for _ in windows]
    accepted: list[Outcome | None] = [None] * len(windows)
    pending = list(range(len(windows)))
    for temperature in temperatures:
        if not pending:
            break
        params = lead.generate_params(len(prompts[pending[0]]), temperature)
        generated = engine.generate([encoded[i] for i in pending], [prompts[i] for i in pending], params)
        still_pending = []
        for i, result in zip(pending, generated):
            owner = windows[i].owner
            length = len(result.tokens)
            avg_logprob = result.score * (length ** owner.options.length_penalty) / (length + 1)
            ratio = compression_ratio(owner.tokenizer.decode(result.tokens).strip())
            outcome = Outcome(result, avg_logprob, temperature, ratio, encoded[i])
            tried[i].append(outcome)
            if windows[i].retry_on_fallback and owner.needs_fallback(outcome):
                still_pending.append(i)
            else:
                accepted[i] = outcome
        pending = still_pending
    for i in pending:
        # Every temperature failed: keep the most probable decoding among those that were not
        # too repetitive (or among all), reported at the last temperature, as faster-whisper does.
        owner = windows[i].owner
        threshold = owner.options.compression_ratio_threshold
        candidates = [o for o in tried[i] if threshold is not None and o.compression_ratio <= threshold] or tried[i]
        best = max(candidates, key=lambda o: o.avg_logprob)
        accepted[i] = Outcome(best.generated, best.avg_logprob, temperatures[-1], best.compression_ratio, best.encoded)
    return [outcome for outcome in accepted if outcome is not None]
