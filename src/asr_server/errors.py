"""Why a task failed, as data: the errors whose names reach clients, and the failure record
stored with every failed task (its kind, a one-line message, and the traceback), so that no
code has to read a traceback to learn what went wrong."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from enum import StrEnum


class UndecodableAudio(Exception):
    """The upload is not audio the decoder can read (or a video without a sound track)."""


class AudioTooLong(Exception):
    """The audio is longer than ``server.max_audio_seconds``."""


class ErrorKind(StrEnum):
    UNDECODABLE_AUDIO = "undecodable_audio"  # the client's file is not audio
    AUDIO_TOO_LONG = "audio_too_long"  # longer than server.max_audio_seconds
    ABANDONED = "abandoned"  # interrupted store.max_attempts times: given up
    AUDIO_GONE = "audio_gone"  # the task was deleted while it was being claimed
    INTERNAL = "internal"  # anything else: the server's fault


_KINDS: dict[type[BaseException], ErrorKind] = {
    UndecodableAudio: ErrorKind.UNDECODABLE_AUDIO,
    AudioTooLong: ErrorKind.AUDIO_TOO_LONG,
}


@dataclass(frozen=True)
class Failure:
    """What is stored with a failed task. ``text`` is what the seed's 500 body carries (the
    traceback, or the server's own message); ``message`` is one line for clients."""

    kind: ErrorKind
    message: str
    text: str

    @classmethod
    def of(cls, exc: BaseException) -> Failure:
        """The failure an exception stands for, with its traceback."""
        kind = next((k for t, k in _KINDS.items() if isinstance(exc, t)), ErrorKind.INTERNAL)
        text = "".join(traceback.format_exception(exc))
        return cls(kind, f"{type(exc).__name__}: {exc}", text)

    @classmethod
    def told(cls, kind: ErrorKind, message: str) -> Failure:
        """A failure the server itself declares (no exception): the message is the whole text."""
        return cls(kind, message, message)

    @property
    def summary(self) -> str:
        """The message for deployments that show no internals: an exception's class only."""
        if self.text == self.message:
            return self.message
        name, named, _ = self.message.partition(": ")
        cause = f" ({name})" if named else ""
        return f"Transcription failed{cause}; the server's log has the details"
