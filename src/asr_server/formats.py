"""Transcript writers: a Whisper result dict as txt, srt or vtt (Whisper's own conventions)."""

from __future__ import annotations

from typing import Any

FORMATS = ("json", "txt", "srt", "vtt")


def _timestamp(seconds: float, marker: str, always_hours: bool) -> str:
    milliseconds = round(seconds * 1000.0)
    hours, milliseconds = divmod(milliseconds, 3_600_000)
    minutes, milliseconds = divmod(milliseconds, 60_000)
    secs, milliseconds = divmod(milliseconds, 1_000)
    prefix = f"{hours:02d}:" if always_hours or hours > 0 else ""
    return f"{prefix}{minutes:02d}:{secs:02d}{marker}{milliseconds:03d}"


def to_txt(result: dict[str, Any]) -> str:
    return "".join(segment["text"].strip() + "\n" for segment in result["segments"])


def to_srt(result: dict[str, Any]) -> str:
    blocks = []
    for index, segment in enumerate(result["segments"], start=1):
        start = _timestamp(segment["start"], ",", True)
        end = _timestamp(segment["end"], ",", True)
        text = segment["text"].strip().replace("-->", "->")
        blocks.append(f"{index}\n{start} --> {end}\n{text}\n")
    return "\n".join(blocks)


def to_vtt(result: dict[str, Any]) -> str:
    lines = ["WEBVTT\n"]
    for segment in result["segments"]:
        start = _timestamp(segment["start"], ".", False)
        end = _timestamp(segment["end"], ".", False)
        text = segment["text"].strip().replace("-->", "->")
        lines.append(f"{start} --> {end}\n{text}\n")
    return "\n".join(lines)


def render(result: dict[str, Any], fmt: str) -> str:
    import json

    if fmt == "json":
        return json.dumps(result, ensure_ascii=False, indent=2) + "\n"
    return {"txt": to_txt, "srt": to_srt, "vtt": to_vtt}[fmt](result)
