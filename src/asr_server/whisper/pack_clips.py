"""Packing's own state: each short recording as a ``Clip`` (its samples, its rung on the ladder,
the clips it must not meet again), and the ``Clips`` that a scheduler keeps of them.

A clip whose pack cannot give it a clean result climbs one rung of one ladder:

    FIRST_PACK -> SECOND_PACK (apart from the clips it met) -> LAST_RESORT (one window with one
    other such clip, far apart) -> ALONE (decoded on its own, with Whisper's full fallback)

A pack whose window Whisper would skip as silence sends its clips straight to ALONE. Clips are
told apart by ids that are never reused, so a new clip is never kept apart from one long gone.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from asr_server.whisper.transcription import Transcription

_next_id = itertools.count(1).__next__


class Rung(IntEnum):
    FIRST_PACK = 0
    SECOND_PACK = 1
    LAST_RESORT = 2
    ALONE = 3


@dataclass(eq=False)
class Clip:
    """One short recording as packing sees it."""

    transcription: Transcription
    audio: np.ndarray | None  # its samples while it may still be packed
    rung: Rung = Rung.FIRST_PACK
    refused: str = ""  # why it was sent to be decoded alone; "" while it was not
    apart: set[int] = field(default_factory=set)  # ids of the clips it must not share a window with
    tenant: str = ""  # only clips of one tenant share a window (the scheduler's pack_scope)
    id: int = field(default_factory=_next_id)

    @property
    def packable(self) -> bool:
        """Whether it may share a window now: not sent to be decoded alone, its samples kept,
        and its transcription fresh (see ``shareable``)."""
        return self.rung < Rung.ALONE and self.audio is not None and shareable(self.transcription)

    def kept_apart_from(self, other: Clip) -> bool:
        return other.id in self.apart or self.id in other.apart

    def failed(self, reason: str, met: Iterable[Clip]) -> str:
        """A pack could not give it a clean result: climb one rung. Returns what it gets next
        (the reason, for another pack; 'last_resort'), or '' when it is now decoded alone."""
        if self.rung == Rung.FIRST_PACK:
            self.rung = Rung.SECOND_PACK
            self.apart.update(other.id for other in met)
            return reason
        if self.rung == Rung.SECOND_PACK:
            self.rung = Rung.LAST_RESORT
            return "last_resort"
        self.refuse(reason)
        return ""

    def refuse(self, reason: str) -> None:
        """Decode it alone from now on; its samples are no longer needed."""
        self.rung, self.refused, self.audio = Rung.ALONE, reason, None

    def packed(self) -> None:
        """A pack gave it its segments: the samples can go."""
        self.audio = None


def shareable(transcription: Transcription) -> bool:
    """Whether a transcription may share a window with others: untouched, under one window,
    language known, plain timestamped decoding with no prompt."""
    t = transcription
    return (
        t.seek == 0 and 0 < t.content_frames < t.engine.frames_per_window
        and t.language is not None and not t.prompted
        and not t.options.without_timestamps and not t.options.word_timestamps
    )


class Clips:
    """The clips a scheduler holds, by transcription; a task's clips go when the task does."""

    def __init__(self) -> None:
        self._by_transcription: dict[int, Clip] = {}

    def add(self, clip: Clip) -> Clip:
        self._by_transcription[id(clip.transcription)] = clip
        return clip

    def of(self, transcription: Transcription) -> Clip | None:
        clip = self._by_transcription.get(id(transcription))
        return clip if clip is not None and clip.transcription is transcription else None

    def discard(self, transcriptions: Iterable[Transcription]) -> None:
        for transcription in transcriptions:
            if self.of(transcription) is not None:
                del self._by_transcription[id(transcription)]

    def __len__(self) -> int:
        return len(self._by_transcription)
