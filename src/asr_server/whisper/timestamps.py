"""Whisper's timestamp rule: a window's tokens cut into segments at consecutive timestamp tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
