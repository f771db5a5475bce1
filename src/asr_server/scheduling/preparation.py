"""Preparing a claimed task for the engine: its audio decoded (within the length limit) and
turned into the state machine of its mode. Runs in the scheduler's worker threads; a failure
here is the task's alone, with a reason a client can act on."""

from __future__ import annotations

from collections.abc import Callable

from asr_server.config import DecodingOptions
from asr_server.engine.audio import Pcm, decode_pcm, stated_duration
from asr_server.errors import AudioTooLong, UndecodableAudio
from asr_server.whisper.chunking import ChunkedTranscription
from asr_server.whisper.speech_guard import find_speech
from asr_server.whisper.transcription import Transcription, TrimRule
from asr_server.whisper.units import Engine


def prepare(audio_path: str | None, options: DecodingOptions, engine: Engine,
            trim: TrimRule | None = None, max_audio_seconds: float = 0,
            prompt_bucket: int | None = None,
            beside: Callable[[Pcm], None] | None = None) -> Transcription | ChunkedTranscription:
    """VAD-chunked mode with ``options.vad_filter``, Whisper's sequential mode otherwise. With
    ``trim``, a recording shorter than one window is trimmed by that rule
    (``Window.encoder_frames``).
    With ``prompt_bucket``, previous-text prompts are cut to a multiple of that many tokens.
    With ``beside``, the decoded audio is handed to it once the transcription is prepared, and
    is then its to close (speaker labels read it beside decoding)."""
    pcm = decode_audio(audio_path, engine.sampling_rate, max_audio_seconds)
    handed = False
    try:
        prepared: Transcription | ChunkedTranscription
        if options.vad_filter:
            prepared = ChunkedTranscription(pcm.all(), options, engine)
        else:
            # A long recording's features are computed a window at a time and kept in a file
            # (engine.log_mel), so that its memory does not grow with its length.
            features = engine.features_of(pcm)
            speech = find_speech(pcm.read, pcm.count, engine.sampling_rate) if options.speech_guard else None
            prepared = Transcription(features, options, engine, speech=speech, trim=trim,
                                     prompt_bucket=prompt_bucket)
        if beside is not None:
            handed = True
            beside(pcm)
        return prepared
    finally:
        if not handed:
            pcm.close()


def decode_audio(path: str | None, sampling_rate: int, max_seconds: float = 0) -> Pcm:
    """PyAV decoding into compact samples, with a failure turned into a reason a client can
    act on. With ``max_seconds``, a longer file is refused from its container's stated duration
    before it is decoded, and from its samples as soon as they pass the limit."""
    if max_seconds:
        _refuse_if_longer(stated_duration(path), max_seconds)
    max_samples = round(max_seconds * sampling_rate)
    try:
        pcm = decode_pcm(str(path), sampling_rate, max_samples=max_samples)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}".replace(str(path), "the upload")
        raise UndecodableAudio(
            f"The file could not be decoded as audio ({reason}). Send an audio file, or a video with a sound track."
        ) from exc
    if max_seconds and pcm.count > max_samples:
        pcm.close()  # decoding stopped just past the limit, so the length is known only to exceed it
        raise _too_long(f"longer than {max_seconds:g} s", max_seconds)
    return pcm


def _refuse_if_longer(seconds: float | None, max_seconds: float) -> None:
    if seconds is not None and seconds > max_seconds:
        raise _too_long(f"{seconds:.1f} s long", max_seconds)


def _too_long(length: str, max_seconds: float) -> AudioTooLong:
    return AudioTooLong(f"The audio is {length}; this server transcribes at most {max_seconds:g} s "
                        "per task (server.max_audio_seconds). Split the file and send the parts.")
