"""Two engine calls side by side, one thread each, against one call at a time on every thread.

    .venv/bin/python benchmarks/lanes.py [--windows 16] [--rounds 2]

Takes the first --windows English clips of at most 30 s from the eval manifest. Each setup
encodes every window one by one and decodes them at beam 5 in calls of 4:
- one lane: one Python thread, CTranslate2 with its default threads (what the server does);
- two lanes: two Python threads, each with half the windows, CTranslate2 with
  ``intra_threads=1, inter_threads=2`` so that the two calls really run at once;
- two lanes, two threads each: the same, ``intra_threads=2`` (more threads than cores here).
The setups alternate for --rounds rounds, so a drift of the machine's speed hits them alike.
Each model is created on a thread that then ends and is dropped after its turn, so that no
other model's OpenMP workers are alive while a setup runs (with more libgomp threads alive than
CPUs, libgomp stops spinning and every decode slows down; docs/decisions.md).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import numpy as np

from throughput import DEFAULT_MANIFEST, REPO, load_workload

sys.path.insert(0, str(REPO / "src"))

SETUPS = {"one lane, default threads": (0, 1), "two lanes, 1 thread each": (1, 2), "two lanes, 2 threads each": (2, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--windows", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    import ctranslate2
    from faster_whisper import WhisperModel, decode_audio
    from faster_whisper.audio import pad_or_trim

    from asr_server.config import ModelConfig
    from asr_server.engine.models import resolve_model
    from asr_server.engine.whisper_engine import on_a_passing_thread

    config = ModelConfig()
    path = str(resolve_model(config.name, config.resolved_cache_dir()))
    items = load_workload(args.manifest, "short", {"en"}, args.windows)
    reference = on_a_passing_thread(lambda: WhisperModel(path, device="cpu", compute_type=config.compute_type))
    windows = [pad_or_trim(reference.feature_extractor(decode_audio(i["path"]))[:, :-1]) for i in items]
    prompt = reference.hf_tokenizer.encode("<|startoftranscript|><|en|><|transcribe|>", add_special_tokens=False).ids
    options = dict(beam_size=5, return_scores=True, return_no_speech_prob=True, max_length=448)

    def storage(arrays: list[np.ndarray]) -> ctranslate2.StorageView:
        return ctranslate2.StorageView.from_array(np.ascontiguousarray(np.stack(arrays)))

    def lane(model: ctranslate2.models.Whisper, share: list[np.ndarray]) -> None:
        encoded = [np.asarray(model.encode(storage([w])))[0] for w in share]
        for start in range(0, len(encoded), 4):
            model.generate(storage(encoded[start : start + 4]), [prompt] * len(encoded[start : start + 4]), **options)

    del reference  # only its feature extractor and tokenizer were needed
    seconds: dict[str, list[float]] = {name: [] for name in SETUPS}
    for _ in range(args.rounds):
        for name, (intra, workers) in SETUPS.items():
            model = on_a_passing_thread(lambda: ctranslate2.models.Whisper(
                path, device="cpu", compute_type=config.compute_type, intra_threads=intra, inter_threads=workers))  # noqa: B023  (called here)
            model.encode(storage(windows[:1]))  # warm-up
            start = time.perf_counter()
            threads = [threading.Thread(target=lane, args=(model, windows[n::workers])) for n in range(workers)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            seconds[name].append(time.perf_counter() - start)
            del model, threads
    base = min(seconds["one lane, default threads"])
    print(f"{len(windows)} windows, {config.compute_type} on cpu, best of {args.rounds} rounds")
    print("| setup | wall s (each round) | speed-up |")
    print("|-|-|-|")
    for name, runs in seconds.items():
        print(f"| {name} | {min(runs):.2f} ({', '.join(f'{s:.2f}' for s in runs)}) | {base / min(runs):.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
