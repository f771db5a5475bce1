"""Transcript writers: a Whisper result dict as txt, srt, vtt or tsv (Whisper's own conventions)."""

from __future__ import annotations

from typing import Any

FORMATS = ("json", "txt", "srt", "vtt", "tsv")
MEDIA_TYPES = {
    "json": "application/json",
    "txt": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "tsv": "text/tab-separated-values; charset=utf-8",
}


def _timestamp(seconds: float, marker: str) -> str:
    """HH:MM:SS plus milliseconds after ``marker``: hours always, as SRT requires and as most
    WebVTT writers do (some players read no cue without them)."""
    milliseconds = round(seconds * 1000.0)
    hours, milliseconds = divmod(milliseconds, 3_600_000)
    minutes, milliseconds = divmod(milliseconds, 60_000)
    secs, milliseconds = divmod(milliseconds, 1_000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{marker}{milliseconds:03d}"


def _speaker_changes(result: dict[str, Any]) -> list[str | None]:
    """Per segment, its speaker's label where it differs from the one before, else None (all
    None for a result without speaker labels)."""
    changes: list[str | None] = []
    previous = None
    for segment in result["segments"]:
        speaker = segment.get("speaker")
        changes.append(speaker if speaker is not None and speaker != previous else None)
        previous = speaker
    return changes


def to_txt(result: dict[str, Any]) -> str:
    """A line a segment; with speaker labels, a change of speaker starts its line with ``A: ``."""
    return "".join((f"{change}: " if change else "") + segment["text"].strip() + "\n"
                   for segment, change in zip(result["segments"], _speaker_changes(result), strict=True))


def to_srt(result: dict[str, Any]) -> str:
    """With speaker labels, a cue where the speaker changes starts ``[A] ``."""
    blocks = []
    changes = _speaker_changes(result)
    for index, segment in enumerate(result["segments"], start=1):
        start = _timestamp(segment["start"], ",")
        end = _timestamp(segment["end"], ",")
        text = segment["text"].strip().replace("-->", "->")
        if change := changes[index - 1]:
            text = f"[{change}] {text}"
        blocks.append(f"{index}\n{start} --> {end}\n{text}\n")
    return "\n".join(blocks)


def to_vtt(result: dict[str, Any]) -> str:
    """With speaker labels, a cue where the speaker changes opens a WebVTT voice span ``<v A>``."""
    lines = ["WEBVTT\n"]
    for segment, change in zip(result["segments"], _speaker_changes(result), strict=True):
        start = _timestamp(segment["start"], ".")
        end = _timestamp(segment["end"], ".")
        text = segment["text"].strip().replace("-->", "->")
        if change:
            text = f"<v {change}>{text}"
        lines.append(f"{start} --> {end}\n{text}\n")
    return "\n".join(lines)


def to_tsv(result: dict[str, Any]) -> str:
    """Whisper's tsv: start and end in integer milliseconds, tabs in the text made spaces."""
    lines = ["start\tend\ttext"]
    for segment in result["segments"]:
        text = segment["text"].strip().replace("\t", " ")
        lines.append(f"{round(1000 * segment['start'])}\t{round(1000 * segment['end'])}\t{text}")
    return "\n".join(lines) + "\n"


def render(result: dict[str, Any], fmt: str) -> str:
    import json

    if fmt == "json":
        return json.dumps(result, ensure_ascii=False, indent=2) + "\n"
    return {"txt": to_txt, "srt": to_srt, "vtt": to_vtt, "tsv": to_tsv}[fmt](result)
