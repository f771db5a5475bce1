"""VAD-chunked mode: a recording's speech cut into independent chunks of at most 30 s.

This is ``BatchedInferencePipeline``'s way of transcribing: Silero VAD (shipped with
faster-whisper) finds the speech, consecutive speech is grouped into chunks of at most one
window with the silence between removed, and every chunk is decoded on its own, with no text
carried over from the chunk before. Chunks then need no order, so all chunks of all tasks can
share decoder batches. Sequential mode (the default) keeps Whisper's own semantics instead.

Each chunk is a ``Transcription`` of its own audio; this class keeps them together, maps their
times back onto the recording, and answers the scheduler as one task.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps

from asr_server.config import DecodingOptions
from asr_server.whisper.transcription import Transcription, Window
from asr_server.whisper.units import Engine

# BatchedInferencePipeline's VAD settings for 30 s chunks.
VAD_OPTIONS = VadOptions(max_speech_duration_s=30, min_silence_duration_ms=160)


class ChunkedTranscription:
    """One recording transcribed as independent VAD chunks."""

    def __init__(self, audio: np.ndarray, options: DecodingOptions, engine: Engine) -> None:
        rate = engine.sampling_rate
        self.duration = len(audio) / rate
        window = engine.frames_per_window * engine.seconds_per_frame
        speech = get_speech_timestamps(audio, VAD_OPTIONS, sampling_rate=rate)
        groups = group_speech(speech, int(window * rate))
        # No speech found: no chunks, so no text, as with faster-whisper's VAD filter (Whisper shown
        # silence alone tends to invent a word or two).
        self.groups = groups
        # No text is carried from one chunk to the next, nor between windows inside a chunk, so
        # every window starts with an empty prompt and any two can share a batch.
        options = options.model_copy(update={"condition_on_previous_text": False})
        self.parts: list[Transcription] = []
        for group in groups:
            chunk = np.concatenate([audio[piece["start"] : piece["end"]] for piece in group])
            self.parts.append(Transcription(engine.features(chunk), options, engine))
        self._rate = rate
        self._frame_samples = int(round(rate * engine.seconds_per_frame))
        self._language = options.language if engine.is_multilingual else "en"

    # -- what the scheduler asks of a task --------------------------------------------------

    @property
    def language(self) -> str | None:
        return self._language or (self.parts[0].language if self.parts else None)

    @property
    def finished(self) -> bool:
        return all(part.finished for part in self.parts)

    @property
    def seconds_done(self) -> float:
        return sum(part.seconds_done for part in self.parts)

    @property
    def progress(self) -> float:
        total = sum(part.duration for part in self.parts)
        return 1.0 if total <= 0 else min(1.0, self.seconds_done / total)

    def windows(self) -> list[Window]:
        """Every unfinished chunk's next window; only the first chunk's until the language is known
        (it is detected once, on the first chunk, and holds for all)."""
        if self._language is None and self.parts:
            first = self.parts[0]
            if first.language is None:
                window = first.next_window()
                return [window] if window is not None else []
            self._language = first.language
            for part in self.parts[1:]:
                part.set_language(first.language, first.language_probability)
        return [w for w in (part.next_window() for part in self.parts) if w is not None]

    def result(self) -> dict[str, Any]:
        segments: list[dict[str, Any]] = []
        for group, part in zip(self.groups, self.parts, strict=True):
            for segment in part.segments:
                moved = {
                    **segment,
                    "id": len(segments),
                    "seek": group[0]["start"] // self._frame_samples,
                    "start": self._original_time(group, segment["start"], is_end=False),
                    "end": self._original_time(group, segment["end"], is_end=True),
                }
                if "words" in segment:
                    moved["words"] = [
                        {**word, "start": self._original_time(group, word["start"], is_end=False),
                         "end": self._original_time(group, word["end"], is_end=True)}
                        for word in segment["words"]
                    ]
                segments.append(moved)
        return {"text": "".join(s["text"] for s in segments), "segments": segments, "language": self.language}

    def _original_time(self, group: list[dict[str, int]], seconds: float, is_end: bool) -> float:
        """A time within a chunk's concatenated speech, as a time in the recording."""
        elapsed = 0.0
        for n, piece in enumerate(group):
            length = (piece["end"] - piece["start"]) / self._rate
            last = n == len(group) - 1
            if seconds < elapsed + length or (is_end and seconds <= elapsed + length) or last:
                return round(piece["start"] / self._rate + max(0.0, seconds - elapsed), 3)
            elapsed += length
        return round(seconds, 3)


def group_speech(speech: list[dict[str, int]], max_samples: int) -> list[list[dict[str, int]]]:
    """Consecutive speech pieces, grouped while their total stays within one window."""
    groups: list[list[dict[str, int]]] = []
    total = 0
    for piece in speech:
        length = piece["end"] - piece["start"]
        if groups and total + length <= max_samples:
            groups[-1].append(piece)
            total += length
        else:
            groups.append([piece])
            total = length
    return groups
