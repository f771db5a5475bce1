"""The engine with its batches decoded side by side on single-threaded workers, against one call
on every thread.

    .venv/bin/python benchmarks/decode_workers.py [--windows 8] [--rounds 3] [--workers 2]

Builds --windows packed-like windows from the eval manifest's English clips of at most 12 s
(laid end to end with 2 s of silence, up to 28 s per window, as the scheduler packs them), and
times ``WhisperEngine.encode`` and ``WhisperEngine.generate`` at beam 5 on them:
- as one batch, the way the scheduler calls the engine;
- one window at a time (a lone request).
Each with ``model.decode_workers`` 1 (every call on the model faster-whisper loads, on
CTranslate2's default threads) and --workers. The setups alternate for --rounds rounds, so a
drift of the machine's speed hits them alike; the best round is reported, with whether the
tokens were the same.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from throughput import DEFAULT_MANIFEST, REPO, load_workload, machine

GAP_S = 2.0
WINDOW_S = 28.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO / "src"))
    from faster_whisper.audio import decode_audio, pad_or_trim

    from asr_server.config import ModelConfig
    from asr_server.engine import GenerateParams, WhisperEngine
    from asr_server.models import resolve_model

    engines = {}
    for workers in (1, args.workers):
        config = ModelConfig(decode_workers=workers)
        engines[workers] = WhisperEngine(resolve_model(config.name, config.resolved_cache_dir()), config)
    engine = engines[1]
    rate = engine.sampling_rate
    clips = [decode_audio(i["path"], sampling_rate=rate)
             for i in load_workload(args.manifest, "short", {"en"}, None) if i["duration_s"] <= 12]
    windows: list[np.ndarray] = []
    current = np.zeros(0, np.float32)
    for clip in clips:
        if len(current) and (len(current) + GAP_S * rate + len(clip)) / rate > WINDOW_S:
            windows.append(current)
            current = np.zeros(0, np.float32)
        gap = np.zeros(int(GAP_S * rate) if len(current) else 0, np.float32)
        current = np.concatenate([current, gap, clip])
    windows = (windows + [current])[: args.windows]
    features = []
    for audio in windows:
        f = engine.features(audio)
        features.append(pad_or_trim(f[:, : f.shape[-1] - 1]))
    prompt = list(engine.tokenizer("transcribe", "en").sot_sequence)
    params = GenerateParams(beam_size=5, patience=1, length_penalty=1, repetition_penalty=1, no_repeat_ngram_size=0,
                            max_length=448, suppress_blank=True, suppress_tokens=(-1,),
                            max_initial_timestamp_index=50, temperature=0.0, best_of=5)

    def run(engine: WhisperEngine, batches: list[list[np.ndarray]]) -> tuple[float, float, list[list[int]]]:
        encode_s = decode_s = 0.0
        tokens: list[list[int]] = []
        for batch in batches:
            start = time.perf_counter()
            encoded = engine.encode(batch)
            middle = time.perf_counter()
            tokens += [g.tokens for g in engine.generate(encoded, [prompt] * len(batch), params)]
            encode_s += middle - start
            decode_s += time.perf_counter() - middle
        return encode_s, decode_s, tokens

    shapes = {"one batch": [features], "one window at a time": [[f] for f in features]}
    for e in engines.values():
        run(e, [features[:1]])  # warm-up
    best: dict[tuple[str, int], tuple[float, float]] = {}
    same: dict[str, bool] = {}
    for _ in range(args.rounds):
        for shape, batches in shapes.items():
            tokens = {}
            for workers, e in engines.items():
                encode_s, decode_s, tokens[workers] = run(e, batches)
                if (shape, workers) not in best or encode_s + decode_s < sum(best[shape, workers]):
                    best[shape, workers] = (encode_s, decode_s)
            same[shape] = same.get(shape, True) and tokens[1] == tokens[args.workers]

    print(f"{machine()}; {len(windows)} windows of {', '.join(f'{len(w) / rate:.0f}' for w in windows)} s, "
          f"{engine.model.compute_type}, beam 5, best of {args.rounds} rounds")
    print("| calls | decode_workers | encode s | decode s | total s | speed-up | same tokens |")
    print("|-|-|-|-|-|-|-|")
    for shape in shapes:
        base = sum(best[shape, 1])
        for workers in engines:
            encode_s, decode_s = best[shape, workers]
            print(f"| {shape} | {workers} | {encode_s:.2f} | {decode_s:.2f} | {encode_s + decode_s:.2f} | "
                  f"{base / (encode_s + decode_s):.2f}x | {'yes' if same[shape] else 'NO'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
