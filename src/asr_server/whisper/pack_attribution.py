"""A packed window: short clips laid end to end, decoded once, and each clip given its own text.

``PackedWindow`` is a batch unit like ``transcription.Window``. Its ``complete`` attributes the
window's segments to the clips whose spans they cover, cuts a segment the model wrote across a
gap where its aligned words fall cleanly on either side (``_cut_at_gaps``), and sends back every
clip whose result is doubtful: another pack away from the clips it met, a last-resort pair, or
decoding alone (see ``pack_layout`` for how clips are laid out).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from faster_whisper.audio import pad_or_trim
from faster_whisper.transcribe import merge_punctuations

from asr_server.whisper.batch_decoding import compression_ratio
from asr_server.whisper.timestamps import split_by_timestamps
from asr_server.whisper.pack_clips import Clip
from asr_server.whisper.transcription import Transcription
from asr_server.whisper.units import Outcome, is_silent

@dataclass
class PackedWindow:
    """Short clips laid end to end in one window; batched like any other fresh window."""

    clips: list[Clip]
    offsets: list[float]  # where each clip starts in the window, seconds
    gap_s: float
    cut_at_gaps: bool = True  # see _cut_at_gaps; false sends both clips to another pack
    content_s: float = 30.0  # where the clips must end; silence from there to the window's end
    needs_language = False
    retry_on_fallback = False  # a doubtful pack's clips are packed again instead (see complete)
    retried: list[str] = field(default_factory=list)  # why clips were given another pack
    refused: list[str] = field(default_factory=list)  # why clips were sent to be decoded alone
    cuts: int = 0  # segments cut at a gap by their words' times (see _cut_at_gaps)

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
        return (0, self.owner.generation_key)

    @property
    def silent_from(self) -> int | None:
        """The feature frame from which the window is silence for certain (see ``Unit``)."""
        engine = self.owner.engine
        frames = int(round(self.content_s / engine.seconds_per_frame))
        return frames if frames < engine.frames_per_window else None

    def spans(self) -> list[tuple[float, float]]:
        return [(offset, offset + part.duration) for offset, part in zip(self.offsets, self.parts)]

    def audio(self) -> np.ndarray:
        """The clips' samples at their offsets, with silence between them and after the last
        one to the window's end.

        The silence at the end matters. Left to the feature padding (log-mel frames of zero,
        unlike the gaps' silent samples, as faster-whisper pads a lone clip), the window made
        the model stop before the last clip, writing only its start time, far more often than
        with silent samples (benchmarks/packing.py)."""
        engine = self.owner.engine
        rate = engine.sampling_rate
        clips = [clip.audio for clip in self.clips]
        assert all(clip is not None for clip in clips), "only clips that kept their audio are packed"
        window = int(round(engine.frames_per_window * engine.seconds_per_frame * rate))
        audio = np.zeros(max(window, int(round(self.offsets[-1] * rate)) + len(clips[-1])), dtype=np.float32)
        for offset, clip in zip(self.offsets, clips):
            start = int(round(offset * rate))
            audio[start : start + len(clip)] = clip
        return audio

    @property
    def tolerance(self) -> float:
        """How far a segment may reach past its clip into the gap: Whisper's timestamps run
        late by a few hundred milliseconds in long windows. A third of the gap."""
        return self.gap_s / 3

    def features(self) -> np.ndarray:
        features = self.owner.engine.features(self.audio())
        return pad_or_trim(features[:, : features.shape[-1] - 1])

    def detection_features(self) -> None:
        return None

    def prompt(self) -> list[int]:
        return list(self.owner.tokenizer.sot_sequence)

    def complete(self, outcome: Outcome) -> None:
        """Hand each clip its segments, or send it back to be decoded alone."""
        owner = self.owner
        options = owner.options
        # Whisper's own rule for a silent window: no speech, and no confident text either.
        if is_silent(options, outcome):
            self._refuse(range(len(self.parts)), "silent")
            return
        if owner.needs_fallback(outcome):
            # Often the model wrote the first clip and stopped, improbably early; which clip
            # threw it is unknown, so each gets another pack, away from the others.
            everyone = set(range(len(self.parts)))
            self._retry(sorted(everyone), "fallback", {i: everyone - {i} for i in everyone})
            return
        tokenizer = owner.tokenizer
        spans = self.spans()
        split = split_by_timestamps(outcome.generated.tokens, tokenizer.timestamp_begin,
                                    owner.engine.time_precision, spans[-1][1])
        reached = spans[-1][1] if split.last_timestamp is None else split.last_timestamp * owner.engine.time_precision
        pieces = self._cut_at_gaps([{**piece, "text": tokenizer.decode(piece["tokens"])} for piece in split.pieces],
                                   outcome)
        pieces = [piece for piece in pieces if piece["start"] != piece["end"] and piece["text"].strip()]
        tolerance = self.tolerance
        refused: list[int] = []  # segments reaching into two clips
        in_gap: list[int] = []  # next to a segment that lies wholly in silence
        empty: list[int] = []  # reached, but no text
        unreached: list[int] = []  # after where the model stopped
        met: dict[int, set[int]] = {}  # the clips each doubtful clip must be kept apart from
        assigned: list[list[dict[str, Any]]] = [[] for _ in self.parts]
        for piece in pieces:
            overlaps = self._overlaps(piece)
            if _straddles(overlaps, tolerance):
                # Text of two clips in one segment: neither can have a clean result.
                covered = {i for i, overlap in enumerate(overlaps) if overlap > 0}
                refused.extend(covered)
                _meet(met, covered)
                continue
            if max(overlaps) == 0:
                # Text where no clip is: drifted times or words made up in the silence. It
                # belongs to no clip for certain, so the clips on either side are not clean.
                before = [i for i, (_, end) in enumerate(spans) if end <= piece["start"]]
                after = [i for i, (start, _) in enumerate(spans) if start >= piece["end"]]
                beside = set(before[-1:] + after[:1])
                in_gap.extend(beside)
                _meet(met, beside)
                continue
            assigned[self._clip_at((piece["start"] + piece["end"]) / 2)].append(piece)
        for i, (part, (start, end)) in enumerate(zip(self.parts, spans)):
            if i in refused or i in in_gap:
                continue  # in a straddling segment, or beside text in a gap: retried once
            if end > reached + tolerance:
                unreached.append(i)
                continue
            if not assigned[i]:
                empty.append(i)  # reached but no text: the model may have read it into a neighbour
                met[i] = {n for n in (i - 1, i + 1) if 0 <= n < len(self.parts)}
                continue
            part.complete_packed(self._segments(part, start, assigned[i], outcome))
            self.clips[i].packed()
        self._retry(sorted(set(refused)), "straddle", met)
        self._retry(sorted(set(in_gap) - set(refused)), "in_gap", met)
        self._retry(empty, "no_text", met)
        self._retry(unreached, "not_reached", met)

    def _overlaps(self, piece: dict[str, Any]) -> list[float]:
        """How far a segment reaches into each clip, seconds."""
        return [_overlap((piece["start"], piece["end"]), span) for span in self.spans()]

    def _cut_at_gaps(self, pieces: list[dict[str, Any]], outcome: Outcome) -> list[dict[str, Any]]:
        """Segments that run across a gap, cut there when the words' times say cleanly where.

        The model often writes the end of one clip and the start of the next as one segment.
        Its words, aligned on the decoder's cross-attention as word timestamps are, fall on
        either side of the silence; when every word lies in one clip and the clips follow in
        order, the segment is cut between them, which saves both clips another pack. Anything
        less clean is left whole, to be refused as before."""
        straddling = {n for n, piece in enumerate(pieces)
                      if piece["start"] != piece["end"] and piece["text"].strip()
                      and _straddles(self._overlaps(piece), self.tolerance)}
        if not straddling or not self.cut_at_gaps or outcome.encoded is None:
            return pieces
        words = self._words(pieces, outcome.encoded)
        out: list[dict[str, Any]] = []
        for n, piece in enumerate(pieces):
            cut = self._cut(piece, words[n]) if n in straddling and words[n] else None
            out.extend(cut or [piece])
            self.cuts += cut is not None
        return out

    def _words(self, pieces: list[dict[str, Any]], encoded: np.ndarray) -> list[list[dict[str, Any]] | None]:
        """Each segment's words with their times in the window, aligned all at once as word
        timestamps align a window's text; None for a segment that shares a word with another."""
        owner = self.owner
        tokenizer = owner.tokenizer
        text = [[t for t in piece["tokens"] if t < tokenizer.eot] for piece in pieces]
        words = owner.engine.align(tokenizer, [t for tokens in text for t in tokens], encoded,
                                   owner.engine.frames_per_window)
        merge_punctuations(words, owner.options.prepend_punctuations, owner.options.append_punctuations)
        ends = np.cumsum([len(tokens) for tokens in text])
        out: list[list[dict[str, Any]] | None] = [[] for _ in pieces]
        position = 0
        for word in words:
            if not word["tokens"]:
                continue  # its punctuation went to a neighbour
            n = int(np.searchsorted(ends, position, side="right"))
            position += len(word["tokens"])
            last = int(np.searchsorted(ends, position - 1, side="right"))
            if last != n:
                out[n] = out[last] = None
            elif out[n] is not None:
                out[n].append(word)
        return out

    def _cut(self, piece: dict[str, Any], words: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        """The segment as one piece per clip its words lie in, or None if they are not clean:
        a word in no clip, or clips out of order."""
        spans = self.spans()
        clips = []
        for word in words:
            touched = [i for i, span in enumerate(spans) if _overlap((word["start"], word["end"]), span) > 0]
            if len(touched) != 1:
                return None  # in a gap, or drawn over one: its clip is a guess
            clips.append(touched[0])
        if clips != sorted(clips):
            return None
        ends = [n for n in range(1, len(words)) if clips[n] != clips[n - 1]]
        if any(not words[n - 1]["word"].rstrip().endswith(tuple(CLAUSE_ENDS)) for n in ends):
            return None  # the model read on from one clip into the next as one sentence
        tokenizer = self.owner.tokenizer
        precision = self.owner.engine.time_precision
        out = []
        for clip, group in itertools.groupby(zip(clips, words), key=lambda pair: pair[0]):
            members = [word for _, word in group]
            start = piece["start"] if not out else max(float(members[0]["start"]), spans[clip][0])
            end = piece["end"] if clip == clips[-1] else min(float(members[-1]["end"]), spans[clip][1])
            text = [t for word in members for t in word["tokens"]]
            tokens = [tokenizer.timestamp_begin + round(start / precision), *text,
                      tokenizer.timestamp_begin + round(end / precision)]
            out.append({"start": start, "end": end, "tokens": tokens, "text": tokenizer.decode(text)})
        return out

    def _clip_at(self, time: float) -> int:
        """The clip that owns a time: each gap is shared at its middle."""
        spans = self.spans()
        for i in range(len(spans) - 1):
            if time < (spans[i][1] + spans[i + 1][0]) / 2:
                return i
        return len(spans) - 1

    def _segments(self, part: Transcription, offset: float, pieces: list[dict[str, Any]], outcome: Outcome) -> list[dict[str, Any]]:
        """Segments as if the clip had been decoded alone: times and timestamp tokens shifted."""
        begin = part.tokenizer.timestamp_begin
        shift = int(round(offset / part.engine.time_precision))
        ratio = compression_ratio("".join(p["text"] for p in pieces).strip())
        segments = []
        for piece in pieces:
            start = min(max(0.0, piece["start"] - offset), part.duration)
            end = min(max(start, piece["end"] - offset), part.duration)
            segments.append(
                {
                    "id": 0,
                    "seek": 0,
                    "start": round(start, 3),
                    "end": round(end, 3),
                    "text": piece["text"],
                    "tokens": [max(begin, t - shift) if t >= begin else t for t in piece["tokens"]],
                    "temperature": outcome.temperature,
                    "avg_logprob": outcome.avg_logprob,
                    "compression_ratio": ratio,
                    "no_speech_prob": outcome.generated.no_speech_prob,
                }
            )
        return segments

    def _retry(self, indices: Sequence[int], reason: str, met: dict[int, set[int]]) -> None:
        """Each clip climbs one rung of packing's ladder (``pack_clips``): another pack away from
        the clips it met here, then a last-resort pair, then decoding alone. Straddles come from
        neighbours the model reads as one text (consecutive sentences of one recording, short
        clips it writes as one segment), so new neighbours usually end them."""
        for i in indices:
            next_step = self.clips[i].failed(reason, [self.clips[n] for n in met.get(i, ())])
            (self.retried if next_step else self.refused).append(next_step or reason)

    def _refuse(self, indices: Sequence[int], reason: str) -> None:
        for i in indices:
            self.clips[i].refuse(reason)
            self.refused.append(reason)


CLAUSE_ENDS = ".,?!;:…。，？！；：、"  # a cut must follow one of these: the model ended a clause there


def _meet(met: dict[int, set[int]], clips: set[int]) -> None:
    """Record that these clips of a pack must be kept apart from each other from now on."""
    for i in clips:
        met.setdefault(i, set()).update(clips - {i})


def _straddles(overlaps: list[float], tolerance: float) -> bool:
    """Whether a segment reaches into two clips by more than the tolerance."""
    return sorted(overlaps)[-2] > tolerance  # a pack holds two clips at least


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
