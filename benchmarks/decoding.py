"""Audio decoding cost: faster-whisper's ``decode_audio`` against ``asr_server.engine.audio.decode``.

    .venv/bin/python benchmarks/decoding.py --rounds 3

Decodes the eval set's short English clips (the throughput benchmark's short workload) with
each function in turn, ``--rounds`` times, in a process that has imported the server's modules
(as a server has: faster-whisper's full garbage collection per file walks every live object,
so its cost grows with the heap). Prints seconds per round for each, the live objects the
collector tracks, and whether the samples are identical.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
import time

import numpy as np

from throughput import DEFAULT_MANIFEST, REPO, load_workload, machine


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    sys.path.insert(0, str(REPO / "src"))
    from faster_whisper.audio import decode_audio

    from asr_server.engine.audio import decode

    importlib.import_module("asr_server.service.runtime")  # the server's modules, hence its heap

    paths = [item["path"] for item in load_workload(DEFAULT_MANIFEST, "short", {"en"}, None)]
    functions = {
        "faster_whisper.audio.decode_audio": lambda path: decode_audio(path, sampling_rate=16000),
        "asr_server.engine.audio.decode": lambda path: decode(path, 16000),
    }
    identical = all(np.array_equal(decode_audio(p), decode(p, 16000)) for p in paths)
    print(f"{machine()}; {len(paths)} clips; {len(gc.get_objects())} objects tracked by the collector; "
          f"identical samples: {identical}")
    print("| function | seconds per round (each round) | ms per file (best round) |")
    print("|-|-|-|")
    for name, function in functions.items():
        rounds = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            for path in paths:
                function(path)
            rounds.append(time.perf_counter() - start)
        print(f"| `{name}` | {', '.join(f'{r:.2f}' for r in rounds)} | {1000 * min(rounds) / len(paths):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
