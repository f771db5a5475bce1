"""Speaker labels on a transcript: each word takes the voice of the turn it lies in, and a
segment is cut where the voice changes. Labels are letters in order of first appearance in the
transcript (``A`` first), as OpenAI's ``diarized_json`` names speakers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Turn:
    """One voice speaking from ``start`` to ``end`` (seconds); speakers are 0, 1, ..."""

    start: float
    end: float
    speaker: int


def speaker_name(index: int) -> str:
    """0 -> A, 1 -> B, ... 25 -> Z, 26 -> A2 ..."""
    letter, round_ = chr(ord("A") + index % 26), index // 26
    return letter if round_ == 0 else f"{letter}{round_ + 1}"


def speaker_at(start: float, end: float, turns: Sequence[Turn]) -> int | None:
    """The speaker of the turn overlapping ``start``..``end`` most, else of the nearest turn."""
    if not turns:
        return None
    best, overlap = None, 0.0
    for turn in turns:
        shared = min(end, turn.end) - max(start, turn.start)
        if shared > overlap:
            best, overlap = turn.speaker, shared
    if best is not None:
        return best
    middle = (start + end) / 2
    return min(turns, key=lambda t: max(t.start - middle, middle - t.end)).speaker


def _cut(segment: dict[str, Any], turns: Sequence[Turn]) -> list[tuple[int | None, dict[str, Any]]]:
    """A segment as (speaker, piece) pairs: one piece, or one per run of words of one voice."""
    words = segment.get("words") or []
    if not words:
        return [(speaker_at(segment["start"], segment["end"], turns), segment)]
    runs: list[tuple[int | None, list[dict[str, Any]]]] = []
    for word in words:
        speaker = speaker_at(word["start"], word["end"], turns)
        if runs and runs[-1][0] == speaker:
            runs[-1][1].append(word)
        else:
            runs.append((speaker, [word]))
    if len(runs) == 1:
        return [(runs[0][0], segment)]
    pieces = []
    for n, (speaker, run) in enumerate(runs):
        pieces.append((speaker, {
            **segment,
            "start": segment["start"] if n == 0 else run[0]["start"],
            "end": segment["end"] if n == len(runs) - 1 else run[-1]["end"],
            "text": "".join(w["word"] for w in run),
            "tokens": [],  # a segment's tokens are not cut with it: its pieces carry none
            "words": run,
        }))
    return pieces


def label_result(result: dict[str, Any], turns: Sequence[Turn], keep_words: bool) -> dict[str, Any]:
    """``result`` with a ``speaker`` on each segment (and word, with ``keep_words``), segments cut
    at changes, and ``speakers``: the labels in order of first appearance. Without
    ``keep_words`` the word timings used here are dropped, as the task did not ask for them."""
    pieces = [piece for segment in result["segments"] for piece in _cut(segment, turns)]
    names: dict[int, str] = {}
    for speaker, _ in pieces:
        if speaker is not None and speaker not in names:
            names[speaker] = speaker_name(len(names))
    segments = []
    for n, (speaker, piece) in enumerate(pieces):
        label = names.get(speaker) if speaker is not None else None
        labelled = {**piece, "id": n, "speaker": label}
        if keep_words and "words" in piece:
            labelled["words"] = [{**word, "speaker": label} for word in piece["words"]]
        else:
            labelled.pop("words", None)
        segments.append(labelled)
    return {**result, "segments": segments, "speakers": list(names.values())}
