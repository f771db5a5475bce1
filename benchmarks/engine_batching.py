"""Does batching pay in the encoder, in the decoder? Times both on real speech windows.

    .venv/bin/python benchmarks/engine_batching.py [--batch 8] [--threads 0] [--config FILE]
    .venv/bin/python benchmarks/engine_batching.py --trim-frames 1000

With --trim-frames, every window is cut to that many feature frames before encoding, as the
server trims a short recording (``WhisperEngine.encode``), and decoded on that encoding.

Takes the first --batch English clips of at most 30 s from the eval manifest, and times, with
the configured model: encoding them one by one against in one call, and beam-5 decoding them one
by one against in one generate() call (and in calls of half the batch). The server's
``model.encode_batch_size`` and ``scheduler.max_batch_size`` defaults come from these figures.
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
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="override model.cpu_threads")
    parser.add_argument("--config", default=str(REPO / "configs" / "cpu-int8.toml"))
    parser.add_argument("--trim-frames", type=int, default=None,
                        help="encode each window over this many feature frames only (a trimmed window)")
    args = parser.parse_args()

    import ctranslate2
    from faster_whisper import decode_audio
    from faster_whisper.audio import pad_or_trim

    from asr_server.config_loading import load_settings
    from asr_server.engine.models import resolve_model
    from asr_server.engine.whisper_engine import WhisperEngine

    settings = load_settings(args.config)
    model_config = settings.model
    if args.threads is not None:
        model_config = model_config.model_copy(update={"cpu_threads": args.threads})
    engine = WhisperEngine(resolve_model(model_config.name, model_config.resolved_cache_dir()), model_config)
    model = engine.model

    items = [json.loads(line) for line in args.manifest.read_text().splitlines() if line.strip()]
    items = [i for i in items if i["lang"] == "en" and i["duration_s"] <= 30][: args.batch]
    windows = [pad_or_trim(engine.features(decode_audio(str(args.manifest.parent / i["file"])))[:, :-1]) for i in items]
    if args.trim_frames is not None:
        windows = [np.ascontiguousarray(w[:, : args.trim_frames]) for w in windows]
    prompt = list(engine.tokenizer("transcribe", "en").sot_sequence)

    def storage(arrays: list[np.ndarray]) -> ctranslate2.StorageView:
        return ctranslate2.StorageView.from_array(np.ascontiguousarray(np.stack(arrays)))

    def timed(fn) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    model.encode(storage(windows[:1]))  # warm-up
    encoded = [np.asarray(model.encode(storage([w])))[0] for w in windows]
    n = len(windows)
    half = max(1, n // 2)
    options = dict(beam_size=5, return_scores=True, return_no_speech_prob=True, max_length=448)
    figures = {
        "encode_one_by_one_s": timed(lambda: [model.encode(storage([w])) for w in windows]),
        "encode_one_call_s": timed(lambda: model.encode(storage(windows))),
        "generate_one_by_one_s": timed(lambda: [model.generate(storage([e]), [prompt], **options) for e in encoded]),
        "generate_one_call_s": timed(lambda: model.generate(storage(encoded), [prompt] * n, **options)),
        f"generate_calls_of_{half}_s": timed(
            lambda: [model.generate(storage(encoded[i : i + half]), [prompt] * len(encoded[i : i + half]), **options)
                     for i in range(0, n, half)]
        ),
    }
    print(f"{n} windows of {windows[0].shape[-1]} frames, {model_config.compute_type} on {model_config.device}, "
          f"cpu_threads={model_config.cpu_threads}")
    for key, value in figures.items():
        print(f"  {key:28s} {value:6.2f}")
    print(f"  encoder batching speed-up  {figures['encode_one_by_one_s'] / figures['encode_one_call_s']:.2f}x")
    print(f"  decoder batching speed-up  {figures['generate_one_by_one_s'] / figures['generate_one_call_s']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
