"""Audio decoding: any container FFmpeg reads, as 16 kHz mono float32 samples.

The samples are exactly those of faster-whisper's ``decode_audio`` (PyAV, s16 mono at the
model's rate, frames regrouped before resampling), which the equivalence with faster-whisper's
``transcribe`` depends on. The difference is what it does not do: faster-whisper runs a full
garbage collection after every file, for a leak of older PyAV releases (faster-whisper issue
390). In a server that collection walks every live object with the GIL held, so it stalls
the event loop and the engine thread's Python work many times longer than the decoding itself
takes (benchmarks/decoding.py measures both). With the PyAV this project requires, decoding
leaves no reference cycles (``tests/engine/test_audio.py`` checks both).

A server holds many recordings at once, so ``decode_pcm`` keeps them compactly: 16-bit samples,
in memory for a recording of up to ``IN_MEMORY_SAMPLES`` and in an unnamed temporary file
beyond, so that an hour of audio costs the process a few windows of memory, not 230 MB.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import IO

import av
import numpy as np

GROUP_SAMPLES = 500_000  # frames are regrouped into chunks of this many samples, as faster-whisper does
IN_MEMORY_SAMPLES = 960_000  # a recording up to this long (a minute at 16 kHz) stays in memory


def decode(path: str, sampling_rate: int = 16000) -> np.ndarray:
    """The file's first audio stream, downmixed to mono, resampled, scaled to [-1, 1)."""
    chunks = list(decoded_chunks(path, sampling_rate))
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    return to_float(samples)


def decoded_chunks(path: str, sampling_rate: int = 16000) -> Iterator[np.ndarray]:
    """``decode``'s samples as 16-bit integers, a resampled group at a time."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=sampling_rate)
    with av.open(path, mode="r", metadata_errors="ignore") as container:
        for group in _grouped(_readable(container.decode(audio=0))):
            for frame in resampler.resample(group):
                yield frame.to_ndarray().reshape(-1)
        for frame in resampler.resample(None):  # flush
            yield frame.to_ndarray().reshape(-1)


def to_float(samples: np.ndarray) -> np.ndarray:
    """16-bit samples scaled as faster-whisper scales them."""
    return samples.astype(np.float32) / 32768.0


class Pcm:
    """One recording's samples as 16-bit integers: in memory up to ``in_memory`` samples, then
    in an unnamed temporary file (``tempfile``'s directory, ``TMPDIR``), which the system
    removes when it is closed or the process ends, even by kill -9."""

    def __init__(self, in_memory: int | None = None) -> None:
        self._in_memory = IN_MEMORY_SAMPLES if in_memory is None else in_memory
        self._chunks: list[np.ndarray] = []
        self._file: IO[bytes] | None = None
        self.count = 0

    @property
    def spilled(self) -> bool:
        """The samples are in the file, not in memory."""
        return self._file is not None

    def append(self, chunk: np.ndarray) -> None:
        chunk = np.ascontiguousarray(chunk, dtype=np.int16)
        self.count += len(chunk)
        if self._file is None and self.count > self._in_memory:
            self._file = tempfile.TemporaryFile(prefix="asr-pcm-")
            for held in self._chunks:
                self._file.write(held.tobytes())
            self._chunks = []
        if self._file is not None:
            self._file.write(chunk.tobytes())
        else:
            self._chunks.append(chunk)

    def all(self) -> np.ndarray:
        """Every sample, as float32 (a whole recording in memory: for short ones)."""
        return self.read(0, self.count)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``start`` to ``stop`` (clipped to the recording), as float32."""
        start, stop = max(0, start), min(self.count, stop)
        if stop <= start:
            return np.zeros(0, np.float32)
        if self._file is None:
            joined = np.concatenate(self._chunks) if len(self._chunks) != 1 else self._chunks[0]
            self._chunks = [joined]
            return to_float(joined[start:stop])
        self._file.flush()
        data = os.pread(self._file.fileno(), 2 * (stop - start), 2 * start)
        return to_float(np.frombuffer(data, dtype=np.int16))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._chunks = []


def decode_pcm(path: str, sampling_rate: int = 16000, in_memory: int | None = None,
               max_samples: int = 0) -> Pcm:
    """``decode``'s samples, held as ``Pcm``. With ``max_samples``, decoding stops once the
    recording is known to be longer (``count`` then exceeds it)."""
    pcm = Pcm(in_memory)
    try:
        for chunk in decoded_chunks(path, sampling_rate):
            pcm.append(chunk)
            if max_samples and pcm.count > max_samples:
                break
    except BaseException:
        pcm.close()
        raise
    return pcm


def stated_duration(path: str | None) -> float | None:
    """The duration the container states, in seconds, read without decoding; None when it
    states none or cannot be opened (decoding will then say what is wrong)."""
    try:
        with av.open(path, "r") as container:
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
        if fifo.samples >= GROUP_SAMPLES and (group := fifo.read()) is not None:
            yield group
    if (rest := fifo.read()) is not None:  # None: the fifo is empty
        yield rest
