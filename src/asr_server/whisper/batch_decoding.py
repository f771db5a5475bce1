"""A batch of windows through the engine: encoding, language detection, and Whisper's temperature
fallback, batched per temperature."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import numpy as np

from asr_server.whisper.transcription import Window
from asr_server.whisper.units import Engine, Outcome

T = TypeVar("T")

# An unsure detection on a trimmed encoding is made again on an encoding this long: on the
# eval clips it agreed with faster-whisper's whole-window detection wherever the trimmed one
# was unsure, and on CPU it costs a third of a whole window's encoder pass: 20 s is the last
# length before the encoder's cost per second steps up (benchmarks/trimmed_detection.py,
# benchmarks/encoder_length.py).
RECHECK_FRAMES = 2000


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data))


def decode_windows(engine: Engine, windows: Sequence[Window], detect_on_window: bool = False) -> list[Outcome]:
    """Encode, detect languages and decode a batch of windows that share a batch key; one
    accepted outcome per window.

    Language detection runs on exactly the features faster-whisper uses, which for a recording
    shorter than 30 s costs one more encoder pass; ``detect_on_window`` reuses the window's own
    encoding instead (faster, and the same language but in rare near-ties). A trimmed window's
    language is detected on its trimmed encoding; when the top language's probability is below
    its owner's ``trim_detection_below``, it is detected again on an encoding ``RECHECK_FRAMES``
    long (or whole, for a clip already trimmed that long), and the window is decoded on that
    longer encoding. A trimmed window whose decoding stops before
    its recording's end is encoded, detected and decoded again whole, as without trimming.
    Temperature fallback is batched too: the windows that fail at one temperature are decoded
    again together at the next, as faster-whisper does one window at a time.
    """
    if len({w.batch_key for w in windows}) > 1:
        raise ValueError("windows of one batch must share a batch key")
    inputs = [w.features() for w in windows]
    undetected = [i for i, w in enumerate(windows) if w.needs_language]
    detect_from = {i: i for i in undetected}
    if not detect_on_window:
        for i in undetected:
            own = windows[i].detection_features()
            if own is not None:
                detect_from[i] = len(inputs)
                inputs.append(own)
    cuts = trim_at(windows)
    encoded = engine.encode(inputs, cuts + [None] * (len(inputs) - len(windows)))
    unsure: list[int] = []
    whole_again: set[int] = set()  # trimmed windows decoded on a whole encoding after all
    if undetected:
        probabilities = _by_length(engine.detect_language, [encoded[detect_from[i]] for i in undetected])
        for i, probs in zip(undetected, probabilities):
            language, probability = probs[0]
            below = windows[i].owner.trim_detection_below
            if cuts[i] is not None and below is not None and probability < below:
                unsure.append(i)  # detected again on a longer encoding
                continue
            windows[i].owner.set_language(language, probability)
        if unsure:
            # Decoded there too: these are the clips hardest to read.
            recut = [RECHECK_FRAMES if cast(int, cuts[i]) < RECHECK_FRAMES else None for i in unsure]
            _encode_again(engine, windows, inputs, encoded, unsure, recut, detect=unsure)
            whole_again.update(i for i, cut in zip(unsure, recut) if cut is None)
    prompts = [w.prompt() for w in windows]
    outcomes = _decode(engine, windows, encoded, prompts, range(len(windows)))
    # A trimmed window stands only when its decoding covers its recording, as a whole window's
    # nearly always does; one that stops short (a clip ending mid-word, say) would be followed by
    # a window over the few frames left, which Whisper fills with the text it just read. Such a
    # window is decoded again whole, exactly as faster-whisper decodes it.
    short = [i for i in range(len(windows))
             if cuts[i] is not None and not windows[i].owner.covers(windows[i], outcomes[i])]
    if short:
        _encode_again(engine, windows, inputs, encoded, short, [None] * len(short),
                      detect=[i for i in short if windows[i].needs_language])
        for i in short:
            prompts[i] = windows[i].prompt()
        for i, outcome in zip(short, _decode(engine, windows, encoded, prompts, short)):
            outcomes[i] = outcome
        whole_again.update(short)
    for i, cut in enumerate(cuts):
        outcomes[i].trimmed = cut is not None and i not in whole_again
    return outcomes


def _encode_again(engine: Engine, windows: Sequence[Window], inputs: list[np.ndarray], encoded: list[np.ndarray],
                  indices: Sequence[int], cuts: Sequence[int | None], detect: Sequence[int]) -> None:
    """Encode the windows at ``indices`` again, cut at ``cuts`` (None: whole), in place of their
    encodings, and detect the language of those in ``detect`` on their new encodings."""
    for i, encoding in zip(indices, engine.encode([inputs[i] for i in indices], cuts)):
        encoded[i] = encoding
    if detect:
        for i, probs in zip(detect, _by_length(engine.detect_language, [encoded[i] for i in detect])):
            windows[i].owner.set_language(*probs[0])


def _decode(engine: Engine, windows: Sequence[Window], encoded: list[np.ndarray], prompts: list[list[int]],
            indices: Sequence[int]) -> list[Outcome]:
    """The windows at ``indices`` decoded on their encodings with Whisper's temperature
    fallback, batched per temperature; their accepted outcomes, in the order of ``indices``."""
    lead = windows[indices[0]].owner
    temperatures = lead.options.temperatures
    tried: dict[int, list[Outcome]] = {i: [] for i in indices}
    accepted: dict[int, Outcome] = {}
    pending = list(indices)
    for temperature in temperatures:
        if not pending:
            break
        params = lead.generate_params(len(prompts[pending[0]]), temperature)
        generated = _by_length(lambda batch, rows: engine.generate(batch, rows, params),
                               [encoded[i] for i in pending], [prompts[i] for i in pending])
        still_pending = []
        for i, result in zip(pending, generated):
            owner = windows[i].owner
            length = len(result.tokens)
            avg_logprob = result.score * (length ** owner.options.length_penalty) / (length + 1)
            ratio = compression_ratio(owner.tokenizer.decode(result.tokens).strip())
            outcome = Outcome(result, avg_logprob, temperature, ratio, encoded[i])
            tried[i].append(outcome)
            if owner.needs_fallback(outcome):
                still_pending.append(i)
            else:
                accepted[i] = outcome
        pending = still_pending
    for i in pending:
        # Every temperature failed: keep the most probable decoding among those that were not
        # too repetitive (or among all), reported at the last temperature, as faster-whisper does.
        threshold = windows[i].owner.options.compression_ratio_threshold
        candidates = [o for o in tried[i] if threshold is not None and o.compression_ratio <= threshold] or tried[i]
        best = max(candidates, key=lambda o: o.avg_logprob)
        accepted[i] = Outcome(best.generated, best.avg_logprob, temperatures[-1], best.compression_ratio, best.encoded)
    return [accepted[i] for i in indices]


def trim_at(windows: Sequence[Window]) -> list[int | None]:
    """Where each window of a batch is cut before encoding (None: whole). Trimmed windows of
    nearly one length are cut at one length, the longest of them, so that they share an encoder
    call and a decoder batch; a window joins a longer one's length only while the silence it
    gains is at most a quarter of its own margin. With much more silence after it than its
    margin, a short clip was seen to end its text early (docs/decisions.md)."""
    frames = [w.encoder_frames for w in windows]
    out: list[int | None] = [None] * len(windows)
    cut = None
    for i in sorted((i for i, f in enumerate(frames) if f is not None), key=lambda i: -frames[i]):
        own = frames[i]
        if cut is None or cut - own > windows[i].owner.trim_margin_frames // 4:
            cut = own
        out[i] = cut
    return out


def _by_length(call: Callable[..., list[T]], encoded: list[np.ndarray], *rows: list[Any]) -> list[T]:
    """``call(encodings, *rows)`` once per encoding length, results back in order: CTranslate2
    takes one length per call, and trimmed windows and whole ones differ."""
    by_length: dict[int, list[int]] = {}
    for i, encoding in enumerate(encoded):
        by_length.setdefault(len(encoding), []).append(i)
    out: list[T | None] = [None] * len(encoded)
    for indices in by_length.values():
        results = call([encoded[i] for i in indices], *([row[i] for i in indices] for row in rows))
        for i, result in zip(indices, results):
            out[i] = result
    assert all(result is not None for result in out)
    return cast("list[T]", out)
