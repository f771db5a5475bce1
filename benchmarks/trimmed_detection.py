"""Language detection on trimmed encodings against faster-whisper's, clip by clip.

    .venv/bin/python benchmarks/trimmed_detection.py [--margin-s 8] [--below 0.9] [--second-cuts 2000,2500]

For every short clip of the eval manifest that the server would trim (its frames and the
margin, rounded up to a second, under one window), detects the language three ways with the
server's engine: on faster-whisper's detection features (the whole window, the reference), on
the trimmed encoding the server detects on, and, for the clips whose top probability there is
below --below, on encodings cut at each of --second-cuts feature frames (a cheaper second
opinion than the whole window the server falls back to). Prints the unsure clips, how many
clips agree with faster-whisper each way, and the engine seconds each way took.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, default=REPO.parent / "shared" / "eval" / "manifest.jsonl")
    parser.add_argument("--margin-s", type=float, default=8.0, help="scheduler.trim_margin_s")
    parser.add_argument("--below", type=float, default=0.9, help="scheduler.trim_detection_below")
    parser.add_argument("--second-cuts", default="2000,2500", help="feature frames, comma-separated ('' skips)")
    args = parser.parse_args()

    from faster_whisper.audio import pad_or_trim

    from asr_server.config import ModelConfig
    from asr_server.engine.audio import decode
    from asr_server.engine.models import resolve_model
    from asr_server.engine.whisper_engine import WhisperEngine
    from asr_server.whisper.transcription import TRIM_GRID_FRAMES

    config = ModelConfig()
    engine = WhisperEngine(resolve_model(config.name, config.resolved_cache_dir()), config)
    margin = round(args.margin_s * engine.frames_per_second)
    second_cuts = [int(c) for c in args.second_cuts.split(",") if c]
    items = [json.loads(line) for line in args.manifest.read_text().splitlines() if line.strip()]
    seconds = {"whole": 0.0, "trimmed": 0.0, **{str(c): 0.0 for c in second_cuts}}
    agree = {"trimmed": 0, "with fallback": 0, **{f"second opinion at {c}": 0 for c in second_cuts}}

    def detect(window: np.ndarray, cut: int | None, key: str) -> tuple[str, float]:
        start = time.perf_counter()
        language, probability = engine.detect_language(engine.encode([window], [cut]))[0][0]
        seconds[key] += time.perf_counter() - start
        return language, probability

    clips = 0
    print("| clip | seconds | faster-whisper | trimmed | " + " | ".join(f"cut at {c}" for c in second_cuts) + " |")
    print("|-|-|-|-|" + "-|" * len(second_cuts))
    for item in items:
        features = engine.features(decode(str(args.manifest.parent / item["file"])))
        content = features.shape[-1] - 1
        cut = int(np.ceil((content + margin) / TRIM_GRID_FRAMES) * TRIM_GRID_FRAMES)
        if cut >= engine.frames_per_window:
            continue  # encoded whole by the server: nothing to compare
        clips += 1
        reference = detect(pad_or_trim(features[:, : engine.frames_per_window]), None, "whole")
        window = pad_or_trim(features[:, :content])
        trimmed = detect(window, cut, "trimmed")
        agree["trimmed"] += trimmed[0] == reference[0]
        if trimmed[1] >= args.below:
            agree["with fallback"] += trimmed[0] == reference[0]
            for c in second_cuts:
                agree[f"second opinion at {c}"] += trimmed[0] == reference[0]
            continue
        agree["with fallback"] += 1  # the server detects these on the whole window: the reference
        cells = []
        for c in second_cuts:
            second = detect(window, max(cut, c), str(c))
            agree[f"second opinion at {c}"] += second[0] == reference[0]
            cells.append(f"{second[0]} {second[1]:.2f}")
        print(f"| {item['file']} | {content / engine.frames_per_second:.1f} | {reference[0]} {reference[1]:.2f} | "
              f"{trimmed[0]} {trimmed[1]:.2f} | " + " | ".join(cells) + " |")
    print(f"\n{clips} trimmed clips; agreeing with faster-whisper: "
          + ", ".join(f"{way} {n}" for way, n in agree.items()))
    print("engine seconds: " + ", ".join(f"{way} {s:.1f}" for way, s in seconds.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
