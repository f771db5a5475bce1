"""What the encoder costs for the first N seconds of a window, and what trimming saves.

    .venv/bin/python benchmarks/encoder_length.py [--repeats 10] [--config FILE]

A short recording of known language is encoded only over its own length and a margin
(``scheduler.trim_short_clips``, ``WhisperEngine.encode``). This times the encoder, one window
per call as the CPU config runs it, on real speech features cut to each length (median of
--repeats calls), and then the engine's own ``encode`` of a 6 s clip's window whole and
trimmed to 10 s. The CPU and its caches are printed with the figures, to compare machines by.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

LENGTHS_S = (3, 5, 10, 15, 18, 20, 21, 22, 25, 30)
STEP_FRAMES = (2040, 2046, 2048, 2050, 2060)  # around 1,024 encoder positions, where the cost steps up


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, default=REPO.parent / "shared" / "eval" / "manifest.jsonl")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--config", default=str(REPO / "configs" / "cpu-int8.toml"))
    args = parser.parse_args()

    import ctranslate2
    from faster_whisper.audio import pad_or_trim

    from asr_server.config_loading import load_settings
    from asr_server.engine.audio import decode
    from asr_server.engine.models import resolve_model
    from asr_server.engine.whisper_engine import WhisperEngine

    settings = load_settings(args.config)
    config = settings.model
    engine = WhisperEngine(resolve_model(config.name, config.resolved_cache_dir()), config)
    items = [json.loads(line) for line in args.manifest.read_text().splitlines() if line.strip()]
    longest = max((i for i in items if i["lang"] == "en"), key=lambda i: i["duration_s"])
    audio = decode(str(args.manifest.parent / longest["file"]), engine.sampling_rate)[: 30 * engine.sampling_rate]
    speech = pad_or_trim(engine.features(audio)[:, :-1])

    def median_s(fn) -> float:
        fn()  # warm-up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    def encode(features: np.ndarray) -> None:
        engine.model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None])))

    caches = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
    print("; ".join(line.split(":")[0] + ":" + line.split(":")[1].strip() for line in caches
                    if line.startswith(("Model name", "L2", "L3", "CPU(s)"))))
    print(f"{config.name} {config.compute_type} on {config.device}; speech from {longest['file']}; "
          f"median of {args.repeats} calls, one window per call")
    print("| encoder input | frames | encode s | per second of input |")
    print("|-|-|-|-|")
    for seconds in LENGTHS_S:
        frames = int(seconds / engine.seconds_per_frame)
        cost = median_s(lambda: encode(speech[:, :frames]))  # noqa: B023  (called here)
        print(f"| {seconds} s | {frames} | {cost:.3f} | {cost / seconds * 1000:.1f} ms |", flush=True)
    for frames in STEP_FRAMES:
        cost = median_s(lambda: encode(speech[:, :frames]))  # noqa: B023  (called here)
        positions = frames // engine.input_stride
        print(f"| {frames} frames, {positions} positions | {frames} | {cost:.3f} | |", flush=True)

    # A 6 s clip's window, padded to 30 s as faster-whisper pads it, and trimmed to 10 s.
    features = pad_or_trim(engine.features(audio[: 6 * engine.sampling_rate])[:, :-1])
    whole = median_s(lambda: engine.encode([features]))
    trimmed = median_s(lambda: engine.encode([features], trim_at=[1000]))
    print(f"\nWhisperEngine.encode of a 6 s clip's window: whole {whole:.3f} s; "
          f"trimmed to 10 s {trimmed:.3f} s ({whole / trimmed:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
