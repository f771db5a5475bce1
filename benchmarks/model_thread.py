"""Which thread creates a CTranslate2 model, and which calls it: what each costs.

    .venv/bin/python benchmarks/model_thread.py [--file de_librivox_simplicissimus.mp3] [--rounds 2]

Transcribes one file of the eval manifest with faster-whisper's ``WhisperModel`` (the config's
model, compute type and threads, default options) four ways: the model created on the process's
main thread or on another one, and ``transcribe`` called on the main thread or on another one.
Each setup runs in a fresh process, so that no model created earlier can affect the next, and
prints its times and whether the text was the same as the first setup's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from throughput import DEFAULT_MANIFEST, REPO, machine, model_dir

SETUPS = [("main", "main"), ("another", "main"), ("main", "another"), ("another", "another")]


def on(where: str, call):
    """Run ``call`` on the main thread, or on a thread of its own."""
    if where == "main":
        return call()
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(call).result()


def child(path: str, created_on: str, called_on: str, rounds: int) -> None:
    sys.path.insert(0, str(REPO / "src"))
    from faster_whisper import WhisperModel

    from asr_server.config import load_settings

    settings = load_settings(None)
    model = on(created_on, lambda: WhisperModel(model_dir(settings), device=settings.model.device,
                                                compute_type=settings.model.compute_type,
                                                cpu_threads=settings.model.cpu_threads))

    def transcribe() -> tuple[float, str]:
        start = time.perf_counter()
        segments, _ = model.transcribe(path)
        text = "".join(s.text for s in segments)
        return time.perf_counter() - start, text

    runs = [on(called_on, transcribe) for _ in range(rounds)]
    print(json.dumps({"seconds": [s for s, _ in runs], "text": runs[0][1]}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--file", default="de_librivox_simplicissimus.mp3")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", nargs=2, metavar=("CREATED_ON", "CALLED_ON"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    path = str(args.manifest.parent / args.file)
    if args.child:
        child(path, *args.child, args.rounds)
        return 0
    print(f"{machine()}; {args.file}, {args.rounds} rounds per setup, each setup in a fresh process")
    print("| model created on | transcribe called on | seconds | same text |")
    print("|-|-|-|-|")
    first_text = None
    for created_on, called_on in SETUPS:
        out = subprocess.run([sys.executable, __file__, "--file", args.file, "--rounds", str(args.rounds),
                              "--manifest", str(args.manifest), "--child", created_on, called_on],
                             check=True, capture_output=True, text=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        first_text = first_text if first_text is not None else result["text"]
        print(f"| {created_on} thread | {called_on} thread | {', '.join(f'{s:.2f}' for s in result['seconds'])} | "
              f"{'yes' if result['text'] == first_text else 'no'} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
