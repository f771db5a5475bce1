"""Packing in-process: where the engine's time goes, and what the gap between clips costs.

    .venv/bin/python benchmarks/packing.py --gaps 0,1000,2000
    .venv/bin/python benchmarks/packing.py --detect --language en,zh,sv,es,ja,de,fr,it,ko,pt,ru --gaps 0,2000

Runs the scheduler in this process (no HTTP) over the short clips of one language, once per
gap (0 = packing off), with the language given. It times the engine's encoder, decoder and
feature calls, and reports the wall time, windows decoded, encoder passes, clips packed, clips
sent back to be decoded alone and why, and WER (CER for Chinese, Japanese and
Korean; Chinese in Simplified script, as the server returns it) against the references.
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
    parser.add_argument("--language", default="en", help="the clips' language, or several, comma-separated, with --detect")
    parser.add_argument("--detect", action="store_true",
                        help="detect each clip's language instead of giving it: nothing is packed, but with "
                             "packing on a clip under pack_fill_s is encoded as packs are; reports the "
                             "clips whose detected language is not the manifest's")
    parser.add_argument("--gaps", default="0,1000,2000", help="pack_gap_ms values; 0 turns packing off")
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
    if len(languages) > 1 and not args.detect:
        parser.error("several languages need --detect (a pack holds one language)")
    items = load_workload(args.manifest, "short", languages, None)
    if args.shuffle is not None:
        random.Random(args.shuffle).shuffle(items)
    settings = load_settings(None, {"decoding": {"language": None if args.detect else args.language}})
    engine = WhisperEngine(Path(model_dir(settings)), settings.model)
    seconds: Counter[str] = Counter()
    encoder_passes: Counter[str] = Counter()  # windows through the encoder
    for name in ("encode", "generate", "features"):
        call = getattr(engine, name)

        def timed(*a, __call=call, __name=name, **k):
            start = time.perf_counter()
            if __name == "encode":
                encoder_passes["windows"] += len(a[0])
            try:
                return __call(*a, **k)
            finally:
                seconds[__name] += time.perf_counter() - start

        setattr(engine, name, timed)

    order = "manifest order" if args.shuffle is None else f"shuffled with seed {args.shuffle}"
    given = "detected" if args.detect else "given"
    print(f"{machine()}; {len(items)} clips ({order}), {sum(i['duration_s'] for i in items):.0f} s, "
          f"language {args.language} ({given})")
    print("| pack_gap_ms | wall s | encode s | decode s | features s | windows | encoder passes | clips packed / sent back | why sent back | batch sizes | WER / CER |")
    print("|-|-|-|-|-|-|-|-|-|-|-|")
    for gap in [int(g) for g in args.gaps.split(",")]:
        config = settings.scheduler.model_copy(update={"pack_clips": gap > 0, "pack_gap_ms": gap or 2000})
        if args.max_wait_ms is not None:
            config = config.model_copy(update={"max_wait_ms": args.max_wait_ms})
        source = ListSource([Job(item["file"], item["path"]) for item in items])
        seconds.clear()
        encoder_passes.clear()
        scheduler = Scheduler(engine, source, config, settings.decoding)  # as the server runs
        start = time.perf_counter()
        scheduler.start()
        source.done.wait()
        wall = time.perf_counter() - start
        stats = scheduler.stats()
        scheduler.stop()
        # Scored as the server returns it: Chinese in Simplified script (output.zh_script).
        rates = error_rate(items, {f: convert_text(r["text"], "simplified") for f, r in source.results.items()})
        accuracy = ", ".join(f"{kind.upper()} {rate:.2f}%" for kind, rate in rates.items())
        if args.detect:
            wrong = [i["file"] for i in items if source.results[i["file"]]["language"] != i["lang"]]
            accuracy += f"; language wrong for {len(wrong)}" + (f" ({', '.join(wrong)})" if wrong else "")
        print(f"| {gap or 'off'} | {wall:.1f} | {seconds['encode']:.1f} | {seconds['generate']:.1f} | "
              f"{seconds['features']:.1f} | {stats['windows_decoded']} | {encoder_passes['windows']} | "
              f"{stats['clips_packed']} / {stats['clips_unpacked']} | {stats['pack_refusals'] or '-'} | "
              f"{', '.join(f'{k}: {v}' for k, v in stats['batch_sizes'].items())} | {accuracy} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
