"""Audio decoding: any container FFmpeg reads, as 16 kHz mono float32 samples.

The samples are exactly those of faster-whisper's ``decode_audio`` (PyAV, s16 mono at the
model's rate, frames regrouped before resampling), which the equivalence with faster-whisper's
``transcribe`` depends on. The difference is what it does not do: faster-whisper runs a full
garbage collection after every file, for a leak of older PyAV releases (faster-whisper issue
390). In a server that collection walks every live object with the GIL held, so it stalls
the event loop and the engine thread's Python work many times longer than the decoding itself
takes (benchmarks/decoding.py measures both). With the PyAV this project requires, decoding
leaves no reference cycles (``tests/engine/test_audio.py`` checks both).
"""

from __future__ import annotations

from collections.abc import Iterator

import av
import numpy as np

GROUP_SAMPLES = 500_000  # frames are regrouped into chunks of this many samples, as faster-whisper does


def decode(path: str, sampling_rate: int = 16000) -> np.ndarray:
    """The file's first audio stream, downmixed to mono, resampled, scaled to [-1, 1)."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=sampling_rate)
    chunks: list[np.ndarray] = []
    with av.open(path, mode="r", metadata_errors="ignore") as container:
        for group in _grouped(_readable(container.decode(audio=0))):
            chunks.extend(frame.to_ndarray().reshape(-1) for frame in resampler.resample(group))
        chunks.extend(frame.to_ndarray().reshape(-1) for frame in resampler.resample(None))  # flush
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    return samples.astype(np.float32) / 32768.0


def stated_duration(path: str | None) -> float | None:
    """The duration the container states, in seconds, read without decoding; None when it
    states none or cannot be opened (decoding will then say what is wrong)."""
    try:
        with av.open(path) as container:
            return container.duration / av.time_base if container.duration else None
    except Exception:
        return None


def _readable(frames: Iterator[av.AudioFrame]) -> Iterator[av.AudioFrame]:
    """Skip the frames FFmpeg cannot decode (a damaged packet), as faster-whisper does."""
    while True:
        try:
            yield next(frames)
        except StopIteration:
            return
        except av.error.InvalidDataError:
            continue


def _grouped(frames: Iterator[av.AudioFrame]) -> Iterator[av.AudioFrame]:
    """Frames gathered into chunks of ``GROUP_SAMPLES``; timestamps dropped, so that gaps or
    jumps in a stream's timestamps do not disturb the resampler."""
    fifo = av.AudioFifo()
    for frame in frames:
        frame.pts = None
        fifo.write(frame)
        if fifo.samples >= GROUP_SAMPLES:
            yield fifo.read()
    if fifo.samples > 0:
        yield fifo.read()
