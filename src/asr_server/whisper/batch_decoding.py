"""A batch of windows through the engine: encoding, language detection, and Whisper's temperature
fallback, batched per temperature."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from asr_server.whisper.units import Engine, Outcome, Unit


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data))


def decode_windows(engine: Engine, windows: Sequence[Unit], detect_on_window: bool = False) -> list[list[Outcome]]:
    """Encode, detect languages and decode a batch of windows that share a batch key; for each
    unit, the outcomes of its sequences (one per transcription, see ``Unit``).

    Language detection runs on exactly the features faster-whisper uses, which for a recording
    shorter than 30 s costs one more encoder pass; ``detect_on_window`` reuses the window's own
    encoding instead (faster, and the same language but in rare near-ties).
    Temperature fallback is batched too: the sequences that fail at one temperature are decoded
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
    encoded = engine.encode(inputs, [w.silent_from for w in windows] + [None] * (len(inputs) - len(windows)))
    if undetected:
        probabilities = engine.detect_language([encoded[detect_from[i]] for i in undetected])
        for i, probs in zip(undetected, probabilities):
            language, probability = probs[0]
            windows[i].owner.set_language(language, probability)
    # The sequences of every unit, in order: (unit, its encoding for it, prompt, transcription).
    sequences = [(n, own, prompt, part)
                 for n, unit in enumerate(windows)
                 for own, prompt, part in zip(unit.encodings(encoded[n]), unit.prompts(), unit.transcriptions)]
    lead = windows[0].owner
    temperatures = lead.options.temperatures
    tried: list[list[Outcome]] = [[] for _ in sequences]
    accepted: list[Outcome | None] = [None] * len(sequences)
    pending = list(range(len(sequences)))
    for temperature in temperatures:
        if not pending:
            break
        params = lead.generate_params(len(sequences[pending[0]][2]), temperature)
        generated = engine.generate([sequences[i][1] for i in pending], [sequences[i][2] for i in pending], params)
        still_pending = []
        for i, result in zip(pending, generated):
            n, own, _, part = sequences[i]
            length = len(result.tokens)
            avg_logprob = result.score * (length ** part.options.length_penalty) / (length + 1)
            ratio = compression_ratio(part.tokenizer.decode(result.tokens).strip())
            outcome = Outcome(result, avg_logprob, temperature, ratio, own)
            tried[i].append(outcome)
            if part.needs_fallback(outcome):
                still_pending.append(i)
            else:
                accepted[i] = outcome
        pending = still_pending
    for i in pending:
        # Every temperature failed: keep the most probable decoding among those that were not
        # too repetitive (or among all), reported at the last temperature, as faster-whisper does.
        threshold = sequences[i][3].options.compression_ratio_threshold
        candidates = [o for o in tried[i] if threshold is not None and o.compression_ratio <= threshold] or tried[i]
        best = max(candidates, key=lambda o: o.avg_logprob)
        accepted[i] = Outcome(best.generated, best.avg_logprob, temperatures[-1], best.compression_ratio, best.encoded)
    out: list[list[Outcome]] = [[] for _ in windows]
    for (n, *_), outcome in zip(sequences, accepted):
        assert outcome is not None
        out[n].append(outcome)
    return out
