"""Speaker embeddings: resemblyzer's bundled GE2E voice encoder (Apache-2.0), run with torch on the CPU.

The encoder is a 3-layer LSTM over 40-band mel power spectrograms (25 ms windows, 10 ms steps)
whose last hidden state goes through a linear layer, a ReLU and an L2 norm: one 256-dimensional
vector per window of speech, close (cosine) for one voice and apart for two. Its weights are
``pretrained.pt`` inside the ``resemblyzer`` wheel on PyPI, found on disk without importing that
package (whose import pulls webrtcvad and its setuptools-era ``pkg_resources``); any other file of
the same layout is loaded from a local path (``load_encoder(path)``). Nothing is fetched from a
hub. torch, librosa (the mel filterbank) and resemblyzer are the ``diarize`` extra:
``pip install 'asr-server[diarize]'`` (docs/decisions.md weighs it against an ONNX export).
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

import numpy as np

SAMPLING_RATE = 16000
N_FFT = 400  # 25 ms
HOP = 160  # 10 ms: one mel frame
N_MELS = 40
WINDOW_FRAMES = 160  # 1.6 s: the span the encoder was trained on (GE2E partials)
BATCH = 256  # windows per forward pass: bounds the memory of a long recording


class EncoderMissing(RuntimeError):
    """Diarization was asked of a server installed without the ``diarize`` extra."""


def bundled_weights() -> Path:
    """``pretrained.pt`` in the installed ``resemblyzer`` package (found, not imported)."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise EncoderMissing("speaker labels need the diarize extra: pip install 'asr-server[diarize]'")
    return Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"


class Encoder:
    """The voice encoder and its mel front end; ``embed`` is safe to call from several threads."""

    def __init__(self, weights: Path) -> None:
        try:
            import librosa
            import torch
        except ImportError as exc:
            raise EncoderMissing("speaker labels need the diarize extra: pip install 'asr-server[diarize]'") from exc
        self._torch = torch
        # One thread: the encoder runs in one worker beside the engine, and torch's own pool
        # spin-waits for cores the engine is using (12x slower on the busy 2-core VM:
        # docs/decisions.md).
        torch.set_num_threads(1)
        state = torch.load(str(weights), map_location="cpu", weights_only=True)
        state = state.get("model_state", state)
        hidden = state["lstm.weight_hh_l0"].shape[1]
        layers = sum(1 for key in state if key.startswith("lstm.weight_ih_l"))
        self.size = state["linear.weight"].shape[0]
        self._lstm = torch.nn.LSTM(state["lstm.weight_ih_l0"].shape[1], hidden, layers, batch_first=True)
        self._linear = torch.nn.Linear(hidden, self.size)
        self._lstm.load_state_dict({k.removeprefix("lstm."): v for k, v in state.items() if k.startswith("lstm.")})
        self._linear.load_state_dict({k.removeprefix("linear."): v for k, v in state.items()
                                      if k.startswith("linear.")})
        self._lstm.eval()
        self._linear.eval()
        self._filters = librosa.filters.mel(sr=SAMPLING_RATE, n_fft=N_FFT, n_mels=N_MELS).astype(np.float32)
        self._window = librosa.filters.get_window("hann", N_FFT, fftbins=True).astype(np.float32)

    def mel(self, audio: np.ndarray) -> np.ndarray:
        """(frames, 40) mel power spectrogram of float32 audio at 16 kHz: librosa's
        ``melspectrogram`` with centred frames, as the encoder was trained on."""
        padded = np.pad(audio.astype(np.float32), N_FFT // 2)
        if len(padded) < N_FFT:
            padded = np.pad(padded, (0, N_FFT - len(padded)))
        frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
        power = np.abs(np.fft.rfft(frames * self._window, axis=1)) ** 2
        return (power @ self._filters.T).astype(np.float32)

    def embed(self, windows: np.ndarray) -> np.ndarray:
        """One L2-normed embedding per mel window: (n, frames, 40) -> (n, size)."""
        torch = self._torch
        out = []
        with torch.inference_mode():
            for start in range(0, len(windows), BATCH):
                _, (hidden, _) = self._lstm(torch.from_numpy(np.ascontiguousarray(windows[start:start + BATCH])))
                embedded = torch.relu(self._linear(hidden[-1]))
                out.append(torch.nn.functional.normalize(embedded, dim=1).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.size), np.float32)


_loaded: dict[str, Encoder] = {}
_lock = threading.Lock()


def load_encoder(path: str | None = None) -> Encoder:
    """The encoder with the weights at ``path`` (a local file), or resemblyzer's bundled ones;
    loaded once per process."""
    key = path or ""
    with _lock:
        if key not in _loaded:
            _loaded[key] = Encoder(Path(path) if path else bundled_weights())
        return _loaded[key]


def encoder_info() -> dict[str, Any]:
    """What the docs and /health could say of the bundled model."""
    return {"model": "resemblyzer GE2E voice encoder", "license": "Apache-2.0", "weights": str(bundled_weights())}
