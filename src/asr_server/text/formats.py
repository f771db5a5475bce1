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


def to_txt(result: dict[str, Any]) -> str:
    return "".join(segment["text"].strip() + "\n" for segment in result["segments"])


def to_srt(result: dict[str, Any]) -> str:
    blocks = []
    for index, segment in enumerate(result["segments"], start=1):
        start = _timestamp(segment["start"], ",")
        end = _timestamp(segment["end"], ",")
        text = segment["text"].strip().replace("-->", "->")
        blocks.append(f"{index}\n{start} --> {end}\n{text}\n")
    return "\n".join(blocks)


def to_vtt(result: dict[str, Any]) -> str:
    lines = ["WEBVTT\n"]
    for segment in result["segments"]:
        start = _timestamp(segment["start"], ".")
        end = _timestamp(segment["end"], ".")
        text = segment["text"].strip().replace("-->", "->")
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
