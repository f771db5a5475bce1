"""Packing's own state: each short recording as a ``Clip`` (whose it is, and whether it must now
be decoded alone), and the ``Clips`` that a scheduler keeps of them.

A packed clip is decoded on its own (``PackedWindow``), so a pack never gives it another
clip's text; a clip whose pack cannot give it a result that Whisper would keep (its decoding
judged silent, or no text at all) is decoded alone from then on, with Whisper's full rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from asr_server.whisper.transcription import Transcription


@dataclass(eq=False)
class Clip:
    """One short recording as packing sees it."""

    transcription: Transcription
    refused: str = ""  # why it is decoded alone; "" while it may be packed
    tenant: str = ""  # only clips of one tenant share a window (the scheduler's pack_scope)

    @property
    def packable(self) -> bool:
        """Whether it may share a window now: not sent to be decoded alone, and its
        transcription fresh (see ``shareable``: a packed clip is finished, so no longer)."""
        return not self.refused and shareable(self.transcription)

    def refuse(self, reason: str) -> None:
        """Decode it alone from now on."""
        self.refused = reason


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
