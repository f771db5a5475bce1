"""Mandarin CER by way of getting Simplified characters: convert after, steer the decoder, or both.

    .venv/bin/python benchmarks/zh_script.py

On the Mandarin clips of the manifest (the AISHELL-1 utterances and the long-form AISHELL
file), with the language given as zh and faster-whisper's default decoding otherwise, it
decodes each clip twice: plain, and with a Simplified-Chinese initial prompt. Each output is
scored as written and after OpenCC's Traditional-to-Simplified conversion (what
``zh_script = "simplified"`` does). CER is over characters with punctuation and spaces
removed, the same normalisation for every way. Prints a table and writes a JSON file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from throughput import DEFAULT_MANIFEST, HERE, REPO, error_rate, load_workload, machine, model_dir

PROMPT = "以下是普通话的句子。"  # "What follows are sentences in Mandarin." written in Simplified


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--prompt", default=PROMPT)
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO / "src"))
    from faster_whisper import WhisperModel

    from asr_server.config_loading import load_settings
    from asr_server.text.zh_script import convert_text

    settings = load_settings(None)
    items = load_workload(args.manifest, "all", {"zh"}, None)
    model = WhisperModel(model_dir(settings), device="cpu", compute_type=settings.model.compute_type)
    texts: dict[str, dict[str, str]] = {"plain": {}, "prompted": {}}
    seconds: dict[str, float] = {}
    for way, prompt in (("plain", None), ("prompted", args.prompt)):
        start = time.perf_counter()
        for item in items:
            segments, _ = model.transcribe(item["path"], language="zh", initial_prompt=prompt)
            texts[way][item["file"]] = "".join(s.text for s in segments)
        seconds[way] = time.perf_counter() - start

    def cer(way: str, convert: bool) -> float:
        hyps = {f: convert_text(t, "simplified") if convert else t for f, t in texts[way].items()}
        return error_rate(items, hyps)["cer"]

    rows = [
        ("as written (zh_script = as-is)", cer("plain", False)),
        ("OpenCC t2s after decoding (zh_script = simplified)", cer("plain", True)),
        ("Simplified initial prompt, as written", cer("prompted", False)),
        ("Simplified initial prompt + OpenCC t2s", cer("prompted", True)),
    ]
    short = [i for i in items if i["duration_s"] <= 30]
    long = [i for i in items if i["duration_s"] > 30]
    print(f"{len(items)} Mandarin files ({len(short)} short, {len(long)} long), "
          f"{sum(i['duration_s'] for i in items):.0f} s; decode time plain {seconds['plain']:.1f} s, "
          f"prompted {seconds['prompted']:.1f} s")
    print("| way | CER |\n|-|-|")
    for name, value in rows:
        print(f"| {name} | {value:.2f}% |")
    result = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
              "files": [i["file"] for i in items], "prompt": args.prompt, "cer": dict(rows),
              "decode_seconds": seconds, "texts": texts}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "zh_script.json").write_text(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
