"""A batch of windows through the engine: encoding, language detection, and Whisper's temperature
fallback, batched per temperature."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import numpy as np

from asr_server.whisper.transcription import Transcription, TrimRule, Window
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


@dataclass(eq=False)
class _Decoding:
    """One window's way through a batch: its input, its encoding and where that encoding is cut
    (None: whole), and the input its language is detected on."""

    window: Window
    features: np.ndarray
    cut: int | None
    detect_input: np.ndarray | None = None  # faster-whisper's detection features, when they differ
    encoding: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def owner(self) -> Transcription:
        return self.window.owner


def decode_windows(engine: Engine, windows: Sequence[Window], detect_on_window: bool = False) -> list[Outcome]:
    """Encode, detect languages and decode a batch of windows that share a batch key; one
    accepted outcome per window, in order. Four passes over one record per window:

    1. ``_encode``: every window on its own cut (``trim_at``), with faster-whisper's detection
       features beside a window whose language is to be detected exactly (not
       ``detect_on_window``).
    2. ``_detect``: languages on those features or on the window's own encoding; a trimmed
       window whose top language is below its owner's ``TrimRule.detection_below`` is encoded again
       ``RECHECK_FRAMES`` long (whole for a clip already trimmed that long), detected and
       decoded there.
    3. ``_decode``: Whisper's temperature fallback, batched per temperature: the windows that
       fail at one temperature are decoded again together at the next, as faster-whisper does one
       window at a time.
    4. ``_retry_uncovered``: a window still cut whose decoding stops before its recording's end
       is encoded, detected and decoded again whole, exactly as faster-whisper decodes it; a
       window already whole is never decoded twice.

    ``Outcome.trimmed`` says which outcomes come from a cut encoding.
    """
    if len({w.batch_key for w in windows}) > 1:
        raise ValueError("windows of one batch must share a batch key")
    batch = [_Decoding(w, w.features(), cut) for w, cut in zip(windows, trim_at(windows), strict=True)]
    _encode(engine, batch, exact_detection=not detect_on_window)
    _detect(engine, batch)
    outcomes = _decode(engine, batch)
    _retry_uncovered(engine, batch, outcomes)
    for item, outcome in zip(batch, outcomes, strict=True):
        outcome.trimmed = item.cut is not None
    return outcomes


def _encode(engine: Engine, batch: list[_Decoding], exact_detection: bool) -> None:
    """Pass 1: each window's encoding, and the detection inputs that differ from it."""
    inputs = [item.features for item in batch]
    cuts = [item.cut for item in batch]
    detecting = [item for item in batch if item.window.needs_language and exact_detection]
    for item in detecting:
        if (own := item.window.detection_features()) is not None:
            item.detect_input = own
    extra = [item for item in detecting if item.detect_input is not None]
    detect_inputs = [cast(np.ndarray, item.detect_input) for item in extra]  # each set just above
    encoded = engine.encode(inputs + detect_inputs, cuts + [None] * len(extra))
    for item, encoding in zip(batch, encoded[:len(batch)], strict=True):  # then the detection inputs'
        item.encoding = encoding
    for item, encoding in zip(extra, encoded[len(batch):], strict=True):
        item.detect_input = encoding  # from here on, the encoding to detect on


def _detect(engine: Engine, batch: list[_Decoding]) -> None:
    """Pass 2: languages, with the unsure trimmed ones detected again on a longer encoding."""
    undetected = [item for item in batch if item.window.needs_language]
    if not undetected:
        return
    sources = [item.detect_input if item.detect_input is not None else item.encoding for item in undetected]
    unsure = []
    for item, probs in zip(undetected, _by_length(engine.detect_language, sources), strict=True):
        language, probability = probs[0]
        below = item.owner.trim.detection_below if item.owner.trim is not None else None
        if item.cut is not None and below is not None and probability < below:
            unsure.append(item)  # detected again on a longer encoding, and decoded there
        else:
            item.owner.set_language(language, probability)
    if unsure:
        _encode_again(engine, unsure, [RECHECK_FRAMES if cast(int, i.cut) < RECHECK_FRAMES else None for i in unsure],
                      detect=unsure)


