"""Which thread creates a CTranslate2 model, and which calls it: what each costs.

    .venv/bin/python benchmarks/model_thread.py [--file de_librivox_simplicissimus.mp3] [--rounds 2]

Transcribes one file of the eval manifest with faster-whisper's ``WhisperModel`` (the config's
model, compute type and threads, default options) six ways: the model created on the process's
main thread, on a thread that then ends, or on one that lives on; ``transcribe`` called on the
main thread or on another one; and, last, the model of an ``asr_server`` ``WhisperEngine``
constructed on the main thread. Each setup runs in a fresh process, so that no model created
earlier can affect the next, and prints its times and whether the text was the same as the
first setup's.

Why it matters: loading runs OpenMP regions on the loading thread, and libgomp keeps
that thread's team of workers while the thread lives. With more libgomp threads alive than CPUs,
libgomp's workers sleep at barriers instead of spinning, and every decode waits on wake-ups.
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

SETUPS = [("main", "main"), ("ended", "main"), ("main", "another"), ("ended", "another"), ("lives on", "main"),
          ("engine on main", "main")]
LABELS = {"main": "main thread", "ended": "a thread that then ends", "lives on": "a thread that lives on",
          "engine on main": "main thread, by WhisperEngine", "another": "another thread"}

LIVING_POOLS: list[ThreadPoolExecutor] = []


def on(where: str, call):
    """Run ``call`` on the main thread, on a thread that ends with it, or on one that lives on."""
    if where == "main":
        return call()
    if where == "lives on":
        # Kept referenced and never shut down, so that its thread outlives the call (a pool that
        # is garbage-collected lets its thread end).
        LIVING_POOLS.append(ThreadPoolExecutor(1))
        return LIVING_POOLS[-1].submit(call).result()
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(call).result()


def child(path: str, created_on: str, called_on: str, rounds: int) -> None:
    sys.path.insert(0, str(REPO / "src"))
    from faster_whisper import WhisperModel

    from asr_server.config_loading import load_settings
    from asr_server.engine.whisper_engine import WhisperEngine

    settings = load_settings(None)
    if created_on == "engine on main":
        model = WhisperEngine(model_dir(settings), settings.model).whisper_model
    else:
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
        print(f"| {LABELS[created_on]} | {LABELS[called_on]} | {', '.join(f'{s:.2f}' for s in result['seconds'])} | "
              f"{'yes' if result['text'] == first_text else 'no'} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
