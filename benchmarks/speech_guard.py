"""The speech guard on real speech: what it costs, and whether it takes any text away.

    .venv/bin/python benchmarks/speech_guard.py

Transcribes the whole eval corpus through the scheduler (in process, the default config's model
and options, language detected) twice in one run: with the guard and without. Reports each
language's error rate both ways, every clip whose text differs, and the VAD pass's cost per
hour of audio (timed on the corpus, and on an hour of its speech when ``long_uploads.py`` has
built one). Writes ``speech_guard.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from throughput import DEFAULT_MANIFEST, HERE, REPO, error_rate, load_workload, machine


def transcribe_all(engine: Any, items: list[dict[str, Any]], guard: bool) -> tuple[dict[str, str], float]:
    from asr_server.config import DecodingOptions, SchedulerConfig
    from asr_server.scheduling.memory_source import Job, ListSource
    from asr_server.scheduling.scheduler import Scheduler

    source = ListSource([Job(item["file"], item["path"]) for item in items])
    scheduler = Scheduler(engine, source, SchedulerConfig(), DecodingOptions(speech_guard=guard))
    started = time.perf_counter()
    scheduler.start()
    try:
        if not source.done.wait(3600):
            raise TimeoutError("the corpus did not finish")
    finally:
        scheduler.stop()
    if source.errors:
        raise RuntimeError(source.errors)
    return {name: result["text"] for name, result in source.results.items()}, time.perf_counter() - started


def vad_seconds(paths: list[Path]) -> tuple[float, float]:
    """Seconds of audio and seconds the guard's VAD took over them (decoding not counted)."""
    from asr_server.engine.audio import decode_pcm
    from asr_server.whisper.speech_guard import find_speech

    audio_s = vad_s = 0.0
    for path in paths:
        pcm = decode_pcm(str(path))
        started = time.perf_counter()
        find_speech(pcm.read, pcm.count, 16000)
        vad_s += time.perf_counter() - started
        audio_s += pcm.count / 16000
        pcm.close()
    return audio_s, vad_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO / "src"))
    from asr_server.config import ModelConfig
    from asr_server.engine.models import resolve_model
    from asr_server.engine.whisper_engine import WhisperEngine

    config = ModelConfig()
    engine = WhisperEngine(resolve_model(config.name, config.resolved_cache_dir()), config)
    items = load_workload(args.manifest, "all", None, None)
    guarded, guarded_s = transcribe_all(engine, items, guard=True)
    raw, raw_s = transcribe_all(engine, items, guard=False)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speech_guard_texts.json").write_text(json.dumps({"guard": guarded, "raw": raw}, ensure_ascii=False))

    by_language: dict[str, dict[str, Any]] = {}
    for lang in sorted({item["lang"] for item in items}):
        subset = [item for item in items if item["lang"] == lang]
        by_language[lang] = {"clips": len(subset), "guard": error_rate(subset, guarded), "raw": error_rate(subset, raw)}
    changed = [{"file": item["file"], "guard": guarded[item["file"]], "raw": raw[item["file"]]}
               for item in items if guarded[item["file"]] != raw[item["file"]]]
    corpus_audio_s, corpus_vad_s = vad_seconds([Path(item["path"]) for item in items])
    hour = sorted(args.out.glob("speech_3600s.mp3"))
    hour_audio_s, hour_vad_s = vad_seconds(hour) if hour else (0.0, 0.0)

    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
        "clips": len(items), "audio_s": round(corpus_audio_s, 1),
        "wall_s": {"guard": round(guarded_s, 1), "raw": round(raw_s, 1)},
        "vad_s_per_hour": {"corpus": round(3600 * corpus_vad_s / corpus_audio_s, 1),
                           "one_hour_file": round(hour_vad_s, 1) if hour else None},
        "by_language": by_language, "changed": changed,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speech_guard.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(f"{len(items)} clips, {corpus_audio_s:.0f} s: guard {guarded_s:.1f} s, raw {raw_s:.1f} s wall; "
          f"VAD {result['vad_s_per_hour']['corpus']} s per hour of the corpus, "
          f"{result['vad_s_per_hour']['one_hour_file']} s on the one-hour file")
    print("| language | clips | error with the guard | without |\n|-|-|-|-|")
    for lang, row in by_language.items():
        kind = "cer" if "cer" in row["guard"] else "wer"
        print(f"| {lang} | {row['clips']} | {row['guard'][kind]}% | {row['raw'][kind]}% |")
    print(f"{len(changed)} clips differ:")
    for row in changed:
        print(f"  {row['file']}\n    guard: {row['guard']!r}\n    raw:   {row['raw']!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
