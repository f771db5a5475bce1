"""A packed window: short clips laid end to end, encoded once, and each clip decoded on its own.

Each clip's own log-mel features, with its own floor, are laid at its offset, and the encoder
runs once over the window. Each clip is then decoded in a sequence of its own, on the window's
encoding with everything outside the clip's span (widened by ``MARGIN_S``) replaced by the
encoding of silence at its floor, and with its start time forced as the first timestamp. So the
decoder of one clip never sees another clip's audio, nor the text written for it, and its
``avg_logprob``, ``no_speech_prob``, ``temperature`` and ``compression_ratio`` are Whisper's
figures for its own decoding, with Whisper's temperature fallback per clip. What the clips of a
pack still share is the encoder pass, whose attention spans the whole window
(docs/architecture.md, packing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from asr_server.whisper.batch_decoding import compression_ratio
from asr_server.whisper.pack_clips import Clip
from asr_server.whisper.timestamps import split_by_timestamps
from asr_server.whisper.transcription import Transcription
from asr_server.whisper.units import Outcome, is_silent

MARGIN_S = 0.3  # encoding kept on either side of a clip: its first and last sounds spread that far


@dataclass
class PackedWindow:
    """Short clips laid end to end in one window; one decoder sequence per clip."""

    clips: list[Clip]
    offsets: list[float]  # where each clip starts in the window, seconds (on the timestamp grid)
    content_s: float = 30.0  # where the clips must end; silence from there to the window's end
    needs_language = False
    refused: list[str] = field(default_factory=list)  # why clips were sent to be decoded alone

    @property
    def parts(self) -> list[Transcription]:
        return [clip.transcription for clip in self.clips]

    @property
    def owner(self) -> Transcription:
        """The clip that stands for the pack's language, options and tokenizer (all share them)."""
        return self.parts[0]

    @property
    def transcriptions(self) -> list[Transcription]:
        return self.parts

    @property
    def batch_key(self) -> tuple[Any, ...]:
        # Its prompts are one timestamp longer than a fresh window's: batched with packs only.
        return ("pack", self.owner.generation_key)

    @property
    def silent_from(self) -> int | None:
        """The feature frame from which the window is silence for certain (see ``Unit``)."""
        engine = self.owner.engine
        frames = int(round(self.content_s / engine.seconds_per_frame))
        return frames if frames < engine.frames_per_window else None

    def spans(self) -> list[tuple[float, float]]:
        return [(offset, offset + part.duration) for offset, part in zip(self.offsets, self.parts)]

    def features(self) -> np.ndarray:
        """Each clip's own log-mel features at its offset, and silence at each clip's own floor
        around it: the gap is split at its middle, and the last clip's silence runs to the
        window's end. Computed per clip, a quiet clip keeps the floor that its own loudest
        sound sets, as when it is decoded alone, whatever its neighbours' loudness."""
        engine = self.owner.engine
        window = np.empty((self.owner.features.shape[0], engine.frames_per_window), np.float32)
        starts = [int(round(offset / engine.seconds_per_frame)) for offset in self.offsets]
        ends = [start + part.content_frames for start, part in zip(starts, self.parts)]
        for n, (part, start, end) in enumerate(zip(self.parts, starts, ends)):
            before = 0 if n == 0 else (ends[n - 1] + start) // 2
            after = engine.frames_per_window if n == len(starts) - 1 else (end + starts[n + 1]) // 2
            window[:, before:after] = _floor(part)
            window[:, start:end] = part.features[:, : part.content_frames]
        return window

    def detection_features(self) -> None:
        return None

    def prompts(self) -> list[list[int]]:
        """One per clip: Whisper's start of transcript, then the clip's start time."""
        sot = self.owner.tokenizer.sot_sequence
        return [[*sot, self._start_token(i)] for i in range(len(self.clips))]

    def _start_token(self, i: int) -> int:
        """The timestamp token of where clip ``i`` starts in the window."""
        return self.owner.tokenizer.timestamp_begin + round(self.offsets[i] / self.owner.engine.time_precision)

    def encodings(self, encoded: np.ndarray) -> list[np.ndarray]:
        """One per clip: the window's encoding over the clip's span, and the encoding of
        silence at the clip's own floor elsewhere."""
        engine = self.owner.engine
        mels = self.owner.features.shape[0]
        per_frame = engine.seconds_per_frame * engine.input_stride  # seconds per encoder position
        out = []
        for (start, end), part in zip(self.spans(), self.parts):
            first = max(0, int((start - MARGIN_S) / per_frame))
            last = min(len(encoded), int(np.ceil((end + MARGIN_S) / per_frame)))
            own = engine.silence(mels, _floor(part)).copy()
            own[first:last] = encoded[first:last]
            out.append(own)
        return out

    def complete(self, outcomes: list[Outcome]) -> None:
        """Hand each clip the segments of its own decoding, or send it to be decoded alone."""
        for i, (clip, outcome) in enumerate(zip(self.clips, outcomes)):
            part = clip.transcription
            if is_silent(part.options, outcome):
                self._refuse(i, "silent")  # Whisper's rule, on the clip's own decoding
                continue
            segments = self._segments(i, outcome)
            if not segments:
                self._refuse(i, "no_text")
                continue
            part.complete_packed(segments)

    def _segments(self, i: int, outcome: Outcome) -> list[dict[str, Any]]:
        """The clip's segments as if it had been decoded alone: times in the clip, timestamp
        tokens that agree with them. Text the decoder wrote after the clip's end (in the
        silence that follows it) is not kept."""
        part = self.parts[i]
        offset = self.offsets[i]
        tokenizer = part.tokenizer
        begin = tokenizer.timestamp_begin
        precision = part.engine.time_precision
        tokens = [self._start_token(i), *outcome.generated.tokens]
        split = split_by_timestamps(tokens, begin, precision, self.spans()[i][1])
        pieces = []
        for piece in split.pieces:
            start = round(max(0.0, piece["start"] - offset), 3)
            end = round(min(max(start, piece["end"] - offset), part.duration), 3)
            text = [t for t in piece["tokens"] if t < begin]
            decoded = tokenizer.decode(text)
            if start >= part.duration or not decoded.strip():
                continue
            pieces.append({"start": start, "end": end, "text": decoded,
                           "tokens": [begin + round(start / precision), *text, begin + round(end / precision)]})
        ratio = compression_ratio("".join(piece["text"] for piece in pieces).strip())
        return [
            {
                "id": 0,
                "seek": 0,  # the clip's one window starts at its beginning, as decoded alone
                **piece,
                "temperature": outcome.temperature,
                "avg_logprob": outcome.avg_logprob,
                "compression_ratio": ratio,
                "no_speech_prob": outcome.generated.no_speech_prob,
            }
            for piece in pieces
        ]

    def _refuse(self, i: int, reason: str) -> None:
        self.clips[i].refuse(reason)
        self.refused.append(reason)


def _floor(part: Transcription) -> float:
    """A clip's own log-mel floor, the level of silence in its features: Whisper clips the
    log-mel 8 (log10) below the loudest value and scales by 1/4, so 2 below its maximum."""
    return float(part.features[:, : part.content_frames].max()) - 2.0