def _retry_uncovered(engine: Engine, batch: list[_Decoding], outcomes: list[Outcome]) -> None:
    """Pass 4: a cut window stands only when its decoding covers its recording, as a whole
    window's nearly always does; one that stops short (a clip ending mid-word, say) would be
    followed by a window over the few frames left, which Whisper fills with the text it just
    read. Such a window is decoded again whole, as faster-whisper decodes it."""
    short = [i for i, item in enumerate(batch)
             if item.cut is not None and not item.owner.covers(item.window, outcomes[i])]
    if not short:
        return
    items = [batch[i] for i in short]
    _encode_again(engine, items, [None] * len(items), detect=[item for item in items if item.window.needs_language])
    for i, outcome in zip(short, _decode(engine, items), strict=True):
        outcomes[i] = outcome


def _encode_again(engine: Engine, items: list[_Decoding], cuts: Sequence[int | None],
                  detect: Sequence[_Decoding]) -> None:
    """Encode these windows again at ``cuts`` (None: whole), in place of their encodings, and
    detect the language of those in ``detect`` on their new encodings."""
    for item, cut, encoding in zip(items, cuts, engine.encode([item.features for item in items], cuts), strict=True):
        item.cut, item.encoding = cut, encoding
    if detect:
        languages = _by_length(engine.detect_language, [item.encoding for item in detect])
        for item, probs in zip(detect, languages, strict=True):
            item.owner.set_language(*probs[0])


def _decode(engine: Engine, items: Sequence[_Decoding]) -> list[Outcome]:
    """Pass 3: the windows decoded on their encodings with Whisper's temperature fallback,
    batched per temperature; their accepted outcomes, in order."""
    prompts = [item.window.prompt() for item in items]
    lead = items[0].owner
    temperatures = lead.options.temperatures
    tried: dict[int, list[Outcome]] = {i: [] for i in range(len(items))}
    accepted: dict[int, Outcome] = {}
    pending = list(range(len(items)))
    for temperature in temperatures:
        if not pending:
            break
        params = lead.generate_params(len(prompts[pending[0]]), temperature)
        generated = _by_length(lambda batch, rows: engine.generate(batch, rows, params),  # noqa: B023  (called here)
                               [items[i].encoding for i in pending], [prompts[i] for i in pending])
        still_pending = []
        for i, result in zip(pending, generated, strict=True):
            owner = items[i].owner
            length = len(result.tokens)
            avg_logprob = result.score * (length ** owner.options.length_penalty) / (length + 1)
            ratio = compression_ratio(owner.tokenizer.decode(result.tokens).strip())
            outcome = Outcome(result, avg_logprob, temperature, ratio, items[i].encoding)
            tried[i].append(outcome)
            if owner.needs_fallback(outcome):
                still_pending.append(i)
            else:
                accepted[i] = outcome
        pending = still_pending
    for i in pending:
        # Every temperature failed: keep the most probable decoding among those that were not
        # too repetitive (or among all), reported at the last temperature, as faster-whisper does.
        threshold = items[i].owner.options.compression_ratio_threshold
        candidates = [o for o in tried[i] if threshold is not None and o.compression_ratio <= threshold] or tried[i]
        best = max(candidates, key=lambda o: o.avg_logprob)
        accepted[i] = Outcome(best.generated, best.avg_logprob, temperatures[-1], best.compression_ratio, best.encoded)
    return [accepted[i] for i in range(len(items))]


def trim_at(windows: Sequence[Window]) -> list[int | None]:
    """Where each window of a batch is cut before encoding (None: whole). Trimmed windows of
    nearly one length are cut at one length, the longest of them, so that they share an encoder
    call and a decoder batch; a window joins a longer one's length only while the silence it
    gains is at most a quarter of its own margin. With much more silence after it than its
    margin, a short clip was seen to end its text early (docs/decisions.md)."""
    trimmed = {i: frames for i, w in enumerate(windows) if (frames := w.encoder_frames) is not None}
    out: list[int | None] = [None] * len(windows)
    cut = None
    for i in sorted(trimmed, key=lambda i: -trimmed[i]):
        own = trimmed[i]
        margin = cast(TrimRule, windows[i].owner.trim).margin_frames  # trimmed: it has a rule
        if cut is None or cut - own > margin // 4:
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
        for i, result in zip(indices, results, strict=True):
            out[i] = result
    assert all(result is not None for result in out)
    return cast("list[T]", out)
