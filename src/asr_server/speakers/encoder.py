"""Speaker embeddings: resemblyzer's bundled GE2E voice encoder (Apache-2.0), on the CPU.

The encoder is a 3-layer LSTM over 40-band mel power spectrograms (25 ms windows, 10 ms steps)
whose last hidden state goes through a linear layer, a ReLU and an L2 norm: one 256-dimensional
vector per window of speech, close (cosine) for one voice and apart for two. Its weights are
``pretrained.pt`` inside the ``resemblyzer`` wheel on PyPI, found on disk without importing that
package (whose import pulls webrtcvad, librosa and setuptools' ``pkg_resources``); any other
file of the same layout is loaded from a local path (``load_encoder(path)``). Nothing is
fetched from a hub.

It runs in one of two ways (docs/decisions.md has the figures):

- ONNX Runtime, which the server already runs for Silero VAD: ``asr-server provision`` exports
  the weights once to ``<cache>/speakers/ge2e.onnx`` (with torch and onnx, the ``diarize``
  extra), and then the server needs neither torch nor onnx: +18 MB of memory, not +243 MB.
- torch, as the weights ship, when no export is there.
"""

from __future__ import annotations

import importlib.util
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

SAMPLING_RATE = 16000
N_FFT = 400  # 25 ms
HOP = 160  # 10 ms: one mel frame
N_MELS = 40
WINDOW_FRAMES = 160  # 1.6 s: the span the encoder was trained on (GE2E partials)
BATCH = 256  # windows per forward pass: bounds the memory of a long recording
ONNX_NAME = "speakers/ge2e.onnx"
EXTRA = "speaker labels need the diarize extra: pip install 'asr-server[diarize]' (docs/api.md)"


class EncoderMissing(RuntimeError):
    """Diarization was asked of a server installed without the ``diarize`` extra."""


