"""Trimming in-process: what encoding short recordings over their own length saves, and costs.

    .venv/bin/python benchmarks/trimming.py --margins 0,2,4,8
    .venv/bin/python benchmarks/trimming.py --language en,zh,sv,es,ja,de,fr,it,ko,pt,ru --margins 0,4

Runs the scheduler in this process (no HTTP) over the short clips of the given languages, each
clip's language given (or, with --detect, detected), once per trim margin (0 = trimming off:
faster-whisper's whole windows). Where the engine's time goes: encoder, language detection,
decoding at temperature 0 and in fallback, the engine thread's idle rest of the wall time, and
the preparation threads' feature computation beside it. Then windows decoded, trimmed and of
those decoded again whole (a decoding that stopped short), batch
sizes, and WER (CER for Chinese, Japanese and Korean;
Chinese in Simplified script, as the server returns it) against the references, per language.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from pathlib import Path

from throughput import DEFAULT_MANIFEST, REPO, error_rate, load_workload, machine, model_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--language", default="en", help="the clips' languages, comma-separated")
    parser.add_argument("--detect", action="store_true", help="detect each clip's language instead of giving it")
    parser.add_argument("--margins", default="0,4", help="trim_margin_s values, comma-separated; 0 turns trimming off")
    parser.add_argument("--shuffle", type=int, default=None, metavar="SEED",
                        help="submit the clips in a random order (this seed) instead of the manifest's, "
                             "where consecutive clips are often consecutive sentences of one recording; "
                             "uploads through HTTP arrive in no such order")
    parser.add_argument("--max-wait-ms", type=int, default=None,
                        help="scheduler.max_wait_ms (default: the config's); a long wait puts every clip "
                             "prepared in view before each step, which makes runs repeatable")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO / "src"))
    from asr_server.config_loading import load_settings
    from asr_server.engine.whisper_engine import WhisperEngine
    from asr_server.scheduling.memory_source import Job, ListSource
    from asr_server.scheduling.scheduler import Scheduler
    from asr_server.text.zh_script import convert_text

    languages = set(args.language.split(","))
    items = load_workload(args.manifest, "short", languages, None)
    if args.shuffle is not None:
        random.Random(args.shuffle).shuffle(items)
    settings = load_settings(None, {})
    engine = WhisperEngine(Path(model_dir(settings)), settings.model)
    seconds: Counter[str] = Counter()
    for name in ("encode", "detect_language", "generate", "features_of"):
        call = getattr(engine, name)

        def timed(*a, __call=call, __name=name, **k):
            start = time.perf_counter()
            try:
                return __call(*a, **k)
            finally:
                # Decoding at a temperature above 0 is Whisper's fallback.
                key = "fallback" if __name == "generate" and a[2].temperature > 0 else __name
                seconds[key] += time.perf_counter() - start

        setattr(engine, name, timed)

    order = "manifest order" if args.shuffle is None else f"shuffled with seed {args.shuffle}"
    print(f"{machine()}; {len(items)} clips ({order}), {sum(i['duration_s'] for i in items):.0f} s, "
          f"languages {args.language} ({'detected' if args.detect else 'given'})")
    print("| trim_margin_s | wall s | encode s | detect s | decode s | fallback s | engine idle s | preparation s | "
          "windows / trimmed / retried whole | batch sizes | WER / CER | per language |")
    print("|-|-|-|-|-|-|-|-|-|-|-|-|")
    for margin in [float(m) for m in args.margins.split(",")]:
        config = settings.scheduler.model_copy(update={"trim_short_clips": margin > 0, "trim_margin_s": margin or 4.0})
        if args.max_wait_ms is not None:
            config = config.model_copy(update={"max_wait_ms": args.max_wait_ms})
        given = (lambda item: {}) if args.detect else (lambda item: {"decoding": {"language": item["lang"]}})
        source = ListSource([Job(item["file"], item["path"], given(item)) for item in items])
        seconds.clear()
        scheduler = Scheduler(engine, source, config, settings.decoding)  # as the server runs, language given
        start = time.perf_counter()
        scheduler.start()
        source.done.wait()
        wall = time.perf_counter() - start
        stats = scheduler.stats()
        scheduler.stop()
        # Scored as the server returns it: Chinese in Simplified script (output.zh_script).
        rates = error_rate(items, {f: convert_text(r["text"], "simplified") for f, r in source.results.items()})
        accuracy = ", ".join(f"{kind.upper()} {rate:.2f}%" for kind, rate in rates.items())
        results = {f: convert_text(r["text"], "simplified") for f, r in source.results.items()}
        per_language = ", ".join(
            f"{lang} {next(iter(error_rate([i for i in items if i['lang'] == lang], results).values())):.1f}"
            for lang in sorted(languages) if len(languages) > 1)
        if args.detect:
            wrong = [i["file"] for i in items if source.results[i["file"]]["language"] != i["lang"]]
            accuracy += f"; language not the manifest's for {len(wrong)}" + (f" ({', '.join(wrong)})" if wrong else "")
        busy = seconds["encode"] + seconds["detect_language"] + seconds["generate"] + seconds["fallback"]
        print(f"| {margin or 'off'} | {wall:.1f} | {seconds['encode']:.1f} | {seconds['detect_language']:.1f} | "
              f"{seconds['generate']:.1f} | {seconds['fallback']:.1f} | {wall - busy:.1f} | "
              f"{seconds['features_of']:.1f} | "
              f"{stats['windows_decoded']} / {stats['windows_trimmed']} / {stats['windows_retried_whole']} | "
              f"{', '.join(f'{k}: {v}' for k, v in stats['batch_sizes'].items())} | {accuracy} | "
              f"{per_language or '-'} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
