"""Errors whose names reach clients: a failed task's stored traceback ends with one of them."""

from __future__ import annotations


class UndecodableAudio(Exception):
    """The upload is not audio the decoder can read (or a video without a sound track)."""

    MARK = "UndecodableAudio: "


class AudioTooLong(Exception):
    """The audio is longer than ``server.max_audio_seconds``."""


def is_undecodable_audio(error: str) -> bool:
    """Whether a stored task error (a traceback) says the file was not audio."""
    lines = [line for line in error.strip().splitlines() if line.strip()]
    return bool(lines) and UndecodableAudio.MARK in lines[-1]
