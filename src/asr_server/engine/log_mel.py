"""Log-mel features of a long recording, computed a piece at a time and kept on disk.

faster-whisper computes a recording's features at once: for an hour of audio its short-time
Fourier transform alone takes over a gigabyte, and the features another 115 MB. Here a long
recording (``Pcm.spilled``) is transformed one window of frames at a time, with the same
operations on the same samples (the reflected edges and the trailing padding included), and
the log-mel values before the floor are written, frame-major, to an unnamed temporary file.
The floor (the loudest value minus 8, over the whole recording) and the scaling are applied
when a range of frames is read, so a window's features cost only that window's memory.

The values match faster-whisper's to within one unit in the last place: its mel projection is
one matrix product whose rounding already changes with the number of BLAS threads
(``tests/engine/test_log_mel.py`` measures both). A recording kept in memory gets
faster-whisper's own computation, exactly.
"""

from __future__ import annotations

import os
import tempfile
from typing import IO

import numpy as np
from faster_whisper.feature_extractor import FeatureExtractor

from asr_server.engine.audio import Pcm

PIECE_FRAMES = 3000  # frames transformed at once: one window's
PADDING = 160  # zeros faster-whisper appends to a recording before the transform


class LogMel:
    """The features of one recording, read by frame range like the array faster-whisper
    builds: ``features.shape[-1]`` frames, ``features[:, start:stop]`` a (mels, frames) array."""

    def __init__(self, mels: int, frames: int, file: IO[bytes], loudest: float) -> None:
        self.shape = (mels, frames)
        self._file = file
        self._floor = np.float32(loudest) - np.float32(8.0)

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        rows, columns = key
        if rows != slice(None) or not isinstance(columns, slice) or columns.step not in (None, 1):
            raise TypeError("LogMel reads all mels of a contiguous range of frames: features[:, start:stop]")
        start, stop, _ = columns.indices(self.shape[1])
        mels = self.shape[0]
        count = max(0, stop - start)
        data = os.pread(self._file.fileno(), 4 * mels * count, 4 * mels * start)
        values = np.frombuffer(data, dtype=np.float32).reshape(count, mels).T
        return (np.maximum(values, self._floor) + 4.0) / 4.0

    def close(self) -> None:
        self._file.close()


def features_of(pcm: Pcm, extractor: FeatureExtractor) -> np.ndarray | LogMel:
    """The recording's features: faster-whisper's array for one in memory, a ``LogMel`` for
    one in a file."""
    if not pcm.spilled:
        return extractor(pcm.all())
    hop, n_fft = extractor.hop_length, extractor.n_fft
    frames = (pcm.count + PADDING) // hop  # faster-whisper drops the last frame of its transform
    window = np.hanning(n_fft + 1)[:-1].astype("float32")
    file = tempfile.TemporaryFile(prefix="asr-mel-")
    loudest = -np.inf
    try:
        for start in range(0, frames, PIECE_FRAMES):
            stop = min(frames, start + PIECE_FRAMES)
            piece = _log10_mel(_padded(pcm, start * hop, (stop - 1) * hop + n_fft, n_fft),
                               extractor, window)
            loudest = max(loudest, float(piece.max()))
            file.write(np.ascontiguousarray(piece.T).tobytes())
        file.flush()
    except BaseException:
        file.close()
        raise
    return LogMel(extractor.mel_filters.shape[0], frames, file, loudest)


def _padded(pcm: Pcm, start: int, stop: int, n_fft: int) -> np.ndarray:
    """Samples ``start`` to ``stop`` of what faster-whisper transforms: the recording with
    ``PADDING`` zeros after it, reflected by ``n_fft // 2`` samples at both ends."""
    edge = n_fft // 2
    length = pcm.count + PADDING
    index = np.arange(start, stop) - edge
    index = np.where(index < 0, -index, index)
    index = np.where(index >= length, 2 * (length - 1) - index, index)
    low, high = int(index.min()), int(index.max()) + 1
    held = pcm.read(low, min(high, pcm.count))
    samples = np.zeros(high - low, np.float32)
    samples[: len(held)] = held
    return samples[index - low]


def _log10_mel(samples: np.ndarray, extractor: FeatureExtractor, window: np.ndarray) -> np.ndarray:
    """faster-whisper's ``FeatureExtractor.__call__`` up to the floor, for these frames."""
    frames = np.lib.stride_tricks.sliding_window_view(samples, extractor.n_fft)[:: extractor.hop_length]
    spectrum = np.fft.rfft(frames * window, n=extractor.n_fft, axis=-1).astype("complex64")
    magnitudes = np.abs(spectrum.T) ** 2
    mel = extractor.mel_filters @ magnitudes
    return np.log10(np.clip(mel, a_min=1e-10, a_max=None))
