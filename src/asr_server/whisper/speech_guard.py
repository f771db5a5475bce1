"""The speech guard: no text where the audio holds no speech, in Whisper's sequential mode.

Whisper writes text over silence, noise and music ("Thank you.", " ...", "Music Music"). The
guard runs Silero VAD (shipped with faster-whisper) over the whole recording once, before its
first window, and keeps the speech it finds as ``Speech``. The transcription then skips a window
in which no speech was found once its language is known (the first is decoded anyway when the
language must be detected), and drops every segment whose span meets no speech, with its tokens
kept out of the next window's prompt. Speech itself is decoded exactly as without the guard: a
window with speech in it is offered unchanged, so a recording that is speech throughout keeps
faster-whisper's output token for token.

The VAD runs on pieces of ``PIECE_S`` seconds, so that a long recording is never held whole.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps

# Silero VAD's own defaults, as faster-whisper's vad_filter applies them: a speech probability
# of 0.5, and each stretch of speech widened by 400 ms on both sides.
GUARD_VAD = VadOptions()
PIECE_S = 60  # seconds of audio handed to the VAD at once (its memory grows with the piece)
SLACK_S = 0.2  # a segment this close to speech still meets it (timestamps are 20 ms steps)


@dataclass(frozen=True)
class Speech:
    """Where a recording holds speech: (start, end) spans in seconds, in order."""

    spans: tuple[tuple[float, float], ...]

    def meets(self, start: float, end: float) -> bool:
        """Whether any speech lies within ``start``..``end`` (widened by ``SLACK_S``)."""
        return any(s < end + SLACK_S and e > start - SLACK_S for s, e in self.spans)


def find_speech(read: Callable[[int, int], np.ndarray], samples: int, sampling_rate: int) -> Speech:
    """Silero VAD over a recording of ``samples`` samples, read a piece at a time with
    ``read(start, stop)`` (float32)."""
    piece = PIECE_S * sampling_rate
    spans: list[tuple[float, float]] = []
    for offset in range(0, samples, piece):
        audio = read(offset, min(samples, offset + piece))
        for found in get_speech_timestamps(audio, GUARD_VAD, sampling_rate=sampling_rate):
            spans.append(((offset + found["start"]) / sampling_rate, (offset + found["end"]) / sampling_rate))
    return Speech(tuple(spans))
