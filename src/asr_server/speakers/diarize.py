"""Who spoke when in one recording: speech regions, embeddings over sliding windows, clusters.

1. Speech regions from Silero VAD (faster-whisper's, as the speech guard runs it), with pauses
   of 300 ms already splitting regions, since a change of speaker is most often at a pause.
2. Each region's mel spectrogram is cut into windows of 1.6 s every ``STEP_FRAMES`` (a shorter
   region is one window, its frames repeated to the length); each window gets an embedding.
3. The embeddings are clustered (``clustering.cluster``), the first voice heard 0.
4. Each region is split where its windows' labels change (halfway between window centres), and
   pieces shorter than ``MIN_TURN_S`` join a neighbour: the result is a list of turns.

The audio is read a region at a time through ``read(start, stop)``, so a long recording is never
held whole; embeddings are a few hundred floats a window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps

from asr_server.speakers.clustering import THRESHOLD, Hints, cluster
from asr_server.speakers.encoder import HOP, SAMPLING_RATE, WINDOW_FRAMES, Encoder
from asr_server.speakers.labels import Turn

VAD = VadOptions(min_silence_duration_ms=300, speech_pad_ms=100)
PIECE_S = 60  # seconds of audio given to the VAD at once
STEP_FRAMES = 80  # 0.8 s between window starts
MIN_REGION_S = 0.25  # a region shorter than this is not embedded (its words take a neighbour's voice)
MIN_TURN_S = 0.8


def speech_regions(read: Callable[[int, int], np.ndarray], samples: int) -> list[tuple[int, int]]:
    """(start, stop) sample spans of speech, in order."""
    piece = PIECE_S * SAMPLING_RATE
    spans: list[tuple[int, int]] = []
    for offset in range(0, samples, piece):
        audio = read(offset, min(samples, offset + piece))
        for found in get_speech_timestamps(audio, VAD, sampling_rate=SAMPLING_RATE):
            spans.append((offset + found["start"], offset + found["end"]))
    return spans


def _windows(mel: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """A region's mel windows and each one's centre frame."""
    if len(mel) <= WINDOW_FRAMES:
        reps = -(-WINDOW_FRAMES // max(1, len(mel)))
        return np.tile(mel, (reps, 1))[None, :WINDOW_FRAMES], [len(mel) // 2]
    starts = list(range(0, len(mel) - WINDOW_FRAMES + 1, STEP_FRAMES))
    if starts[-1] + WINDOW_FRAMES < len(mel):
        starts.append(len(mel) - WINDOW_FRAMES)
    return np.stack([mel[s:s + WINDOW_FRAMES] for s in starts]), [s + WINDOW_FRAMES // 2 for s in starts]


@dataclass(frozen=True)
class Voices:
    """A recording's speech regions (sample spans), each region's window centres (seconds) and
    the windows' embeddings in order: what clustering needs, to cluster again at no cost."""

    regions: list[tuple[int, int]]
    centres: list[list[float]]
    embeddings: np.ndarray


def embed_speech(read: Callable[[int, int], np.ndarray], samples: int, encoder: Encoder) -> Voices:
    """Steps 1 and 2: the speech regions of a recording of ``samples`` samples at 16 kHz, read
    with ``read``, and their windows' embeddings."""
    regions = [(a, b) for a, b in speech_regions(read, samples) if b - a >= MIN_REGION_S * SAMPLING_RATE]
    embeddings: list[np.ndarray] = []
    centres: list[list[float]] = []
    for start, stop in regions:
        windows, frames = _windows(encoder.mel(read(start, stop)))
        embeddings.append(encoder.embed(windows))
        centres.append([start / SAMPLING_RATE + f * HOP / SAMPLING_RATE for f in frames])
    return Voices(regions, centres, np.concatenate(embeddings) if embeddings else np.zeros((0, encoder.size)))


def turns_of(voices: Voices, hints: Hints | None = None, threshold: float = THRESHOLD) -> list[Turn]:
    """Steps 3 and 4: the embeddings clustered, and the regions cut into turns."""
    if not voices.regions:
        return []
    labels = cluster(voices.embeddings, hints or Hints(), threshold).tolist()
    turns: list[Turn] = []
    at = 0
    for (start, stop), times in zip(voices.regions, voices.centres, strict=True):
        mine, at = labels[at:at + len(times)], at + len(times)
        for piece in _pieces(start / SAMPLING_RATE, stop / SAMPLING_RATE, times, mine):
            if turns and turns[-1].speaker == piece.speaker and piece.start - turns[-1].end < 1e-6:
                turns[-1] = Turn(turns[-1].start, piece.end, piece.speaker)
            else:
                turns.append(piece)
    return turns


def diarize(read: Callable[[int, int], np.ndarray], samples: int, encoder: Encoder,
            hints: Hints | None = None) -> list[Turn]:
    """The turns of a recording of ``samples`` samples at 16 kHz, read with ``read``."""
    return turns_of(embed_speech(read, samples, encoder), hints)


def _pieces(start: float, end: float, times: list[float], labels: list[int]) -> list[Turn]:
    """A region cut where its windows' labels change; short pieces merged into a neighbour."""
    pieces: list[Turn] = []
    for n, label in enumerate(labels):
        left = start if n == 0 else (times[n - 1] + times[n]) / 2
        right = end if n == len(labels) - 1 else (times[n] + times[n + 1]) / 2
        if pieces and pieces[-1].speaker == label:
            pieces[-1] = Turn(pieces[-1].start, right, label)
        else:
            pieces.append(Turn(left, right, label))
    while len(pieces) > 1:
        shortest = min(range(len(pieces)), key=lambda i: pieces[i].end - pieces[i].start)
        short = pieces[shortest]
        if short.end - short.start >= MIN_TURN_S:
            break
        # it joins its longer neighbour, which takes its span
        neighbours = [i for i in (shortest - 1, shortest + 1) if 0 <= i < len(pieces)]
        into = max(neighbours, key=lambda i: pieces[i].end - pieces[i].start)
        kept = pieces[into]
        merged = Turn(min(kept.start, short.start), max(kept.end, short.end), kept.speaker)
        pieces[into] = merged
        del pieces[shortest]
        # neighbours of one speaker now side by side become one
        joined: list[Turn] = []
        for piece in pieces:
            if joined and joined[-1].speaker == piece.speaker:
                joined[-1] = Turn(joined[-1].start, piece.end, piece.speaker)
            else:
                joined.append(piece)
        pieces = joined
    return pieces