def bundled_weights() -> Path:
    """``pretrained.pt`` in the installed ``resemblyzer`` package (found, not imported)."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise EncoderMissing(EXTRA)
    return Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"


def mel_filters(rate: int = SAMPLING_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters on the Slaney mel scale (linear below 1 kHz,
    logarithmic above), each scaled to unit area: the filterbank the encoder was trained with
    (librosa's default, which tests/speakers compares it with)."""

    def mel(hz: np.ndarray) -> np.ndarray:
        return np.where(hz < 1000, 3 * hz / 200, 15 + 27 * np.log(np.maximum(hz, 1e-10) / 1000) / np.log(6.4))

    def hz(mels: np.ndarray) -> np.ndarray:
        return np.where(mels < 15, 200 * mels / 3, 1000 * np.exp(np.log(6.4) * (mels - 15) / 27))

    bins = np.linspace(0, rate / 2, n_fft // 2 + 1)
    edges = hz(np.linspace(mel(np.array(0.0)), mel(np.array(rate / 2)), n_mels + 2))
    widths = np.diff(edges)
    rising = (bins[None, :] - edges[:-2, None]) / widths[:-1, None]
    falling = (edges[2:, None] - bins[None, :]) / widths[1:, None]
    weights = np.maximum(0, np.minimum(rising, falling))
    return (weights * (2 / (edges[2:] - edges[:-2]))[:, None]).astype(np.float32)


class Encoder:
    """The voice encoder and its mel front end; ``embed`` is safe to call from several threads.
    ``weights``: an ONNX export (``.onnx``) run by ONNX Runtime, or a torch state dict."""

    def __init__(self, weights: Path) -> None:
        self._filters = mel_filters()
        self._window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic Hann
        self.size = 256
        self._session: Any = None
        self._torch_model: Any = None
        if weights.suffix == ".onnx":
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = options.inter_op_num_threads = 1  # one worker beside the engine
            self._session = onnxruntime.InferenceSession(str(weights), options, providers=["CPUExecutionProvider"])
        else:
            self._torch_model = torch_encoder(weights)
            self.size = self._torch_model.size

    def mel(self, audio: np.ndarray) -> np.ndarray:
        """(frames, 40) mel power spectrogram of float32 audio at 16 kHz, frames centred on
        every 10 ms (zero padding at the ends)."""
        padded = np.pad(audio.astype(np.float32), N_FFT // 2)
        if len(padded) < N_FFT:
            padded = np.pad(padded, (0, N_FFT - len(padded)))
        frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
        power = np.abs(np.fft.rfft(frames * self._window, axis=1)) ** 2
        return (power @ self._filters.T).astype(np.float32)

    def embed(self, windows: np.ndarray) -> np.ndarray:
        """One L2-normed embedding per mel window: (n, frames, 40) -> (n, size)."""
        out = []
        for start in range(0, len(windows), BATCH):
            batch = np.ascontiguousarray(windows[start:start + BATCH], dtype=np.float32)
            if self._session is not None:
                out.append(self._session.run(None, {"mels": batch})[0])
            else:
                out.append(self._torch_model.embed(batch))
        return np.concatenate(out) if out else np.zeros((0, self.size), np.float32)


def torch_encoder(weights: Path) -> Any:
    """The encoder as a torch module with an ``embed(numpy) -> numpy`` method."""
    try:
        import torch
    except ImportError as exc:
        raise EncoderMissing(EXTRA) from exc
    # One thread: the encoder runs in one worker beside the engine, and torch's own pool
    # spin-waits for cores the engine holds (12x slower on the busy 2-core VM: docs/decisions.md).
    torch.set_num_threads(1)
    state = torch.load(str(weights), map_location="cpu", weights_only=True)
    state = state.get("model_state", state)

    class GE2E(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            hidden = state["lstm.weight_hh_l0"].shape[1]
            layers = sum(1 for key in state if key.startswith("lstm.weight_ih_l"))
            self.size = state["linear.weight"].shape[0]
            self.lstm = torch.nn.LSTM(state["lstm.weight_ih_l0"].shape[1], hidden, layers, batch_first=True)
            self.linear = torch.nn.Linear(hidden, self.size)

        def forward(self, mels: Any) -> Any:
            _, (hidden, _) = self.lstm(mels)
            return torch.nn.functional.normalize(torch.relu(self.linear(hidden[-1])), dim=1)

        def embed(self, mels: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return self(torch.from_numpy(mels)).numpy()

    model = GE2E()
    model.load_state_dict({k: v for k, v in state.items() if k.startswith(("lstm.", "linear."))})
    return model.eval()


def export_onnx(target: Path, weights: Path | None = None) -> Path:
    """The encoder exported once to ONNX at ``target`` (torch and onnx: the diarize extra)."""
    model = torch_encoder(weights or bundled_weights())
    import torch

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    with warnings.catch_warnings():
        # torch warns that an LSTM exported with a batch of 2 may fail on other batch sizes;
        # it does not here (no initial states, every window 160 frames): tests/speakers checks it
        warnings.simplefilter("ignore")  # and the exporter's own DeprecationWarning
        torch.onnx.export(model, (torch.zeros(2, WINDOW_FRAMES, N_MELS),), str(partial), input_names=["mels"],
                          output_names=["embeddings"], dynamic_axes={"mels": {0: "n"}, "embeddings": {0: "n"}},
                          dynamo=False, opset_version=17)
    partial.replace(target)
    return target


_loaded: dict[str, Encoder] = {}
_lock = threading.Lock()


def load_encoder(path: str | None = None, cache_dir: Path | None = None) -> Encoder:
    """The encoder with the weights at ``path`` (a local file: ``.onnx``, or a torch state dict),
    else the bundled one: its ONNX export in ``cache_dir`` when provisioned, else its torch
    weights. Loaded once per process."""
    chosen = Path(path) if path else None
    if chosen is None and cache_dir is not None and (cache_dir / ONNX_NAME).is_file():
        chosen = cache_dir / ONNX_NAME
    key = str(chosen or "")
    with _lock:
        if key not in _loaded:
            _loaded[key] = Encoder(chosen or bundled_weights())
        return _loaded[key]
